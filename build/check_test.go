package build

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type tarFile struct {
	hdr  tar.Header
	body string
}

func writeTar(t *testing.T, name string, files ...tarFile) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, e := range files {
		h := e.hdr
		h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	f.Close()
	return p
}

func TestDiffTars(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	reg := func(name, body string) tarFile {
		return tarFile{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}, body}
	}
	same := []tarFile{
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}, ""},
		reg("etc/motd", "hello\n"),
		{tar.Header{Name: "bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin", ModTime: epoch}, ""},
	}
	a := writeTar(t, "a.tar", append(same,
		reg("etc/ssh/ssh_host_ed25519_key", "key one"),
		reg("etc/mode", "x"),
		reg("etc/gone", "x"),
	)...)
	moded := reg("etc/mode", "x")
	moded.hdr.Mode, moded.hdr.Uid, moded.hdr.ModTime = 0o600, 101, epoch.Add(time.Second)
	moded.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01"}
	b := writeTar(t, "b.tar", append(same,
		reg("etc/ssh/ssh_host_ed25519_key", "key two"),
		moded,
		reg("etc/new", "x"),
	)...)
	got, err := DiffTars(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Difference{
		{"/etc/ssh/ssh_host_ed25519_key", "content (sha256 b6e2bb9d2c6b then 3c0d2f2d1e6e)"},
		{"/etc/mode", "mode 0644 then 0600"},
		{"/etc/mode", "owner 0:0 then 101:0"},
		{"/etc/mode", "mtime 2023-11-14T22:13:20Z then 2023-11-14T22:13:21Z"},
		{"/etc/mode", `xattrs [] then [security.capability="\x01"]`},
		{"/etc/gone", "only in the first build"},
		{"/etc/new", "only in the build without the cache"},
	}
	// The content sums are whatever sha256 says; compare their shape.
	for i := range got {
		if strings.HasPrefix(got[i].What, "content (sha256 ") {
			got[i].What = "content (sha256 X then Y)"
		}
	}
	want[0].What = "content (sha256 X then Y)"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DiffTars() (-want +got):\n%s", diff)
	}
	if d, err := DiffTars(a, a); err != nil || len(d) != 0 {
		t.Errorf("DiffTars(a, a) = %v, %v; want nothing", d, err)
	}
	msg := (&CheckError{Differences: want[:2]}).Error()
	if wantMsg := "build --check: the build without the cache differs from the first in 2 place(s):\n  /etc/ssh/ssh_host_ed25519_key: content (sha256 X then Y)\n  /etc/mode: mode 0644 then 0600"; msg != wantMsg {
		t.Errorf("CheckError = %q\nwant %q", msg, wantMsg)
	}
}
