package cue

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros"
)

// TestUserDistros loads manifests naming distros that are not built in: scaffolded beside the
// manifest, or on the distro path; the folder beside the manifest comes first, and a definition
// that breaks #Distro is an error in its own file.
func TestUserDistros(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, fam := range []string{"deb", "apk"} {
		if _, err := distros.New(filepath.Join(dir, "m"), "my-"+fam, fam); err != nil {
			t.Fatal(err)
		}
	}
	write("path/other/distro.cue", "name: \"other\"\nfamily: \"deb\"\nverified: \"live\"\nreleases: r1: {suites: [\"r1\"], components: [\"main\"], defaultPackages: [\"less\"], keyring: \"k.gpg\", archive: r1: \"other\"}\n")
	// The same name beside the manifest and on the path: beside wins.
	write("path/my-deb/distro.cue", "name: \"my-deb\"\nfamily: \"deb\"\nreleases: bookworm: {suites: [\"x\"], components: [\"main\"], defaultPackages: [], keyring: \"k\", archive: x: \"x\"}\n")
	path := []string{filepath.Join(dir, "nowhere"), filepath.Join(dir, "path")}

	tests := []struct {
		manifest string
		family   string
		defaults []string
		wantErr  string
	}{
		{"distro: \"my-deb\"\nrelease: \"bookworm\"\n", "deb", []string{"systemd", "init", "iptables", "chrony", "kmod", "dbus", "libseccomp2"}, ""},
		{"distro: \"my-apk\"\nrelease: \"3.20\"\n", "apk", []string{"alpine-base", "bash", "iptables", "ip6tables", "libseccomp"}, ""},
		{"distro: \"other\"\nrelease: \"r1\"\n", "deb", []string{"less"}, ""},
		{"distro: \"other\"\nrelease: \"r2\"\n", "", nil, `m/m.cue:2:10: release: unknown release "r2" (known: r1)`},
		{"distro: \"gentoo\"\nrelease: \"r1\"\n", "", nil, `m/m.cue:1:1: distro: unknown distro "gentoo" (known: alpine, debian, my-apk, my-deb, other, ubuntu)`},
	}
	for _, tt := range tests {
		m := write("m/m.cue", tt.manifest)
		res, err := LoadFile(context.Background(), m, Opts{DistroPath: path})
		if tt.wantErr != "" {
			if got := FormatError(err, dir); !strings.Contains(got, tt.wantErr) {
				t.Errorf("Load(%q) error = %q, want %q", tt.manifest, got, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Load(%q): %s", tt.manifest, FormatError(err, dir))
			continue
		}
		if diff := cmp.Diff([]any{tt.family, tt.defaults}, []any{res.Family, res.Release.DefaultPackages}); diff != "" {
			t.Errorf("Load(%q) family and default packages mismatch (-want +got):\n%s", tt.manifest, diff)
		}
	}

	// Every apk distro, not only Alpine, has the agent as init: a scaffolded one too.
	write("m/m.cue", "distro: \"my-apk\"\nrelease: \"3.20\"\nagent: file: \"kata-agent\"\n")
	if res, err := LoadFile(context.Background(), filepath.Join(dir, "m/m.cue"), Opts{DistroPath: path}); err != nil {
		t.Errorf("Load(my-apk with an agent): %s", FormatError(err, dir))
	} else if res.Manifest.Agent == nil || res.Manifest.Agent.Init != "agent" {
		t.Errorf("Load(my-apk with an agent): agent = %+v, want init \"agent\"", res.Manifest.Agent)
	}
	write("m/m.cue", "distro: \"my-apk\"\nrelease: \"3.20\"\nagent: {file: \"kata-agent\", init: \"systemd\"}\n")
	if _, err := LoadFile(context.Background(), filepath.Join(dir, "m/m.cue"), Opts{DistroPath: path}); !strings.Contains(FormatError(err, dir), `m/m.cue:3:35: agent.init: conflicting values "agent" and "systemd"`) {
		t.Errorf("Load(my-apk with systemd as init) error = %q, want the conflict at init", FormatError(err, dir))
	}

	// A definition that breaks #Distro, or names another distro than its folder, is an error at
	// its place in the definition.
	write("m/m.cue", "distro: \"other\"\nrelease: \"r1\"\n")
	for _, bad := range []struct{ old, new, want string }{
		{`family: "deb"`, `family: "dpkg"`, `path/other/distro.cue:2:9: family: conflicting values "deb" and "dpkg"`},
		{`name: "other"`, `name: "another"`, `path/other/distro.cue:1:7: name: conflicting values "other" and "another"`},
		{`verified: "live"`, `verified: "yes"`, `path/other/distro.cue:3:11: verified: conflicting values "fixtures" and "yes"`},
	} {
		p := filepath.Join(dir, "path/other/distro.cue")
		good, _ := os.ReadFile(p)
		write("path/other/distro.cue", strings.Replace(string(good), bad.old, bad.new, 1))
		_, err := LoadFile(context.Background(), filepath.Join(dir, "m/m.cue"), Opts{DistroPath: path})
		if got := FormatError(err, dir); !strings.Contains(got, bad.want) {
			t.Errorf("Load() with %s = %q, want %q", bad.new, got, bad.want)
		}
		write("path/other/distro.cue", string(good))
	}
}

// TestDistroNew scaffolds each family's template and refuses to overwrite or to leave the folder.
func TestDistroNew(t *testing.T) {
	dir := t.TempDir()
	p, err := distros.New(dir, "kata-debian", "deb")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "distros/kata-debian/distro.cue"); p != want {
		t.Errorf("New() = %s, want %s", p, want)
	}
	for _, tt := range []struct{ name, family, want string }{
		{"kata-debian", "deb", "distros/kata-debian/distro.cue already exists"},
		{"../up", "deb", `distro name "../up": want lower-case letters, digits and dashes, starting with a letter`},
		{"centos", "rpm", `package family "rpm" has no template (known: deb, apk)`},
	} {
		if _, err := distros.New(dir, tt.name, tt.family); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s, %s) error = %v, want %q", tt.name, tt.family, err, tt.want)
		}
	}
}

// TestAPKTemplateIsAlpine: as scaffolded, an apk distro is Alpine 3.20 as rootfsc builds it in
// (branch, repositories, default packages, keys), so that a user changes only what differs and
// TestBuildAlpine's scaffolded distro stands for the built-in one.
func TestAPKTemplateIsAlpine(t *testing.T) {
	dir := t.TempDir()
	if _, err := distros.New(dir, "my-alpine", "apk"); err != nil {
		t.Fatal(err)
	}
	load := func(distro string) *Result {
		t.Helper()
		m := filepath.Join(dir, distro+".cue")
		if err := os.WriteFile(m, []byte("distro: \""+distro+"\"\nrelease: \"3.20\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := LoadFile(context.Background(), m, Opts{})
		if err != nil {
			t.Fatal(FormatError(err, dir))
		}
		return res
	}
	builtIn, scaffolded := load("alpine"), load("my-alpine")
	if diff := cmp.Diff(builtIn.Release, scaffolded.Release); diff != "" {
		t.Errorf("the apk template's release 3.20 differs from Alpine's (-alpine +template):\n%s", diff)
	}
	if scaffolded.Family != "apk" {
		t.Errorf("family = %q, want apk", scaffolded.Family)
	}
}
