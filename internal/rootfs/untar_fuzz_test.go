package rootfs

// FuzzUntar feeds Untar arbitrary tar streams with the dir output's options and the .deb
// extractor's; FuzzUntarEntries builds the streams from a line per entry, so the fuzzer mutates
// names, types and link targets rather than tar checksums. Whatever the stream, Untar must not
// panic, must finish within its bounds, and must leave a directory next to the root as it was.
// Run them longer with
//
//	go test -run '^$' -fuzz '^FuzzUntar$' -parallel 1 ./internal/rootfs
//	go test -run '^$' -fuzz '^FuzzUntarEntries$' -parallel 1 ./internal/rootfs

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
)

func FuzzUntar(f *testing.F) {
	mt := time.Unix(1_700_000_000, 0)
	h := func(name string, typ byte, link string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: typ, Linkname: link, Mode: 0o755, ModTime: mt}}
	}
	reg := func(name, body string) entry {
		e := h(name, tar.TypeReg, "")
		e.body = body
		return e
	}
	xattr := reg("x", "x")
	xattr.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.foo": "bar"}
	xattr.hdr.AccessTime = mt
	seeds := [][]entry{
		{h("./", tar.TypeDir, ""), h("etc/", tar.TypeDir, ""), reg("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
			h("etc/link", tar.TypeSymlink, "/etc/passwd"), h("etc/hard", tar.TypeLink, "etc/passwd"),
			h("dev/null", tar.TypeChar, ""), h("dev/fifo", tar.TypeFifo, ""), xattr},
		{h("a/", tar.TypeDir, ""), h("a/b/", tar.TypeDir, ""), h("a", tar.TypeSymlink, "/tmp")},
		{h("s", tar.TypeSymlink, "../.."), reg("s/x", "evil"), h("h", tar.TypeLink, "s/x")},
		{h("lib", tar.TypeSymlink, "usr/lib"), h("lib/", tar.TypeDir, ""), reg("lib/x", "x")},
		{reg("x", "1"), reg("./x", "2")},
		{reg("../x", ""), reg("/x", ""), h("l", tar.TypeLink, "/etc/shadow")},
	}
	for _, s := range seeds {
		tb := mkTar(f, s)
		f.Add(tb, uint8(0))
		f.Add(tb, uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		untarOutside(t, func(string) []byte { return data }, mode)
	})
}

func FuzzUntarEntries(f *testing.F) {
	for _, spec := range []string{
		"5 ./\n5 etc/\n0 etc/passwd root:x:0:0\n2 etc/link /etc/passwd\n1 etc/hard etc/passwd\n3 dev/null\n6 dev/fifo",
		"5 a/\n5 a/b/\n2 a @",
		"2 s ../host\n0 s/x evil\n1 h s/b\n2 t @\n5 t/b/",
		"2 lib usr/lib\n5 lib/\n0 lib/x x\n1 y lib/x",
		"2 d /x\n5 d/\n0 d/f f\n2 x ../../..",
		"0 x 1\n0 ./x 2\n5 x/",
		"0 ../host/x\n0 @/x\n1 l @/b\n4 dev/sda\n5 d/\n2 d @",
	} {
		f.Add(spec, uint8(0))
		f.Add(spec, uint8(1))
	}
	f.Fuzz(func(t *testing.T, spec string, mode uint8) {
		untarOutside(t, func(host string) []byte {
			data := tarOfSpec(strings.ReplaceAll(spec, "@", host))
			if data == nil {
				t.Skip("the tar writer refuses these entries")
			}
			return data
		}, mode)
	})
}

// tarOfSpec is the tar of a spec with a line per entry, "<typeflag> <name> [<link or body>]",
// or nil when the tar writer refuses it. In the fuzz target, "@" stands for the host directory.
func tarOfSpec(spec string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, line := range strings.Split(spec, "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 || len(f[0]) != 1 {
			continue
		}
		h := tar.Header{Typeflag: f[0][0], Name: f[1], Mode: 0o755, ModTime: time.Unix(1_700_000_000, 0), Devmajor: 1, Devminor: 3}
		body := ""
		if len(f) == 3 {
			if h.Typeflag == tar.TypeReg {
				body = f[2]
			} else {
				h.Linkname = f[2]
			}
		}
		h.Size = int64(len(body))
		if tw.WriteHeader(&h) != nil {
			return nil
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil
		}
	}
	if tw.Close() != nil {
		return nil
	}
	return buf.Bytes()
}

// untarOutside unpacks the stream tarball makes for a host directory into a root next to it
// ("../host" from the root), with the dir output's options (even mode) or the .deb extractor's
// (odd), and fails if the host directory changed.
func untarOutside(t *testing.T, tarball func(host string) []byte, mode uint8) {
	opts := UntarOpts{ParentLinks: Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true}
	if mode%2 == 1 {
		opts = UntarOpts{ParentLinks: Follow, Chown: true, RefuseDevices: true}
	}
	opts.MaxEntries, opts.MaxSize = 1000, 4<<20
	host := hostDir(t)
	want := statHost(t, host)
	root := filepath.Join(filepath.Dir(host), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	Untar(context.Background(), bytes.NewReader(tarball(host)), root, opts)
	if diff := cmp.Diff(want, statHost(t, host)); diff != "" {
		t.Fatalf("Untar() changed the directory next to the root (-before +after):\n%s", diff)
	}
	// A tree with read-only directories must still go away with the test.
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
}
