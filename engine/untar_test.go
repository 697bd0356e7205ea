package engine

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

type entry struct {
	hdr  tar.Header
	body string
}

func mkTar(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Format == tar.FormatUnknown && len(h.PAXRecords) > 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// meta is what we compare per path.
type meta struct {
	Type     string
	Mode     uint32 // permission bits incl. setuid/setgid/sticky
	UID, GID uint32
	Link     string
	Rdev     uint64
	Body     string
	Xattr    string
	Mtime    int64
	Nlink    uint64
}

func statMeta(t *testing.T, p string) meta {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	m := meta{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Sec}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m.Type = "dir"
	case unix.S_IFREG:
		m.Type = "reg"
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Body = string(b)
		m.Nlink = uint64(st.Nlink)
		buf := make([]byte, 64)
		if n, err := unix.Lgetxattr(p, "user.foo", buf); err == nil {
			m.Xattr = string(buf[:n])
		}
	case unix.S_IFLNK:
		m.Type = "symlink"
		m.Mode = 0
		m.Link, _ = os.Readlink(p)
	case unix.S_IFCHR:
		m.Type = "char"
		m.Rdev = st.Rdev
	case unix.S_IFIFO:
		m.Type = "fifo"
	}
	return m
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, mknod)")
	}
}

func TestUntar(t *testing.T) {
	requireRoot(t)
	mt := time.Unix(1700000000, 0)
	good := []entry{
		{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}},
		{hdr: tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 101, Gid: 102, ModTime: mt}},
		{hdr: tar.Header{Name: "etc/owned", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 101, Gid: 102, ModTime: mt}, body: "owned\n"},
		{hdr: tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, ModTime: mt}, body: "su"},
		{hdr: tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mt}},
		{hdr: tar.Header{Name: "etc/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/owned", Uid: 101, Gid: 102, ModTime: mt}},
		{hdr: tar.Header{Name: "etc/hard", Typeflag: tar.TypeLink, Linkname: "etc/owned", ModTime: mt}},
		{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mt}},
		{hdr: tar.Header{Name: "dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: mt}},
		{hdr: tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt,
			PAXRecords: map[string]string{"SCHILY.xattr.user.foo": "bar"}}, body: "x"},
	}
	sec := mt.Unix()
	want := map[string]meta{
		".":         {Type: "dir", Mode: 0o755, Mtime: sec},
		"etc":       {Type: "dir", Mode: 0o755, UID: 101, GID: 102, Mtime: sec},
		"etc/owned": {Type: "reg", Mode: 0o640, UID: 101, GID: 102, Body: "owned\n", Mtime: sec, Nlink: 2},
		"etc/hard":  {Type: "reg", Mode: 0o640, UID: 101, GID: 102, Body: "owned\n", Mtime: sec, Nlink: 2},
		"bin":       {Type: "dir", Mode: 0o755, Mtime: -1},
		"bin/su":    {Type: "reg", Mode: 0o4755, Body: "su", Mtime: sec, Nlink: 1},
		"tmp":       {Type: "dir", Mode: 0o1777, Mtime: sec},
		"etc/link":  {Type: "symlink", UID: 101, GID: 102, Link: "/etc/owned", Mtime: sec},
		"dev":       {Type: "dir", Mode: 0o755, Mtime: -1},
		"dev/null":  {Type: "char", Mode: 0o666, Rdev: unix.Mkdev(1, 3), Mtime: sec},
		"dev/fifo":  {Type: "fifo", Mode: 0o600, Mtime: sec},
		"x":         {Type: "reg", Mode: 0o644, Body: "x", Xattr: "bar", Mtime: sec, Nlink: 1},
	}

	tests := []struct {
		name    string
		entries []entry
		want    map[string]meta
		wantErr string
	}{
		{name: "good", entries: good, want: want},
		{name: "dotdot", entries: append(append([]entry{}, good...),
			entry{hdr: tar.Header{Name: "../x", Typeflag: tar.TypeReg, Mode: 0o644}, body: "evil"}), wantErr: `path contains ".."`},
		{name: "absolute", entries: []entry{
			{hdr: tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, body: "evil"}}, wantErr: "absolute"},
		{name: "hardlink escape", entries: []entry{
			{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}}}, wantErr: "outside the root"},
		{name: "through symlink", entries: []entry{
			{hdr: tar.Header{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}},
			{hdr: tar.Header{Name: "s/evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "evil"}}, wantErr: "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "rootfs")
			// A previous Dest must survive a failed unpack.
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dest, "old"), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := mark(dest, markOutput); err != nil {
				t.Fatal(err)
			}
			err := unpackDir(bytes.NewReader(mkTar(t, tt.entries)), dest)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				names := dirNames(t, parent)
				if diff := cmp.Diff([]string{"rootfs"}, names); diff != "" {
					t.Errorf("leftovers in parent (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"old"}, dirNames(t, dest)); diff != "" {
					t.Errorf("dest changed (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"rootfs"}, dirNames(t, parent)); diff != "" {
				t.Errorf("leftovers in parent (-want +got):\n%s", diff)
			}
			got := map[string]meta{}
			filepath.Walk(dest, func(p string, _ os.FileInfo, err error) error {
				if err != nil {
					t.Fatal(err)
				}
				rel, _ := filepath.Rel(dest, p)
				m := statMeta(t, p)
				if w, ok := tt.want[rel]; ok && w.Mtime == -1 {
					m.Mtime = -1 // implicit parent: time not specified
				}
				got[rel] = m
				return nil
			})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("unpacked tree (-want +got):\n%s", diff)
			}
		})
	}
}

// unpackDir is the dir output's path from a tar stream to dest.
func unpackDir(r io.Reader, dest string) error {
	t, _, err := unpackTemp(r, dest)
	if err != nil {
		return err
	}
	if err := commitDir(t, dest, DestOpts{}, ""); err != nil {
		t.Remove()
		return err
	}
	return nil
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
