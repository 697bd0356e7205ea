package cue

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	cuelang "cuelang.org/go/cue"
	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/schema"
)

var bookworm = &schema.Release{
	Suites:          []string{"bookworm", "bookworm-updates", "bookworm-security"},
	Components:      []string{"main"},
	DefaultPackages: []string{"systemd", "init", "iptables", "chrony", "kmod", "dbus", "libseccomp2"},
	Keyring:         "/usr/share/keyrings/debian-archive-keyring.gpg",
	Archive: map[string]string{
		"bookworm":          "debian",
		"bookworm-updates":  "debian",
		"bookworm-security": "debian-security",
	},
}

var defaultOutputs = []schema.Output{{Type: "dir", Dest: "rootfs"}}

func TestLoad(t *testing.T) {
	tests := []struct {
		path        string
		wantM       *schema.Manifest
		wantRelease *schema.Release
	}{{
		path: "testdata/valid.cue",
		wantM: &schema.Manifest{
			Distro: "debian", Release: "bookworm", Arch: "amd64",
			Packages: []string{"iptables", "curl"},
			Outputs:  defaultOutputs,
		},
		wantRelease: bookworm,
	}, {
		path: "testdata/dir",
		wantM: &schema.Manifest{
			Distro: "debian", Release: "bookworm", Arch: "amd64",
			Packages: []string{},
			Outputs:  defaultOutputs,
		},
		wantRelease: bookworm,
	}, {
		path: "testdata/overlay.cue",
		wantM: &schema.Manifest{
			Arch:     "amd64",
			Packages: []string{},
			Files:    map[string]schema.File{"/etc/motd": {Content: "hello\n"}},
			Outputs:  []schema.Output{{Type: "tar", Dest: "rootfs.tar"}},
		},
		wantRelease: nil,
	}, {
		path: "testdata/full.cue",
		wantM: &schema.Manifest{
			Distro: "debian", Release: "trixie", Arch: "arm64",
			Packages: []string{},
			Agent:    &schema.Agent{File: "bin/kata-agent", Init: "systemd"},
			Modules:  &schema.Modules{Dir: "modules/6.1.0-27-amd64"},
			Policy:   &schema.Policy{Builtin: "allow-all", Engine: "opa-service", OPA: &schema.Binary{File: "bin/opa"}},
			Files:    map[string]schema.File{"/etc/motd": {Content: "hello\n", Mode: 0o644}},
			Slim:     true,
			Outputs:  []schema.Output{{Type: "dir", Dest: "rootfs"}, {Type: "disk", Dest: "rootfs.img"}},
		},
		wantRelease: &schema.Release{
			Suites:          []string{"trixie", "trixie-updates", "trixie-security"},
			Components:      []string{"main"},
			DefaultPackages: bookworm.DefaultPackages,
			Keyring:         bookworm.Keyring,
			Archive:         map[string]string{"trixie": "debian", "trixie-updates": "debian", "trixie-security": "debian-security"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := LoadFile(context.Background(), tt.path, Opts{})
			if err != nil {
				t.Fatalf("Load() error:\n%s", FormatError(err, ""))
			}
			if diff := cmp.Diff(tt.wantM, got.Manifest); diff != "" {
				t.Errorf("Load() manifest mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRelease, got.Release); diff != "" {
				t.Errorf("Load() release mismatch (-want +got):\n%s", diff)
			}
			abs, _ := filepath.Abs(tt.path)
			if got.Path != abs {
				t.Errorf("Load() Path = %q, want %q", got.Path, abs)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		path string
		want []string // substrings of FormatError's output
	}{
		{"testdata/typo.cue", []string{"testdata/typo.cue:3:1: pakages: field not allowed"}},
		{"testdata/wrongtype.cue", []string{"testdata/wrongtype.cue:3:11: packages: conflicting values", "mismatched types string and list"}},
		{"testdata/badrelease.cue", []string{`testdata/badrelease.cue:2:1: release: unknown release "buster" (known: bookworm, trixie)`}},
		{"testdata/baddistro.cue", []string{`testdata/baddistro.cue:1:1: distro: unknown distro "gentoo" (known: alpine, debian)`}},
		{"testdata/norelease.cue", []string{"testdata/norelease.cue:", "release: field is required but not present"}},
		{"testdata/noopa.cue", []string{"testdata/noopa.cue:", "policy.opa: field is required but not present"}},
		{"testdata/syntax.cue", []string{"testdata/syntax.cue:2:10: loading manifest: string literal not terminated"}},
		{"testdata/twoagents.cue", []string{"testdata/twoagents.cue:3:", "agent: exactly one of file, tarball must be set"}},
		// Alpine has no systemd: its agent is init.
		{"testdata/alpinesystemd.cue", []string{`testdata/alpinesystemd.cue:5:8: agent.init: conflicting values "agent" and "systemd"`}},
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := LoadFile(context.Background(), tt.path, Opts{})
			if err == nil {
				t.Fatal("Load() succeeded, want an error")
			}
			got := FormatError(err, wd)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Load() error\n%s\ndoes not contain %q", got, w)
				}
			}
		})
	}
}

func TestNotImplemented(t *testing.T) {
	r, err := LoadFile(context.Background(), "testdata/full.cue", Opts{})
	if err != nil {
		t.Fatal(FormatError(err, ""))
	}
	wd, _ := os.Getwd()
	want := `testdata/full.cue:12:43: outputs.1.type: not implemented yet
`
	if diff := cmp.Diff(want, FormatError(NotImplemented(r), wd)); diff != "" {
		t.Errorf("NotImplemented() mismatch (-want +got):\n%s", diff)
	}
	if NotImplemented(&Result{Manifest: r.Manifest}) == nil {
		t.Error("NotImplemented(without positions) = nil, want errors")
	}
	if diff := cmp.Diff("testdata/full.cue:4:8: agent.file: no such file\n", FormatError(r.Errorf([]string{"agent", "file"}, "no such file"), wd)); diff != "" {
		t.Errorf("Errorf() mismatch (-want +got):\n%s", diff)
	}

	v, err := LoadFile(context.Background(), "testdata/valid.cue", Opts{})
	if err != nil {
		t.Fatal(FormatError(err, ""))
	}
	if err := NotImplemented(v); err != nil {
		t.Errorf("NotImplemented() = %v, want nil", err)
	}
}

// TestCueVet checks that `cue vet` against the published schema gives the
// same verdict as Load. The schema alone knows distro names but not their
// releases, so an unknown release is caught by Load only. It needs the cue tool (go tool cue) and is skipped in
// -short mode.
func TestCueVet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go tool cue")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"testdata/valid.cue", true},
		{"testdata/overlay.cue", true},
		{"testdata/typo.cue", false},
		{"testdata/wrongtype.cue", false},
		{"testdata/noopa.cue", false},
		{"testdata/twoagents.cue", false},
		{"testdata/alpinesystemd.cue", false},
	} {
		t.Run(tt.path, func(t *testing.T) {
			_, loadErr := LoadFile(context.Background(), tt.path, Opts{})
			// cue vet -d takes data, not CUE: export the manifest first.
			data, err := exec.Command(goBin, "tool", "cue", "export", "--out", "json", tt.path).Output()
			if err != nil {
				t.Fatalf("cue export: %v", err)
			}
			jsonPath := filepath.Join(t.TempDir(), "manifest.json")
			if err := os.WriteFile(jsonPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(goBin, "tool", "cue", "vet", "-c", "-d", "#Manifest", "../schema/schema.cue", jsonPath)
			out, vetErr := cmd.CombinedOutput()
			if (loadErr == nil) != tt.ok || (vetErr == nil) != tt.ok {
				t.Errorf("Load() error = %v, cue vet error = %v (%s), want ok = %v", loadErr, vetErr, out, tt.ok)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := LoadFile(context.Background(), "testdata/nonexistent.cue", Opts{})
	if err == nil {
		t.Fatal("Load() succeeded, want an error")
	}
	if got := FormatError(err, ""); !strings.Contains(got, "no such file") {
		t.Errorf("FormatError() = %q, want it to mention the missing file", got)
	}
}

// TestDistroNames checks that the schema's #DistroName lists exactly the
// distros embedded in distros.FS.
func TestDistroNames(t *testing.T) {
	var names []string
	for _, d := range distros.List() {
		names = append(names, d.Name)
		if _, err := LoadFile(context.Background(), writeManifest(t, d.Name, d.Releases[0]), Opts{}); err != nil {
			t.Errorf("Load(%s %s): %s", d.Name, d.Releases[0], FormatError(err, ""))
		}
	}
	var schemaNames []string
	dn := schema.Lookup("#DistroName")
	if op, args := dn.Expr(); op == cuelang.OrOp {
		for _, a := range args {
			s, _ := a.String()
			schemaNames = append(schemaNames, s)
		}
	} else {
		s, _ := dn.String()
		schemaNames = append(schemaNames, s)
	}
	slices.Sort(schemaNames)
	if diff := cmp.Diff(schemaNames, names); diff != "" {
		t.Errorf("#DistroName and distros.List() differ (-schema +distros):\n%s", diff)
	}
	if diff := cmp.Diff([]distros.DistroInfo{{Name: "alpine", Family: "apk", Releases: []string{"3.20", "3.21"}}, {Name: "debian", Family: "deb", Releases: []string{"bookworm", "trixie"}, Keyrings: []string{"/usr/share/keyrings/debian-archive-keyring.gpg"}}}, distros.List()); diff != "" {
		t.Errorf("distros.List() mismatch (-want +got):\n%s", diff)
	}
}

func writeManifest(t *testing.T, distro, release string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.cue")
	src := "distro: " + strconv.Quote(distro) + "\nrelease: " + strconv.Quote(release) + "\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadFS loads from a file system that is not the disk, as the gateway frontend does with the
// manifest it reads through BuildKit: the folder in positions need not exist.
func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"rootfs.cue": {Data: []byte("distro: \"debian\"\nrelease: \"bookworm\"\npackages: [\"iptables\"]\n")},
		"bad.cue":    {Data: []byte("distro: \"debian\"\nrelease: \"potato\"\n")},
	}
	got, err := Load(context.Background(), fsys, "rootfs.cue", Opts{Dir: "/nonexistent/dockerfile"})
	if err != nil {
		t.Fatalf("Load() error:\n%s", FormatError(err, ""))
	}
	if diff := cmp.Diff([]string{"iptables"}, got.Manifest.Packages); diff != "" {
		t.Errorf("Load() packages mismatch (-want +got):\n%s", diff)
	}
	if got.Path != "/nonexistent/dockerfile/rootfs.cue" {
		t.Errorf("Load() Path = %q", got.Path)
	}
	_, err = Load(context.Background(), fsys, "bad.cue", Opts{Dir: "/nonexistent/dockerfile"})
	if err == nil {
		t.Fatal("Load(bad.cue) succeeded")
	}
	if got, want := FormatError(err, "/nonexistent/dockerfile"), `bad.cue:2:1: release: unknown release "potato" (known: bookworm, trixie)`; !strings.Contains(got, want) {
		t.Errorf("Load(bad.cue) error = %q, want %q", got, want)
	}
	if _, err := Load(context.Background(), fsys, "../x.cue", Opts{}); err == nil || !strings.Contains(err.Error(), "not a path inside the manifest's folder") {
		t.Errorf("Load(../x.cue) error = %v", err)
	}
}
