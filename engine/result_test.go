package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

func TestOutputKey(t *testing.T) {
	dir := Output{Type: "dir", Dest: "a", Attrs: map[string]string{"k": "v"}}
	tests := []struct {
		name        string
		fp          string
		a, b        Output
		wantSameKey bool
	}{
		{"same output", "sha256:1", dir, dir, true},
		{"another destination, same result", "sha256:1", dir, Output{Type: "dir", Dest: "b", Attrs: map[string]string{"k": "v"}}, true},
		{"another exporter option", "sha256:1", dir, Output{Type: "dir", Dest: "a", Attrs: map[string]string{"k": "w"}}, false},
		{"another type", "sha256:1", dir, Output{Type: "tar", Dest: "a", Attrs: map[string]string{"k": "v"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outputKey(tt.fp, tt.a) == outputKey(tt.fp, tt.b); got != tt.wantSameKey {
				t.Errorf("outputKey(%v) == outputKey(%v): %v, want %v", tt.a, tt.b, got, tt.wantSameKey)
			}
		})
	}
	if k := outputKey("", dir); k != "" {
		t.Errorf("outputKey without a fingerprint = %q, want \"\"", k)
	}
	if outputKey("sha256:1", dir) == outputKey("sha256:2", dir) {
		t.Error("two fingerprints give one key")
	}
}

// TestUpToDate is the skip decision: a committed output with the build's key and a tree
// untouched since is up to date; anything changed in the tree by hand, another key, or a
// destination that is not a finished output of rootfsc is exported again.
func TestUpToDate(t *testing.T) {
	requireRoot(t) // trusted.* marks, chown
	const key = "sha256:k"
	tests := []struct {
		name   string
		key    string // the build's; key when ""
		change func(t *testing.T, root string)
		want   error
	}{
		{"untouched", "", nil, nil},
		{"another result", "sha256:other", nil, errOtherResult},
		{"no fingerprint", "-", nil, errNoResult},
		{"content edited, same size and mtime", "", func(t *testing.T, root string) {
			p := filepath.Join(root, "etc/motd")
			var st unix.Stat_t
			must(t, unix.Lstat(p, &st))
			must(t, os.WriteFile(p, []byte("HELLO\n"), 0o644))
			must(t, unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim}))
		}, errTreeModified},
		{"mode changed", "", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "etc/motd"), 0o600))
		}, errTreeModified},
		{"owner set to what it was", "", func(t *testing.T, root string) {
			must(t, os.Lchown(filepath.Join(root, "etc/motd"), 0, 0))
		}, errTreeModified},
		{"xattr added", "", func(t *testing.T, root string) {
			must(t, unix.Lsetxattr(filepath.Join(root, "etc/motd"), "user.x", []byte("1"), 0))
		}, errTreeModified},
		{"file added", "", func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "etc/new"), nil, 0o644))
		}, errTreeModified},
		{"file removed", "", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "etc/motd")))
		}, errTreeModified},
		{"file replaced by a copy", "", func(t *testing.T, root string) {
			p := filepath.Join(root, "etc/motd")
			must(t, os.WriteFile(p+".new", []byte("hello\n"), 0o644))
			must(t, os.Rename(p+".new", p))
		}, errTreeModified},
		{"link retargeted", "", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "bin")))
			must(t, os.Symlink("usr/sbin", filepath.Join(root, "bin")))
		}, errTreeModified},
		{"mark removed", "", func(t *testing.T, root string) {
			must(t, unix.Lremovexattr(root, markRoot))
		}, errNoResult},
		{"result removed", "", func(t *testing.T, root string) {
			must(t, unix.Lremovexattr(root, resultRoot))
		}, errNoResult},
		{"moved away and back", "", func(t *testing.T, root string) {
			must(t, os.Rename(root, root+".away"))
			must(t, os.Rename(root+".away", root))
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "rootfs")
			tmp, err := tempDir(dest)
			must(t, err)
			must(t, os.MkdirAll(filepath.Join(tmp.Path, "etc"), 0o755))
			must(t, os.MkdirAll(filepath.Join(tmp.Path, "usr/bin"), 0o755))
			must(t, os.WriteFile(filepath.Join(tmp.Path, "etc/motd"), []byte("hello\n"), 0o644))
			must(t, os.Symlink("usr/bin", filepath.Join(tmp.Path, "bin")))
			must(t, commitDir(tmp, dest, DestOpts{}, key))
			if tt.change != nil {
				tt.change(t, dest)
			}
			k := tt.key
			switch k {
			case "":
				k = key
			case "-":
				k = ""
			}
			if diff := cmp.Diff(tt.want, upToDate(dest, k), cmpopts.EquateErrors()); diff != "" {
				t.Errorf("upToDate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
