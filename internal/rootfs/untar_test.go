package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
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

func mkTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Format == tar.FormatUnknown && (len(h.PAXRecords) > 0 || !h.AccessTime.IsZero()) {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// meta is what is compared per path. Mtime -1 in a want means times are not specified (an
// implicit parent, or a path made before the archive).
type meta struct {
	Type         string
	Mode         uint32 // permission bits incl. setuid/setgid/sticky
	UID, GID     uint32
	Link         string
	Rdev         uint64
	Body         string
	Xattr        string
	Atime, Mtime int64
	Nlink        uint64
}

// readTree stats every path under root before reading any file, since reading moves atimes.
func readTree(t *testing.T, root string, want map[string]meta) map[string]meta {
	t.Helper()
	got := map[string]meta{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		m := meta{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Sec}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			m.Type = "dir"
		case unix.S_IFREG:
			m.Type, m.Atime, m.Nlink = "reg", st.Atim.Sec, uint64(st.Nlink)
		case unix.S_IFLNK:
			m.Type, m.Mode = "symlink", 0
			m.Link, _ = os.Readlink(p)
		case unix.S_IFCHR:
			m.Type, m.Rdev = "char", st.Rdev
		case unix.S_IFIFO:
			m.Type = "fifo"
		}
		if w, ok := want[rel]; ok && w.Mtime == -1 {
			m.Atime, m.Mtime = 0, -1
		}
		got[rel] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, m := range got {
		if m.Type != "reg" {
			continue
		}
		p := filepath.Join(root, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Body = string(b)
		buf := make([]byte, 64)
		if n, err := unix.Lgetxattr(p, "user.foo", buf); err == nil {
			m.Xattr = string(buf[:n])
		}
		got[rel] = m
	}
	return got
}

func TestUntar(t *testing.T) {
	mt := time.Unix(1700000000, 0)
	at := time.Unix(1700000500, 0)
	sec := mt.Unix()
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	dir := func(name string, mode int64) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode, ModTime: mt}}
	}
	reg := func(name string, mode int64, body string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, ModTime: mt}, body: body}
	}
	sym := func(name, target string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, ModTime: mt}}
	}
	hard := func(name, target string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, ModTime: mt}}
	}
	owned := func(e entry, uid, gid int) entry { e.hdr.Uid, e.hdr.Gid = uid, gid; return e }
	follow := UntarOpts{ParentLinks: Follow}
	refuse := UntarOpts{ParentLinks: Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true}
	rootDir := meta{Type: "dir", Mode: 0o755, UID: uid, GID: gid, Mtime: -1}

	tests := []struct {
		name     string
		needRoot bool // chown, mknod
		opts     UntarOpts
		before   map[string]string // see mkTree
		entries  []entry
		want     map[string]meta
		wantErr  string
	}{{
		name:   "follow: merged /usr links lead on inside the root",
		opts:   follow,
		before: map[string]string{"usr/lib": "dir", "lib": "->usr/lib"},
		entries: []entry{
			dir("./", 0o700), // the root itself: skipped without RootEntry
			dir("./lib/", 0o755),
			dir("./lib/modules/", 0o755),
			reg("./lib/modules/x", 0o644, "x"),
			hard("./usr/y", "./lib/modules/x"),
		},
		want: map[string]meta{
			".":                 rootDir,
			"lib":               {Type: "symlink", UID: uid, GID: gid, Link: "usr/lib", Mtime: -1},
			"usr":               rootDir,
			"usr/lib":           rootDir,
			"usr/lib/modules":   {Type: "dir", Mode: 0o755, UID: uid, GID: gid, Mtime: sec},
			"usr/lib/modules/x": {Type: "reg", Mode: 0o644, UID: uid, GID: gid, Body: "x", Atime: sec, Mtime: sec, Nlink: 2},
			"usr/y":             {Type: "reg", Mode: 0o644, UID: uid, GID: gid, Body: "x", Atime: sec, Mtime: sec, Nlink: 2},
		},
	}, {
		name:    "follow: an absolute link already in the root stays in the root",
		opts:    follow,
		before:  map[string]string{"lib": "->/elsewhere"},
		entries: []entry{reg("./lib/file", 0o644, "x")},
		want: map[string]meta{
			".":              rootDir,
			"lib":            {Type: "symlink", UID: uid, GID: gid, Link: "/elsewhere", Mtime: -1},
			"elsewhere":      rootDir,
			"elsewhere/file": {Type: "reg", Mode: 0o644, UID: uid, GID: gid, Body: "x", Atime: sec, Mtime: sec, Nlink: 1},
		},
	}, {
		name: "follow: Keep lays down kept entries with the directories above them",
		opts: UntarOpts{ParentLinks: Follow, Keep: func(rel string) bool { return strings.HasPrefix(rel, "a/b/") }},
		entries: []entry{
			dir("./a/", 0o750),
			reg("./a/other", 0o644, "no"),
			dir("./a/b/", 0o555), // read-only, yet filled: modes are set last
			reg("./a/b/f", 0o600, "f"),
			dir("./c/", 0o755),
		},
		want: map[string]meta{
			".":     rootDir,
			"a":     {Type: "dir", Mode: 0o750, UID: uid, GID: gid, Mtime: sec},
			"a/b":   {Type: "dir", Mode: 0o555, UID: uid, GID: gid, Mtime: sec},
			"a/b/f": {Type: "reg", Mode: 0o600, UID: uid, GID: gid, Body: "f", Atime: sec, Mtime: sec, Nlink: 1},
		},
	}, {
		name:    "follow: an entry replaces what is at its path",
		opts:    follow,
		before:  map[string]string{"f": "old", "d/x": "old"},
		entries: []entry{sym("f", "d"), dir("d/", 0o711)},
		want: map[string]meta{
			".":   rootDir,
			"f":   {Type: "symlink", UID: uid, GID: gid, Link: "d", Mtime: sec},
			"d":   {Type: "dir", Mode: 0o711, UID: uid, GID: gid, Mtime: sec},
			"d/x": {Type: "reg", Mode: 0o644, UID: uid, GID: gid, Body: "old", Mtime: -1, Nlink: 1},
		},
	}, {
		name:    "follow: absolute name",
		opts:    follow,
		entries: []entry{reg("/etc/passwd", 0o644, "evil")},
		wantErr: `entry "/etc/passwd": absolute path`,
	}, {
		name:    "follow: dot-dot name",
		opts:    follow,
		entries: []entry{reg("./usr/../../x", 0o644, "evil")},
		wantErr: `entry "./usr/../../x": path contains ".."`,
	}, {
		name:    "follow: escaping relative symlink",
		opts:    follow,
		entries: []entry{sym("./usr/evil", "../../etc")},
		wantErr: `entry "./usr/evil": symlink to "../../etc": target leaves the root`,
	}, {
		name:    "follow: hard link outside",
		opts:    follow,
		entries: []entry{hard("./x", "../../etc/shadow")},
		wantErr: `entry "./x": hardlink to "../../etc/shadow" outside the root`,
	}, {
		name:    "follow: absolute hard link",
		opts:    follow,
		entries: []entry{hard("./x", "/etc/shadow")},
		wantErr: `entry "./x": hardlink to "/etc/shadow" outside the root`,
	}, {
		name:    "follow: link in the root climbing above it",
		opts:    follow,
		before:  map[string]string{"up": "->/../etc"},
		entries: []entry{reg("./up/x", 0o644, "evil")},
		wantErr: `entry "./up/x": path "up" leaves the root`,
	}, {
		name:     "refuse: a fresh tree, faithfully",
		needRoot: true,
		opts:     refuse,
		entries: []entry{
			dir("./", 0o751),
			owned(dir("etc/", 0o755), 101, 102),
			owned(reg("etc/owned", 0o640, "owned\n"), 101, 102),
			owned(reg("bin/su", 0o4755, "su"), 101, 0), // setuid survives the chown
			dir("tmp/", 0o1777),
			owned(sym("etc/link", "/etc/owned"), 101, 102),
			hard("etc/hard", "etc/owned"),
			{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mt}},
			{hdr: tar.Header{Name: "dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: mt}},
			{hdr: tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt, AccessTime: at,
				PAXRecords: map[string]string{"SCHILY.xattr.user.foo": "bar"}}, body: "x"},
			{hdr: tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "c"}}},
		},
		want: map[string]meta{
			".":         {Type: "dir", Mode: 0o751, Mtime: sec},
			"etc":       {Type: "dir", Mode: 0o755, UID: 101, GID: 102, Mtime: sec},
			"etc/owned": {Type: "reg", Mode: 0o640, UID: 101, GID: 102, Body: "owned\n", Atime: sec, Mtime: sec, Nlink: 2},
			"etc/hard":  {Type: "reg", Mode: 0o640, UID: 101, GID: 102, Body: "owned\n", Atime: sec, Mtime: sec, Nlink: 2},
			"bin":       {Type: "dir", Mode: 0o755, Mtime: -1},
			"bin/su":    {Type: "reg", Mode: 0o4755, UID: 101, Body: "su", Atime: sec, Mtime: sec, Nlink: 1},
			"tmp":       {Type: "dir", Mode: 0o1777, Mtime: sec},
			"etc/link":  {Type: "symlink", UID: 101, GID: 102, Link: "/etc/owned", Mtime: sec},
			"dev":       {Type: "dir", Mode: 0o755, Mtime: -1},
			"dev/null":  {Type: "char", Mode: 0o666, Rdev: unix.Mkdev(1, 3), Mtime: sec},
			"dev/fifo":  {Type: "fifo", Mode: 0o600, Mtime: sec},
			"x":         {Type: "reg", Mode: 0o644, Body: "x", Xattr: "bar", Atime: at.Unix(), Mtime: sec, Nlink: 1},
		},
	}, {
		name:     "refuse: a directory replaces a link already in the root",
		needRoot: true,
		opts:     refuse,
		before:   map[string]string{"d": "->/tmp"},
		entries:  []entry{dir("d/", 0o700), reg("d/f", 0o644, "f")},
		want: map[string]meta{
			".":   rootDir,
			"d":   {Type: "dir", Mode: 0o700, Mtime: sec},
			"d/f": {Type: "reg", Mode: 0o644, Body: "f", Atime: sec, Mtime: sec, Nlink: 1},
		},
	}, {
		name:    "refuse: symlinked parent",
		opts:    refuse,
		entries: []entry{sym("s", "/tmp"), reg("s/evil", 0o644, "evil")},
		wantErr: `entry "s/evil": parent "s" of "s/evil" is not a directory`,
	}, {
		name:    "refuse: parent already in the root is a link",
		opts:    refuse,
		before:  map[string]string{"usr/lib": "dir", "lib": "->usr/lib"},
		entries: []entry{reg("lib/x", 0o644, "x")},
		wantErr: `parent "lib" of "lib/x" is not a directory`,
	}, {
		name:    "refuse: hard link through a symlinked parent",
		opts:    refuse,
		before:  map[string]string{"s": "->/etc"},
		entries: []entry{hard("h", "s/passwd")},
		wantErr: `entry "h": hardlink to "s/passwd": parent "s" of "s/passwd" is not a directory`,
	}, {
		name:    "refuse: hard link escape",
		opts:    refuse,
		entries: []entry{hard("h", "../../etc/passwd")},
		wantErr: `entry "h": hardlink to "../../etc/passwd" outside the root`,
	}, {
		name:    "refuse: the root entry is not a directory",
		opts:    refuse,
		entries: []entry{reg(".", 0o644, "")},
		wantErr: `entry ".": the root is a directory`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needRoot && os.Geteuid() != 0 {
				t.Skip("needs root (chown, mknod)")
			}
			root := t.TempDir()
			if err := os.Chmod(root, 0o755); err != nil {
				t.Fatal(err)
			}
			mkTree(t, root, tt.before)
			err := Untar(context.Background(), bytes.NewReader(mkTar(t, tt.entries)), root, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Untar() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := readTree(t, root, tt.want)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Untar() tree mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUntarCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tarball := mkTar(t, []entry{{hdr: tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}})
	err := Untar(ctx, bytes.NewReader(tarball), t.TempDir(), UntarOpts{})
	if diff := cmp.Diff(context.Canceled, err, cmpErrors); diff != "" {
		t.Errorf("Untar() error mismatch (-want +got):\n%s", diff)
	}
}

var cmpErrors = cmp.Comparer(func(a, b error) bool { return a == b })

func TestName(t *testing.T) {
	type result struct {
		Rel string
		Err string
	}
	tests := []struct {
		in   string
		want result
	}{
		{"./", result{Rel: "."}},
		{".", result{Rel: "."}},
		{"a/b/", result{Rel: "a/b"}},
		{"./a//b", result{Rel: "a/b"}},
		{"/a", result{Err: "absolute path"}},
		{"../x", result{Err: `path contains ".."`}},
		{"a/../../x", result{Err: `path contains ".."`}},
		{"a/..", result{Err: `path contains ".."`}},
		{"", result{Err: "empty name"}},
	}
	for _, tt := range tests {
		rel, err := Name(tt.in)
		got := result{Rel: rel}
		if err != nil {
			got.Err = err.Error()
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Name(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

// A symlink and a device cannot be opened to set their xattrs; they are set through the parent's
// descriptor without following the link.
func TestUntarXattrsOnLinksAndDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (trusted xattrs, mknod)")
	}
	pax := map[string]string{"SCHILY.xattr.trusted.rootfsc": "v"}
	tarball := mkTar(t, []entry{
		{hdr: tar.Header{Name: "target", Typeflag: tar.TypeReg, Mode: 0o644}, body: "t"},
		{hdr: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "target", PAXRecords: pax}},
		{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, PAXRecords: pax}},
	})
	root := t.TempDir()
	if err := Untar(context.Background(), bytes.NewReader(tarball), root, UntarOpts{ParentLinks: Refuse, Xattrs: true}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, name := range []string{"target", "link", "null"} {
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(filepath.Join(root, name), "trusted.rootfsc", buf)
		if err == nil {
			got[name] = string(buf[:n])
		}
	}
	want := map[string]string{"link": "v", "null": "v"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("xattrs mismatch (-want +got):\n%s", diff)
	}
}
