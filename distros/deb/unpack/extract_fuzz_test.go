package unpack

// FuzzExtract feeds the .deb extractor (ar, then xz, gzip, zstd or no compression, then tar)
// arbitrary packages. Whatever the bytes, it must not panic, must stay within its bounds (small
// here, so a decompression bomb is refused quickly), and must leave a directory next to the root
// as it was. Run it longer with
//
//	go test -run '^$' -fuzz FuzzExtract -parallel 1 ./distros/deb

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

func FuzzExtract(f *testing.F) {
	pkg := []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/bin/tool", Typeflag: tar.TypeReg, Mode: 0o4755},
		{Name: "./bin/tool2", Typeflag: tar.TypeLink, Linkname: "./usr/bin/tool"},
		{Name: "./etc/alt", Typeflag: tar.TypeSymlink, Linkname: "/etc/alternatives/alt"},
		{Name: "./usr/share/doc/rel", Typeflag: tar.TypeSymlink, Linkname: "../../../etc/alt"},
	}
	hostile := []*tar.Header{
		{Name: "./a/", Typeflag: tar.TypeDir, Mode: 0o777},
		{Name: "./a", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
		{Name: "./dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8},
		{Name: "./s", Typeflag: tar.TypeSymlink, Linkname: "../../x"},
	}
	for _, comp := range []string{"", "xz", "gz", "zst"} {
		f.Add(debBytes(f, comp, tarOf(f, pkg, map[string]string{"./usr/bin/tool": "#!/bin/sh\n"})))
		f.Add(debBytes(f, comp, tarOf(f, hostile, nil)))
	}
	f.Add(arArchive(arMember{"debian-binary", []byte("2.0\n")}))
	f.Fuzz(func(t *testing.T, deb []byte) {
		host, root := outside(t)
		before := snapshot(t, host)
		opts := rootfs.UntarOpts{ParentLinks: rootfs.Follow, Chown: true, RefuseDevices: true, MaxEntries: 1000, MaxSize: 4 << 20}
		extractData(context.Background(), bytes.NewReader(deb), root, opts)
		if diff := cmp.Diff(before, snapshot(t, host)); diff != "" {
			t.Fatalf("extractData() changed the directory next to the root (-before +after):\n%s", diff)
		}
	})
}
