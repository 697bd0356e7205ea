package cue

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	Tools:           []string{"e2fsprogs", "erofs-utils", "cryptsetup-bin"},
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
			Outputs:  []schema.Output{{Type: "dir", Dest: "rootfs"}, {Type: "disk", Dest: "rootfs.img", FS: "xfs"}},
		},
		wantRelease: &schema.Release{
			Suites:          []string{"trixie", "trixie-updates", "trixie-security"},
			Components:      []string{"main"},
			DefaultPackages: bookworm.DefaultPackages,
			Keyring:         bookworm.Keyring,
			Tools:           bookworm.Tools,
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
		{"testdata/badrelease.cue", []string{`testdata/badrelease.cue:2:10: release: unknown release "buster" (known: bookworm, trixie)`}},
		{"testdata/baddistro.cue", []string{`testdata/baddistro.cue:1:1: distro: unknown distro "gentoo" (known: alpine, debian, ubuntu)`}},
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
	want := `testdata/full.cue:12:77: outputs.1.fs: xfs is not supported: mkfs.xfs cannot populate a file system from a folder without mounting it (no loop devices in a build step); use ext4 or erofs
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

// TestCueVet checks that `cue vet` against the published schema (schema.cue and the generated
// distros.cue) gives the same verdict as Load. It needs the cue tool (go tool cue) and is skipped
// in -short mode.
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
		{"testdata/badrelease.cue", false},
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
			cmd := exec.Command(goBin, "tool", "cue", "vet", "-c", "-d", "#Manifest", "../schema/schema.cue", "../schema/distros.cue", jsonPath)
			out, vetErr := cmd.CombinedOutput()
			if (loadErr == nil) != tt.ok || (vetErr == nil) != tt.ok {
				t.Errorf("Load() error = %v, cue vet error = %v (%s), want ok = %v", loadErr, vetErr, out, tt.ok)
			}
		})
	}
}

// TestCueVetReleasePosition checks that `cue vet` rejects an unknown release at the same place as
// Load: the rule is the schema's, with the distro's definition unified in. cue vet -d reads the
// manifest as data, so the manifest is written as JSON, which is CUE too.
func TestCueVetReleasePosition(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go tool cue")
	}
	const manifest = "testdata/badrelease_json.cue"
	_, err := LoadFile(context.Background(), manifest, Opts{})
	if err == nil {
		t.Fatal("Load() succeeded, want an unknown release")
	}
	wd, _ := os.Getwd()
	got := FormatError(err, wd)
	want := manifest + `:3:13: release: unknown release "buster" (known: bookworm, trixie)` + "\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load() error mismatch (-want +got):\n%s", diff)
	}
	out, err := exec.Command("go", "tool", "cue", "vet", "-c", "-d", "#Manifest", "../schema/schema.cue", "../schema/distros.cue", "json:", manifest).CombinedOutput()
	if err == nil {
		t.Fatalf("cue vet succeeded, want an unknown release:\n%s", out)
	}
	// cue vet lists, under each error, its positions: the manifest's first.
	var vetPos string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.TrimSpace(line); strings.HasPrefix(f, "./"+manifest+":") {
			vetPos = strings.TrimPrefix(f, "./")
			break
		}
	}
	if !strings.Contains(string(out), `release: conflicting values "bookworm" and "buster"`) || vetPos != manifest+":3:13" {
		t.Errorf("cue vet = %q at %q, want the release's conflict at %s:3:13", out, vetPos, manifest)
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

// TestDistroNames checks that every built-in distro loads and is called what #DistroName allows,
// and what distros.List says of them.
func TestDistroNames(t *testing.T) {
	dn := schema.Lookup("#DistroName")
	for _, d := range distros.List() {
		if _, err := LoadFile(context.Background(), writeManifest(t, d.Name, d.Releases[0]), Opts{}); err != nil {
			t.Errorf("Load(%s %s): %s", d.Name, d.Releases[0], FormatError(err, ""))
		}
		if err := dn.Unify(dn.Context().CompileString(strconv.Quote(d.Name))).Validate(cuelang.Concrete(true)); err != nil {
			t.Errorf("#DistroName refuses %s: %v", d.Name, err)
		}
	}
	want := []distros.DistroInfo{{Name: "alpine", Family: "apk", Releases: []string{"3.20", "3.21"}, Origin: distros.BuiltIn, Verified: "fixtures"},
		{Name: "debian", Family: "deb", Releases: []string{"bookworm", "trixie"},
			Keyrings: []string{"/usr/share/keyrings/debian-archive-keyring.gpg"}, Origin: distros.BuiltIn, Verified: "live"},
		{Name: "ubuntu", Family: "deb", Releases: []string{"jammy", "noble"},
			Keyrings: []string{"/usr/share/keyrings/ubuntu-archive-keyring.gpg"}, Origin: distros.BuiltIn, Verified: "fixtures"}}
	if diff := cmp.Diff(want, distros.List()); diff != "" {
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
	if got, want := FormatError(err, "/nonexistent/dockerfile"), `bad.cue:2:10: release: unknown release "potato" (known: bookworm, trixie)`; !strings.Contains(got, want) {
		t.Errorf("Load(bad.cue) error = %q, want %q", got, want)
	}
	if _, err := Load(context.Background(), fsys, "../x.cue", Opts{}); err == nil || !strings.Contains(err.Error(), "not a path inside the manifest's folder") {
		t.Errorf("Load(../x.cue) error = %v", err)
	}
}

// TestPublishedDistros checks that schema/distros.cue, what cue vet reads, is what
// distros.Published makes of the definitions today; run `go generate ./schema` after editing one.
func TestPublishedDistros(t *testing.T) {
	want, err := distros.Published()
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../schema/distros.cue")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(have)); diff != "" {
		t.Errorf("schema/distros.cue is stale; run go generate ./schema (-want +have):\n%s", diff)
	}
}

// TestUbuntu checks Ubuntu's archive layout as the definition gives it: every suite under the one
// archive path, main and universe, osbuilder's package set.
func TestUbuntu(t *testing.T) {
	res, err := LoadFile(context.Background(), writeManifest(t, "ubuntu", "jammy"), Opts{})
	if err != nil {
		t.Fatal(FormatError(err, ""))
	}
	want := &schema.Release{
		Suites:          []string{"jammy", "jammy-updates", "jammy-security"},
		Components:      []string{"main", "universe"},
		DefaultPackages: []string{"chrony", "iptables", "dbus", "init", "libseccomp2", "kmod"},
		Keyring:         "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
		Archive:         map[string]string{"jammy": "ubuntu", "jammy-updates": "ubuntu", "jammy-security": "ubuntu"},
	}
	if diff := cmp.Diff(want, res.Release); diff != "" {
		t.Errorf("ubuntu jammy mismatch (-want +got):\n%s", diff)
	}
}
