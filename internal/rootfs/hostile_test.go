package rootfs

// Hostile streams: nothing a tar stream says may change anything outside the root, whichever
// way its entries are ordered. Each case names the cause it expects.

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// hostState is what a test watches on a host directory that a stream must not reach.
type hostState struct {
	Mode  uint32
	Mtime int64
	Names []string
}

func statHost(t *testing.T, dir string) map[string]hostState {
	t.Helper()
	got := map[string]hostState{}
	for _, p := range []string{dir, filepath.Join(dir, "b")} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		got[filepath.Base(p)] = hostState{Mode: st.Mode & 0o7777, Mtime: st.Mtim.Sec, Names: names}
	}
	return got
}

// hostDir makes a directory outside the root, 0700 with a subdirectory b, stamped with an old time.
func hostDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	if err := os.MkdirAll(filepath.Join(dir, "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_000_000_000, 0)
	for _, p := range []string{filepath.Join(dir, "b"), dir} {
		if err := os.Chmod(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Review finding 1: directory modes and times were applied at the end by path, so a directory
// entry that a later entry turned into a symlink had its mode set on whatever the link named.
func TestUntarDirectoryModesNeverFollowLinks(t *testing.T) {
	mt := time.Unix(1_700_000_000, 0)
	dir := func(name string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o777, ModTime: mt}}
	}
	sym := func(name, target string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, ModTime: mt}}
	}
	for _, mode := range []struct {
		name string
		opts UntarOpts
	}{
		{"refuse", UntarOpts{ParentLinks: Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true}},
		{"follow", UntarOpts{ParentLinks: Follow, Chown: true}},
	} {
		tests := []struct {
			name    string
			before  map[string]string // see mkTree
			entries func(host string) []entry
			wantErr string
		}{{
			name:    "a directory, then a link at its path",
			entries: func(host string) []entry { return []entry{dir("a/"), sym("a", host)} },
			wantErr: `entry "a": duplicate of an earlier entry`,
		}, {
			name:    "a directory and one below it, then a link at the first",
			entries: func(host string) []entry { return []entry{dir("a/"), dir("a/b/"), sym("./a", host)} },
			wantErr: `entry "./a": duplicate of an earlier entry`,
		}, {
			name:    "a directory already in the root, then a link at its path",
			before:  map[string]string{"a/b/f": "old"},
			entries: func(host string) []entry { return []entry{dir("a/b/"), sym("a", host)} },
			wantErr: `entry "a": a symlink cannot replace the directory "a"`,
		}}
		for _, tt := range tests {
			t.Run(mode.name+": "+tt.name, func(t *testing.T) {
				host := hostDir(t)
				want := statHost(t, host)
				root := t.TempDir()
				mkTree(t, root, tt.before)
				err := Untar(context.Background(), bytes.NewReader(mkTar(t, tt.entries(host))), root, mode.opts)
				if diff := cmp.Diff(want, statHost(t, host)); diff != "" {
					t.Errorf("Untar() changed the host directory (-before +after):\n%s", diff)
				}
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("Untar() error = %v, want %q", err, tt.wantErr)
				}
			})
		}
	}
}

// The stream rules above stop a stream from turning a directory into a link; this is the guard
// under them. Another writer (here Keep, called between entries) swaps a directory for a link to
// the host after its entry: the modes and times applied last, and entries below it, must fail
// on the link rather than follow it.
func TestUntarLinkSwappedInIsNotFollowed(t *testing.T) {
	mt := time.Unix(1_700_000_000, 0)
	for _, tt := range []struct {
		name    string
		opts    UntarOpts
		last    string // the entry after the swap
		wantErr string
	}{
		{"refuse: directory modes", UntarOpts{ParentLinks: Refuse}, "c", `entry "a/b/": openat2 a/b: too many levels of symbolic links`},
		{"follow: directory modes", UntarOpts{ParentLinks: Follow}, "c", `entry "a/b/": openat2 a/b: too many levels of symbolic links`},
		{"refuse: an entry below", UntarOpts{ParentLinks: Refuse}, "a/b/f", `entry "a/b/f": parent "a" of "a/b/f" is not a directory`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host := hostDir(t)
			want := statHost(t, host)
			root := t.TempDir()
			opts := tt.opts
			opts.Keep = func(rel string) bool {
				if rel == tt.last {
					if err := os.Rename(filepath.Join(root, "a"), filepath.Join(root, "moved")); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(host, filepath.Join(root, "a")); err != nil {
						t.Fatal(err)
					}
				}
				return true
			}
			entries := []entry{
				{hdr: tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o777, ModTime: mt}},
				{hdr: tar.Header{Name: "a/b/", Typeflag: tar.TypeDir, Mode: 0o777, ModTime: mt}},
				{hdr: tar.Header{Name: tt.last, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt}, body: "x"},
			}
			err := Untar(context.Background(), bytes.NewReader(mkTar(t, entries)), root, opts)
			if diff := cmp.Diff(want, statHost(t, host)); diff != "" {
				t.Errorf("Untar() changed the host directory (-before +after):\n%s", diff)
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Untar() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
