package unpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

var mtime = time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)

// writeDeb writes a .deb whose data member, compressed as comp ("", "xz", "zst", "gz"), holds hdrs.
func writeDeb(t *testing.T, comp string, hdrs []*tar.Header, bodies map[string]string) string {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, h := range hdrs {
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		body := bodies[h.Name]
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	return writeDebFile(t, debBytes(t, comp, raw.Bytes()))
}

// writeDebFile writes deb to test_1_amd64.deb in a new directory and returns its path.
func writeDebFile(t *testing.T, deb []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test_1_amd64.deb")
	if err := os.WriteFile(p, deb, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// debBytes is a .deb whose data member is tarball compressed as comp ("", "xz", "zst", "gz").
func debBytes(t testing.TB, comp string, tarball []byte) []byte {
	t.Helper()
	var data bytes.Buffer
	var w io.WriteCloser
	switch comp {
	case "":
		w = nopCloser{&data}
	case "xz":
		xw, err := xz.NewWriter(&data)
		if err != nil {
			t.Fatal(err)
		}
		w = xw
	case "zst":
		zw, err := zstd.NewWriter(&data)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	case "gz":
		w = gzip.NewWriter(&data)
	}
	w.Write(tarball)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	name := "data.tar"
	if comp != "" {
		name += "." + comp
	}
	return arArchive(
		arMember{"debian-binary", []byte("2.0\n")},
		arMember{"control.tar.xz", []byte("x")}, // odd length: exercises padding
		arMember{name, data.Bytes()},
	)
}

type arMember struct {
	name string
	data []byte
}

// arArchive is the ar archive of members, in the common format dpkg-deb writes.
func arArchive(members ...arMember) []byte {
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 0, 0, 0, "100644", len(m.data))
		ar.Write(m.data)
		if len(m.data)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	return ar.Bytes()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestExtract(t *testing.T) {
	for _, comp := range []string{"", "xz", "zst", "gz"} {
		t.Run("data.tar."+comp, func(t *testing.T) {
			hdrs := []*tar.Header{
				{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "./bin/tool", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 0, Gid: 0},
				{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "./etc/secret", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 0, Gid: 42},
				{Name: "./etc/alt", Typeflag: tar.TypeSymlink, Linkname: "/etc/alternatives/alt"},
				{Name: "./usr/share/doc/", Typeflag: tar.TypeDir, Mode: 0o555},
				{Name: "./usr/share/doc/rel", Typeflag: tar.TypeSymlink, Linkname: "../../../etc/secret"},
				{Name: "./usr/share/doc/hard", Typeflag: tar.TypeLink, Linkname: "./etc/secret"},
			}
			deb := writeDeb(t, comp, hdrs, map[string]string{"./bin/tool": "#!/bin/sh\n", "./etc/secret": "s3cret"})
			root := t.TempDir()
			// merged /usr: bin is a link made before extraction.
			os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
			os.Symlink("usr/bin", filepath.Join(root, "bin"))
			if err := Extract(context.Background(), deb, root); err != nil {
				t.Fatal(err)
			}
			type entry struct {
				Mode  os.FileMode
				Link  string
				Body  string
				MTime time.Time
			}
			got := map[string]entry{}
			for _, p := range []string{"bin", "usr/bin/tool", "etc/secret", "etc/alt", "usr/share/doc", "usr/share/doc/rel", "usr/share/doc/hard"} {
				fi, err := os.Lstat(filepath.Join(root, p))
				if err != nil {
					t.Fatal(err)
				}
				e := entry{Mode: fi.Mode(), MTime: fi.ModTime().UTC()}
				if fi.Mode()&os.ModeSymlink != 0 {
					e.Link, _ = os.Readlink(filepath.Join(root, p))
					e.MTime = time.Time{}
				} else if fi.Mode().IsRegular() {
					b, _ := os.ReadFile(filepath.Join(root, p))
					e.Body = string(b)
				}
				if p == "bin" {
					e.MTime = time.Time{}
				}
				got[p] = e
			}
			want := map[string]entry{
				"bin":                {Mode: os.ModeSymlink | 0o777, Link: "usr/bin"},
				"usr/bin/tool":       {Mode: os.ModeSetuid | 0o755, Body: "#!/bin/sh\n", MTime: mtime},
				"etc/secret":         {Mode: 0o640, Body: "s3cret", MTime: mtime},
				"etc/alt":            {Mode: os.ModeSymlink | 0o777, Link: "/etc/alternatives/alt"},
				"usr/share/doc":      {Mode: os.ModeDir | 0o555, MTime: mtime},
				"usr/share/doc/rel":  {Mode: os.ModeSymlink | 0o777, Link: "../../../etc/secret"},
				"usr/share/doc/hard": {Mode: 0o640, Body: "s3cret", MTime: mtime},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Extract() mismatch (-want +got):\n%s", diff)
			}
			if os.Geteuid() == 0 {
				fi, _ := os.Stat(filepath.Join(root, "etc/secret"))
				if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 42 {
					t.Errorf("etc/secret owner %d:%d, want 0:42", st.Uid, st.Gid)
				}
			}
		})
	}
}

func TestExtractRefuses(t *testing.T) {
	tests := []struct {
		name    string
		hdrs    []*tar.Header
		wantErr string
	}{
		{"absolute", []*tar.Header{{Name: "/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}}, `entry "/etc/passwd": absolute path`},
		{"dotdot", []*tar.Header{{Name: "./usr/../../x", Typeflag: tar.TypeReg, Mode: 0o644}}, `entry "./usr/../../x": path contains ".."`},
		{"escaping symlink", []*tar.Header{{Name: "./usr/evil", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}}, `entry "./usr/evil": symlink to "../../etc": target leaves the root`},
		{"hardlink outside", []*tar.Header{{Name: "./x", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}}, `entry "./x": hardlink to "../../etc/shadow" outside the root`},
		{"absolute hardlink", []*tar.Header{{Name: "./x", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}}, `entry "./x": hardlink to "/etc/shadow" outside the root`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deb := writeDeb(t, "xz", tt.hdrs, nil)
			root := t.TempDir()
			err := Extract(context.Background(), deb, root)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), deb) {
				t.Fatalf("Extract() error = %v, want naming the deb and containing %q", err, tt.wantErr)
			}
		})
	}
}

// An absolute symlink already in the root is followed inside the root, never on the host.
func TestExtractAbsoluteLinkStaysInRoot(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	first := writeDeb(t, "", []*tar.Header{{Name: "./lib", Typeflag: tar.TypeSymlink, Linkname: outside}}, nil)
	if err := Extract(context.Background(), first, root); err != nil {
		t.Fatal(err)
	}
	second := writeDeb(t, "", []*tar.Header{{Name: "./lib/file", Typeflag: tar.TypeReg, Mode: 0o644}}, map[string]string{"./lib/file": "x"})
	if err := Extract(context.Background(), second, root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "file")); err == nil {
		t.Fatal("file written outside the root")
	}
	if _, err := os.Stat(filepath.Join(root, outside, "file")); err != nil {
		t.Fatalf("file not under the root: %v", err)
	}
}
