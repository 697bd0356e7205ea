package engine

// FuzzWriteInitrd feeds the initrd writer arbitrary rootfs tars, FuzzWriteInitrdEntries tars
// built from a line per entry (so the fuzzer mutates names and links, not checksums). Whatever
// the tar, writeInitrd must not panic or hang, and what it writes without an error must be an
// archive the strict newc reader of initrd_test.go accepts, with no name that leaves the
// root. Run them longer with
//
//	go test -run '^$' -fuzz '^FuzzWriteInitrd$' -parallel 1 ./engine
//	go test -run '^$' -fuzz '^FuzzWriteInitrdEntries$' -parallel 1 ./engine

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// maxFuzzTar bounds what one input may declare: the writer copies every byte a header says,
// and a sparse entry says far more than its input holds.
const maxFuzzTar = 1 << 20

func FuzzWriteInitrd(f *testing.F) {
	for _, tr := range []initrdTree{
		initrdTypesTree(),
		initrdTree{}.dir("./", 0o755).dir("./usr/", 0o755).dir("./usr/sbin/", 0o755).
			reg("./usr/sbin/init", 0o755, "init").sym("./sbin", "usr/sbin").
			hard("./usr/sbin/init2", "usr/sbin/init", 0o755).sym("./l", "/usr/sbin/init").hard("./l2", "l", 0o777),
		initrdTree{}.reg("sbin/init", 0o755, "x").dev("dev/console", tar.TypeChar, 0o600, 5, 1).reg("init", 0o755, ""),
		initrdTree{}.hard("a", "b", 0o644).reg("b", 0o644, "b"),
	} {
		f.Add(fuzzInitrdTar(f, tr))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fuzzDeclared(data) > maxFuzzTar {
			t.Skip("declares more than the fuzz bound")
		}
		fuzzCheckInitrd(t, data)
	})
}

// fuzzInitrdTar is tr as tar bytes.
func fuzzInitrdTar(tb testing.TB, tr initrdTree) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range tr {
		h := m.hdr
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatal(err)
		}
		io.WriteString(tw, m.body)
	}
	tw.Close()
	return buf.Bytes()
}

// fuzzDeclared is what the headers of the tar in data say their files hold, as far as it reads.
func fuzzDeclared(data []byte) int64 {
	var n int64
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			return n
		}
		n += max(h.Size, 0)
	}
}

func FuzzWriteInitrdEntries(f *testing.F) {
	for _, spec := range []string{
		"5 ./\n5 sbin/\n0 sbin/init #!/bin/sh\n2 bin sbin\n1 sbin/init2 sbin/init\n3 dev/console\n6 run/fifo",
		"2 sbin usr/sbin\n5 usr/sbin/\n0 usr/sbin/init x\n1 l sbin/init",
		"2 l /x\n1 h l\n1 h2 h\n0 init x",
		"1 a b\n0 b b\n0 ./b again",
		"5 TRAILER!!!/\n0 sbin/init x",
	} {
		f.Add(spec)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		data := fuzzTarOfSpec(spec)
		if data == nil {
			t.Skip("the tar writer refuses these entries")
		}
		fuzzCheckInitrd(t, data)
	})
}

// fuzzTarOfSpec is the tar of a spec with a line per entry, "<typeflag> <name> [<link or body>]",
// or nil when the tar writer refuses it.
func fuzzTarOfSpec(spec string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, line := range strings.Split(spec, "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 || len(f[0]) != 1 {
			continue
		}
		h := tar.Header{Typeflag: f[0][0], Name: f[1], Mode: 0o755, ModTime: time.Unix(initrdTreeTime, 0), Devmajor: 5, Devminor: 1}
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

// fuzzCheckInitrd converts the tar data and, when writeInitrd takes it, checks what it wrote.
func fuzzCheckInitrd(t *testing.T, data []byte) {
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := writeInitrd(p, &out, initrdEpoch)
	if fuzzEntryNames(data)[cpioTrailer] {
		// An entry named TRAILER!!! would end the newc archive there.
		if err == nil || !strings.Contains(err.Error(), "the name ends a newc archive") {
			t.Fatalf("writeInitrd() of an entry named %s: %v, want it refused", cpioTrailer, err)
		}
		return
	}
	if err != nil {
		return
	}
	entries, err := readNewc(out.Bytes())
	if err != nil {
		t.Fatalf("writeInitrd() wrote an archive the strict reader refuses: %v", err)
	}
	for _, e := range entries {
		if path.IsAbs(e.Name) || slices.Contains(strings.Split(e.Name, "/"), "..") {
			t.Fatalf("writeInitrd() wrote the name %q, which leaves the root", e.Name)
		}
	}
}

// fuzzEntryNames is the set of cleaned entry names of the tar in data, as far as it reads.
func fuzzEntryNames(data []byte) map[string]bool {
	out := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		out[cleanEntry(h.Name)] = true
	}
}
