package unpack

// Crafted packages (issue 8): each is refused with the package and the entry named, and a
// directory next to the root is as it was. The tests go through Bootstrap, what the in-build
// helper runs.

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// outside makes a directory next to a new root, with a file and a subdirectory in it stamped
// with an old time, and returns both.
func outside(t *testing.T) (host, root string) {
	t.Helper()
	dir := t.TempDir()
	host, root = filepath.Join(dir, "host"), filepath.Join(dir, "root")
	old := time.Unix(1_000_000_000, 0)
	for _, err := range []error{
		os.MkdirAll(filepath.Join(host, "b"), 0o700),
		os.WriteFile(filepath.Join(host, "f"), []byte("host"), 0o600),
		os.Chtimes(filepath.Join(host, "b"), old, old),
		os.Chtimes(host, old, old),
		os.Mkdir(root, 0o755),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return host, root
}

// snapshot lists everything under dir with its mode, time and size.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.ModTime().Unix(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tarOf is the tar of hdrs, bodies by name.
func tarOf(t testing.TB, hdrs []*tar.Header, bodies map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.ModTime = mtime
		h.Size = int64(len(bodies[h.Name]))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(bodies[h.Name]))
	}
	tw.Close()
	return buf.Bytes()
}

// namedDeb writes deb as file name in a new directory.
func namedDeb(t *testing.T, name string, deb []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, deb, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBootstrapCraftedPackages(t *testing.T) {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o777} }
	link := func(name string, typ byte, target string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: typ, Linkname: target}
	}
	dev := func(name string, typ byte, major, minor int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: typ, Mode: 0o666, Devmajor: major, Devminor: minor}
	}
	// A header that says its file decodes to 17 GiB; the data never comes.
	bomb := func(t testing.TB) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: "./big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 17 << 30}); err != nil {
			t.Fatal(err)
		}
		tw.Flush()
		return buf.Bytes()
	}
	tests := []struct {
		name    string
		deb     func(t *testing.T, host string) []byte
		wantErr func(host string) string // after "extracting evil_1_amd64.deb: extract <path>: "
	}{
		{"dot-dot", func(t *testing.T, _ string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{reg("./usr/../../host/x")}, nil))
		}, fixed(`entry "./usr/../../host/x": path contains ".."`)},
		{"absolute", func(t *testing.T, host string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{reg(host + "/x")}, nil))
		}, func(host string) string { return fmt.Sprintf(`entry %q: absolute path`, host+"/x") }},
		{"symlink out", func(t *testing.T, _ string) []byte {
			return debBytes(t, "gz", tarOf(t, []*tar.Header{link("./usr/s", tar.TypeSymlink, "../../host"), reg("./usr/s/x")}, nil))
		}, fixed(`entry "./usr/s": symlink to "../../host": target leaves the root`)},
		{"hard link out", func(t *testing.T, _ string) []byte {
			return debBytes(t, "zst", tarOf(t, []*tar.Header{link("./x", tar.TypeLink, "../host/f")}, nil))
		}, fixed(`entry "./x": hardlink to "../host/f" outside the root`)},
		{"absolute hard link", func(t *testing.T, host string) []byte {
			return debBytes(t, "", tarOf(t, []*tar.Header{link("./x", tar.TypeLink, host+"/f")}, nil))
		}, func(host string) string {
			return fmt.Sprintf(`entry "./x": hardlink to %q outside the root`, host+"/f")
		}},
		{"hard link through an absolute symlink stays in the root", func(t *testing.T, host string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{link("./s", tar.TypeSymlink, host), link("./h", tar.TypeLink, "./s/f")}, nil))
		}, func(host string) string {
			// Bootstrap made tmp; the next element of the host's path is not in the root.
			return fmt.Sprintf(`entry "./h": hardlink to "./s/f": openat2 %s: no such file or directory`, strings.Join(strings.Split(host, "/")[1:3], "/"))
		}},
		{"directory then a symlink at its path", func(t *testing.T, host string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{dir("./etc/"), link("./etc", tar.TypeSymlink, host)}, nil))
		}, fixed(`entry "./etc": duplicate of an earlier entry`)},
		{"symlink then a directory at its path", func(t *testing.T, host string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{link("./e", tar.TypeSymlink, host), dir("./e/")}, nil))
		}, fixed(`entry "./e/": duplicate of an earlier entry`)},
		{"character device", func(t *testing.T, _ string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{dev("./dev/kmem", tar.TypeChar, 1, 2)}, nil))
		}, fixed(`entry "./dev/kmem": character device 1:2 not allowed in this archive`)},
		{"block device", func(t *testing.T, _ string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{dev("./dev/sda", tar.TypeBlock, 8, 0)}, nil))
		}, fixed(`entry "./dev/sda": block device 8:0 not allowed in this archive`)},
		{"duplicate entry", func(t *testing.T, _ string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{reg("./etc/passwd"), reg("etc/passwd")}, map[string]string{"./etc/passwd": "a", "etc/passwd": "b"}))
		}, fixed(`entry "etc/passwd": duplicate of an earlier entry`)},
		{"long name", func(t *testing.T, _ string) []byte {
			return debBytes(t, "xz", tarOf(t, []*tar.Header{reg("./" + strings.Repeat("n", 4200))}, nil))
		}, fixed(fmt.Sprintf(`entry %q… (4202 bytes): name longer than 4096 bytes`, "./"+strings.Repeat("n", 254)))},
		{"decompression bomb", func(t *testing.T, _ string) []byte {
			return debBytes(t, "gz", bomb(t))
		}, fixed(`entry "./big": the archive passes the limit of 17179869184 bytes`)},
		{"zstd window beyond the bound", func(t *testing.T, _ string) []byte {
			// A frame by hand: no content size, window descriptor 2^30; one raw block, the last.
			tarball := tarOf(t, []*tar.Header{reg("./x")}, nil)
			frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3}
			bh := 1 | len(tarball)<<3
			frame = append(frame, byte(bh), byte(bh>>8), byte(bh>>16))
			frame = append(frame, tarball...)
			var buf bytes.Buffer
			buf.Write(frame)
			return arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"data.tar.zst", buf.Bytes()})
		}, fixed(`reading tar: data.tar.zst: window size exceeded`)},
		{"not an ar archive", func(*testing.T, string) []byte { return []byte("PK\x03\x04") },
			fixed(`not a .deb (ar) archive`)},
		{"no data member", func(*testing.T, string) []byte {
			return arArchive(arMember{"debian-binary", []byte("2.0\n")})
		}, fixed(`no data.tar member`)},
		{"unsupported data member", func(*testing.T, string) []byte {
			return arArchive(arMember{"data.tar.bz2", []byte("BZh")})
		}, fixed(`unsupported member data.tar.bz2`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, root := outside(t)
			before := snapshot(t, host)
			deb := namedDeb(t, "evil_1_amd64.deb", tt.deb(t, host))
			err := Bootstrap(context.Background(), root, []string{deb}, BootstrapOpts{UsrMerge: true})
			if diff := cmp.Diff(before, snapshot(t, host)); diff != "" {
				t.Errorf("Bootstrap() changed the directory outside the root (-before +after):\n%s", diff)
			}
			want := fmt.Sprintf("extracting evil_1_amd64.deb: extract %s: %s", deb, tt.wantErr(host))
			if err == nil || err.Error() != want {
				t.Errorf("Bootstrap() error = %v,\nwant %s", err, want)
			}
		})
	}
}

func fixed(s string) func(string) string { return func(string) string { return s } }

// Review finding 1 for the extractor, and a symlink replaced by a directory and back across
// packages: one package makes a/b, the next a link at a to the host, after a directory entry for
// a/b whose mode was applied through that link at the end.
func TestBootstrapDirectoryThenLinkAcrossPackages(t *testing.T) {
	host, root := outside(t)
	before := snapshot(t, host)
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o777} }
	first := namedDeb(t, "first_1_amd64.deb", debBytes(t, "xz", tarOf(t, []*tar.Header{
		dir("./"), dir("./a/"), dir("./a/b/"), // like ./usr/ and ./usr/lib/
	}, nil)))
	second := namedDeb(t, "second_1_amd64.deb", debBytes(t, "xz", tarOf(t, []*tar.Header{
		dir("./a/b/"), {Name: "./a", Typeflag: tar.TypeSymlink, Linkname: host},
	}, nil)))
	err := Bootstrap(context.Background(), root, []string{first, second}, BootstrapOpts{})
	if diff := cmp.Diff(before, snapshot(t, host)); diff != "" {
		t.Errorf("Bootstrap() changed the directory outside the root (-before +after):\n%s", diff)
	}
	want := fmt.Sprintf(`extracting second_1_amd64.deb: extract %s: entry "./a": a symlink cannot replace the directory "a"`, second)
	if err == nil || err.Error() != want {
		t.Errorf("Bootstrap() error = %v,\nwant %s", err, want)
	}
}

// The other way round: a package's link, a directory over it in the next (merged /usr: the link
// stands and the files land where it points, in the root), and a third that tries to make the
// directory a link to the host.
func TestBootstrapLinkThenDirectoryAndBack(t *testing.T) {
	host, root := outside(t)
	before := snapshot(t, host)
	debs := []string{
		namedDeb(t, "links_1_amd64.deb", debBytes(t, "xz", tarOf(t, []*tar.Header{
			{Name: "./x/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "./d", Typeflag: tar.TypeSymlink, Linkname: "/x"},
		}, nil))),
		namedDeb(t, "files_1_amd64.deb", debBytes(t, "xz", tarOf(t, []*tar.Header{
			{Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "./d/f", Typeflag: tar.TypeReg, Mode: 0o644},
		}, map[string]string{"./d/f": "kept"}))),
		namedDeb(t, "back_1_amd64.deb", debBytes(t, "xz", tarOf(t, []*tar.Header{
			{Name: "./x", Typeflag: tar.TypeSymlink, Linkname: host},
		}, nil))),
	}
	err := Bootstrap(context.Background(), root, debs, BootstrapOpts{})
	want := fmt.Sprintf(`extracting back_1_amd64.deb: extract %s: entry "./x": a symlink cannot replace the directory "x"`, debs[2])
	if err == nil || err.Error() != want {
		t.Errorf("Bootstrap() error = %v,\nwant %s", err, want)
	}
	if diff := cmp.Diff(before, snapshot(t, host)); diff != "" {
		t.Errorf("Bootstrap() changed the directory outside the root (-before +after):\n%s", diff)
	}
	if b, err := os.ReadFile(filepath.Join(root, "x/f")); err != nil || string(b) != "kept" {
		t.Errorf("x/f = %q, %v; want the second package's file, through the link", b, err)
	}
}
