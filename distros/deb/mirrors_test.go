package deb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMirrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	list := write("a.list", `# comment
deb http://mirror.invalid/debian/ bookworm main contrib
deb-src http://mirror.invalid/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian-security bookworm-security main # trailing
`)
	sources := write("b.sources", `Types: deb deb-src
# a comment
URIs: http://other.invalid/debian
Suites: bookworm bookworm-updates
Components: main
 non-free-firmware

Types: deb-src
URIs: http://src.invalid/debian
Suites: trixie
Components: main

Enabled: no
Types: deb
URIs: http://off.invalid/debian
Suites: sid
Components: main
`)
	disabled := write("c.sources.disabled", "Types: deb\nURIs: http://x.invalid/debian\nSuites: experimental\nComponents: main\n")
	got, err := Mirrors(list, sources, disabled, filepath.Join(dir, "missing.list"))
	if err != nil {
		t.Fatal(err)
	}
	want := []SuiteSource{
		{Name: "bookworm", URI: "http://mirror.invalid/debian", Archive: "debian", Components: []string{"main", "contrib"}},
		{Name: "bookworm-security", URI: "http://mirror.invalid/debian-security", Archive: "debian-security", Components: []string{"main"}},
		{Name: "bookworm-updates", URI: "http://other.invalid/debian", Archive: "debian", Components: []string{"main", "non-free-firmware"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Mirrors() mismatch (-want +got):\n%s", diff)
	}

	bad := write("bad.list", "deb http://mirror.invalid/debian\n")
	if _, err := Mirrors(bad); err == nil || !strings.Contains(err.Error(), "bad.list") {
		t.Errorf("Mirrors(bad) error = %v, want naming the file", err)
	}
}

func TestParseRelations(t *testing.T) {
	got, err := parseRelations("libc6 (>= 2.34), usrmerge | usr-is-merged, perl:any, libx (<< 1:2.0~rc1) [amd64]")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]rel{
		{{Name: "libc6", Op: ">=", Version: "2.34"}},
		{{Name: "usrmerge"}, {Name: "usr-is-merged"}},
		{{Name: "perl"}},
		{{Name: "libx", Op: "<<", Version: "1:2.0~rc1"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseRelations() mismatch (-want +got):\n%s", diff)
	}
}
