package rootfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mkTree lays out a tree under root: "dir" makes a directory, "->target" a symlink, anything else
// a regular file with that content.
func mkTree(t *testing.T, root string, tree map[string]string) {
	t.Helper()
	for p, v := range tree {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case v == "dir":
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(v, "->"):
			err = os.Symlink(strings.TrimPrefix(v, "->"), full)
		default:
			err = os.WriteFile(full, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	mkTree(t, root, map[string]string{
		"usr/lib/modules": "dir",
		"lib":             "->usr/lib",
		"abs":             "->/usr/lib",
		"up":              "->../..",
		"absup":           "->/../etc",
		"loop":            "->loop",
		"file":            "x",
	})
	tests := []struct {
		p          string
		followLast bool
		want       string // relative to root
		wantErr    string
	}{
		{p: "lib/modules/x", followLast: true, want: "usr/lib/modules/x"},
		{p: "lib", followLast: true, want: "usr/lib"},
		{p: "lib", followLast: false, want: "lib"},
		{p: "/lib/modules", followLast: false, want: "usr/lib/modules"},
		{p: "abs/modules", followLast: true, want: "usr/lib/modules"},
		{p: "missing/dir/x", followLast: true, want: "missing/dir/x"},
		{p: "../../lib/x", followLast: true, want: "usr/lib/x"},
		{p: "file/x", followLast: true, want: "file/x"},
		{p: ".", followLast: true, want: "."},
		{p: "up/x", followLast: true, wantErr: "leaves the root"},
		{p: "absup/x", followLast: true, wantErr: "leaves the root"},
		{p: "loop/x", followLast: true, wantErr: "too many levels of symbolic links"},
	}
	for _, tt := range tests {
		got, err := Resolve(root, tt.p, tt.followLast)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Resolve(%q, %v) error = %v, want containing %q", tt.p, tt.followLast, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q, %v): %v", tt.p, tt.followLast, err)
			continue
		}
		rel, err := filepath.Rel(root, got)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, rel); diff != "" {
			t.Errorf("Resolve(%q, %v) mismatch (-want +got):\n%s", tt.p, tt.followLast, diff)
		}
	}
}

func TestLookup(t *testing.T) {
	root := t.TempDir()
	mkTree(t, root, map[string]string{
		"usr/bin/true":          "true",
		"bin":                   "->usr/bin",
		"up":                    "->../../../..",
		"abs":                   "->/usr/bin",
		"etc/alternatives/true": "->/bin/true",
		"usr/local/true":        "->../../etc/alternatives/true",
		"loop":                  "->loop",
	})
	type result struct {
		Path string
		Link bool
		Err  bool
	}
	tests := []struct {
		p    string
		want result
	}{
		{"/usr/bin/true", result{Path: "/usr/bin/true"}},
		{"/bin/true", result{Path: "/usr/bin/true"}},
		{"bin/true", result{Path: "/usr/bin/true"}},
		// ".." at the root stays there, as in the guest.
		{"/up/usr/bin/true", result{Path: "/usr/bin/true"}},
		{"/up/up/bin/true", result{Path: "/usr/bin/true"}},
		{"/abs/true", result{Path: "/usr/bin/true"}},
		{"/usr/local/true", result{Path: "/usr/bin/true"}},
		{"/../../../bin/true", result{Path: "/usr/bin/true"}},
		{"/bin/../bin/true", result{Path: "/usr/bin/true"}},
		{"/up", result{Path: "/"}},
		{"/", result{Path: "/"}},
		{"/loop", result{Err: true}},
		{"/usr/bin/true/x", result{Err: true}},
		{"/missing", result{Err: true}},
		// Unlike Resolve, a missing element is an error, not a directory to be made.
		{"/missing/x", result{Err: true}},
	}
	for _, tt := range tests {
		p, fi, err := Lookup(root, tt.p)
		got := result{Err: err != nil}
		if err == nil {
			got.Path, got.Link = p, fi.Mode()&fs.ModeSymlink != 0
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Lookup(%q) mismatch (-want +got):\n%s", tt.p, diff)
		}
	}
}
