package engine

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// TestReuse: a dir output written over a previous one takes, by hard link, the previous files
// whose header and bytes are the stream's, writes every other one, and gives the same tree as an
// export into an empty destination would.
func TestReuse(t *testing.T) {
	requireRoot(t)
	mt := time.Unix(1700000000, 0)
	reg := func(name, body string, mode int64, uid int, xattr string) entry {
		h := tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Uid: uid, Gid: uid, ModTime: mt}
		if xattr != "" {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.foo": xattr}
		}
		return entry{hdr: h, body: body}
	}
	dir := func(name string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}}
	}
	previous := []entry{
		dir("./"), dir("etc/"),
		reg("etc/same", "same\n", 0o644, 0, ""),
		reg("etc/content", "old\n", 0o644, 0, ""),
		reg("etc/longer", "old", 0o644, 0, ""),
		reg("etc/mode", "m", 0o644, 0, ""),
		reg("etc/owner", "o", 0o644, 0, ""),
		reg("etc/xattr", "x", 0o644, 0, "a"),
		reg("etc/xattr-same", "x", 0o644, 0, "a"),
		reg("etc/big", string(bytes.Repeat([]byte("0123456789abcdef"), 40000)), 0o644, 0, ""),
		reg("etc/big-tail", string(bytes.Repeat([]byte("0123456789abcdef"), 40000)), 0o644, 0, ""),
		reg("etc/was-hardlinked", "h", 0o644, 0, ""),
		{hdr: tar.Header{Name: "etc/other-name", Typeflag: tar.TypeLink, Linkname: "etc/was-hardlinked", ModTime: mt}},
		reg("etc/becomes-link", "l", 0o644, 0, ""),
		reg("etc/gone", "g", 0o644, 0, ""),
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000)
	bigTail := append(bytes.Clone(big[:len(big)-1]), 'X')
	next := []entry{
		dir("./"), dir("etc/"),
		reg("etc/same", "same\n", 0o644, 0, ""),
		reg("etc/content", "new\n", 0o644, 0, ""), // same size, other bytes
		reg("etc/longer", "older", 0o644, 0, ""),
		reg("etc/mode", "m", 0o600, 0, ""),
		reg("etc/owner", "o", 0o644, 7, ""),
		reg("etc/xattr", "x", 0o644, 0, "b"),
		reg("etc/xattr-same", "x", 0o644, 0, "a"),
		reg("etc/big", string(big), 0o644, 0, ""),
		reg("etc/big-tail", string(bigTail), 0o644, 0, ""), // differs in its last byte
		reg("etc/was-hardlinked", "h", 0o644, 0, ""),
		{hdr: tar.Header{Name: "etc/becomes-link", Typeflag: tar.TypeSymlink, Linkname: "same", ModTime: mt}},
		reg("etc/new", "n", 0o644, 0, ""),
		reg("etc/copy-of-same", "same\n", 0o644, 0, ""), // same bytes, another path: written
	}
	wantReused := []string{"etc/big", "etc/same", "etc/xattr-same"}

	parent := t.TempDir()
	dest := filepath.Join(parent, "rootfs")
	if err := unpackDir(bytes.NewReader(mkTar(t, previous)), dest); err != nil {
		t.Fatal(err)
	}
	inodes := func(root string) map[string]uint64 {
		m := map[string]uint64{}
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			m[rel] = fi.Sys().(*syscall.Stat_t).Ino
			return nil
		})
		return m
	}
	before := inodes(dest)

	tmp, stats, err := unpackTemp(bytes.NewReader(mkTar(t, next)), dest)
	if err != nil {
		t.Fatal(err)
	}
	if err := commitDir(tmp, dest, DestOpts{}, ""); err != nil {
		t.Fatal(err)
	}
	var reused []string
	for rel, ino := range inodes(dest) {
		if fi, _ := os.Lstat(filepath.Join(dest, rel)); fi.Mode().IsRegular() && before[rel] == ino {
			reused = append(reused, rel)
		}
	}
	if diff := cmp.Diff(wantReused, slices.Sorted(slices.Values(reused))); diff != "" {
		t.Errorf("files kept from the previous output (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(rootfs.UntarStats{Reused: 3, Written: 9}, stats); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}

	// The same tree as from an empty destination, link counts included.
	fresh := filepath.Join(parent, "fresh")
	if err := unpackDir(bytes.NewReader(mkTar(t, next)), fresh); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tree(t, fresh), tree(t, dest)); diff != "" {
		t.Errorf("tree over a previous output differs from a fresh one (-fresh +reused):\n%s", diff)
	}
}

// TestReuseRefuses: what the previous output holds is never brought in through a link, or when
// its inode has another name, even with the stream's bytes.
func TestReuseRefuses(t *testing.T) {
	requireRoot(t)
	mt := time.Unix(1700000000, 0)
	stream := mkTar(t, []entry{
		{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}},
		{hdr: tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}},
		{hdr: tar.Header{Name: "etc/secret", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt, Size: 2}, body: "s\n"},
		{hdr: tar.Header{Name: "lib/f", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt, Size: 2}, body: "f\n"},
	})
	tests := []struct {
		name  string
		setup func(t *testing.T, dest, outside string)
	}{
		{"a file with a second name outside", func(t *testing.T, dest, outside string) {
			must(t, os.Remove(filepath.Join(dest, "etc/secret")))
			must(t, os.Link(filepath.Join(outside, "secret"), filepath.Join(dest, "etc/secret")))
		}},
		{"a parent that is a link out", func(t *testing.T, dest, outside string) {
			must(t, os.RemoveAll(filepath.Join(dest, "lib")))
			must(t, os.Symlink(outside, filepath.Join(dest, "lib")))
		}},
		{"the file itself a link out", func(t *testing.T, dest, outside string) {
			must(t, os.Remove(filepath.Join(dest, "lib/f")))
			must(t, os.Symlink(filepath.Join(outside, "f"), filepath.Join(dest, "lib/f")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			must(t, os.Mkdir(outside, 0o755))
			for name, body := range map[string]string{"secret": "s\n", "f": "f\n"} {
				p := filepath.Join(outside, name)
				must(t, os.WriteFile(p, []byte(body), 0o644))
				must(t, os.Chtimes(p, mt, mt))
			}
			dest := filepath.Join(parent, "rootfs")
			must(t, unpackDir(bytes.NewReader(stream), dest))
			tt.setup(t, dest, outside)
			tmp, stats, err := unpackTemp(bytes.NewReader(stream), dest)
			must(t, err)
			must(t, commitDir(tmp, dest, DestOpts{}, ""))
			for _, name := range []string{"secret", "f"} {
				var st unix.Stat_t
				must(t, unix.Lstat(filepath.Join(outside, name), &st))
				if st.Nlink != 1 {
					t.Errorf("%s outside the destination has %d links after the export, want 1", name, st.Nlink)
				}
			}
			if stats.Reused != 1 {
				t.Errorf("reused %d files, want 1 (only the untouched one)", stats.Reused)
			}
		})
	}
}

// tree is every entry's metadata below root, by path.
func tree(t *testing.T, root string) map[string]meta {
	got := map[string]meta{}
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		got[rel] = statMeta(t, p)
		return nil
	})
	return got
}
