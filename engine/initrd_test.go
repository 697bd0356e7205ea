package engine

// Tests for the initrd output (initrd.go). The archive is decoded by a strict newc reader of
// our own rather than trusted to round-trip through the writer's own code, so a mistake in
// the header layout or padding shows up here instead of as a kernel that cannot find /init;
// when GNU cpio is installed it lists the same archive as a second opinion.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Distinct times, so a test can tell what was copied from the tar from what writeInitrd added.
const (
	initrdTreeTime = 1_700_000_000 // what the exporter stamped on the tree
	initrdEpoch    = 1_600_000_000 // the lock's epoch, passed to writeInitrd
)

// newcEntry is one decoded member of a newc archive. Mode keeps the file type bits, so a
// directory is unix.S_IFDIR|perm as the kernel sees it.
type newcEntry struct {
	Name                 string
	Ino                  uint32
	Mode                 uint32
	UID, GID             uint32
	Nlink                uint32
	Mtime                int64
	RdevMajor, RdevMinor uint32
	Data                 string
}

// readNewc gunzips and parses a whole initrd, failing on anything after the gzip member.
func readNewc(gz []byte) ([]newcEntry, error) {
	raw, err := gunzipOne(gz)
	if err != nil {
		return nil, err
	}
	return parseNewc(raw)
}

// gunzipOne decompresses exactly one gzip member; the kernel would try to unpack anything
// that followed it as another archive.
func gunzipOne(gz []byte) ([]byte, error) {
	br := bytes.NewReader(gz)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	if br.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the gzip stream", br.Len())
	}
	return raw, nil
}

// parseNewc decodes a newc archive strictly: every header must have the magic, 13 fields of
// eight uppercase hex digits and a zero check field; names must be NUL-terminated; header+name
// and data must be zero-padded to 4 bytes; the archive must end with TRAILER!!! followed by
// nothing but zeros. The trailer is not returned.
func parseNewc(b []byte) ([]newcEntry, error) {
	const hdrLen = 6 + 13*8
	var out []newcEntry
	off := 0
	for {
		if len(b)-off < hdrLen {
			return nil, fmt.Errorf("offset %d: archive ends without TRAILER!!!", off)
		}
		h := b[off : off+hdrLen]
		if string(h[:6]) != "070701" {
			return nil, fmt.Errorf("offset %d: magic %q, want 070701", off, h[:6])
		}
		var f [13]uint32
		for i := range f {
			s := h[6+8*i : 6+8*(i+1)]
			for _, c := range s {
				if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
					return nil, fmt.Errorf("offset %d: field %d is %q, not uppercase hex", off, i, s)
				}
			}
			v, err := strconv.ParseUint(string(s), 16, 32)
			if err != nil {
				return nil, err
			}
			f[i] = uint32(v)
		}
		ino, mode, uid, gid, nlink, mtime, size := f[0], f[1], f[2], f[3], f[4], f[5], int(f[6])
		rdevMajor, rdevMinor, nameSize, check := f[9], f[10], int(f[11]), f[12]
		if check != 0 {
			return nil, fmt.Errorf("offset %d: check field %d in a newc (not crc) archive", off, check)
		}
		if nameSize == 0 {
			return nil, fmt.Errorf("offset %d: name size 0", off)
		}
		nameEnd := off + hdrLen + nameSize
		if nameEnd > len(b) {
			return nil, fmt.Errorf("offset %d: name runs past the end", off)
		}
		name := string(b[off+hdrLen : nameEnd-1])
		if b[nameEnd-1] != 0 || strings.IndexByte(name, 0) >= 0 {
			return nil, fmt.Errorf("offset %d: name %q is not NUL-terminated at its size", off, name)
		}
		var err error
		if off, err = newcPad(b, nameEnd); err != nil {
			return nil, fmt.Errorf("%s: after the name: %w", name, err)
		}
		if name == "TRAILER!!!" {
			if size != 0 {
				return nil, fmt.Errorf("trailer with %d bytes of data", size)
			}
			for i, c := range b[off:] {
				if c != 0 {
					return nil, fmt.Errorf("offset %d: byte %#x after the trailer", off+i, c)
				}
			}
			return out, nil
		}
		if off+size > len(b) {
			return nil, fmt.Errorf("%s: %d bytes of data run past the end", name, size)
		}
		data := string(b[off : off+size])
		if off, err = newcPad(b, off+size); err != nil {
			return nil, fmt.Errorf("%s: after the data: %w", name, err)
		}
		out = append(out, newcEntry{
			Name: name, Ino: ino, Mode: mode, UID: uid, GID: gid, Nlink: nlink,
			Mtime: int64(mtime), RdevMajor: rdevMajor, RdevMinor: rdevMinor, Data: data,
		})
	}
}

// newcPad checks the zero padding from off to the next multiple of 4 and returns that offset.
func newcPad(b []byte, off int) (int, error) {
	end := (off + 3) &^ 3
	if end > len(b) {
		return 0, fmt.Errorf("offset %d: padding runs past the end", off)
	}
	for i, c := range b[off:end] {
		if c != 0 {
			return 0, fmt.Errorf("offset %d: padding byte %#x", off+i, c)
		}
	}
	return end, nil
}

// initrdMember is one tar entry of a test tree.
type initrdMember struct {
	hdr  tar.Header
	body string
}

// initrdTree builds the rootfs tar a test converts. Methods (rather than package-level
// constructors) keep the helpers out of the package namespace other test files share; each
// appends one member stamped with initrdTreeTime, as the exporter would.
type initrdTree []initrdMember

func (tr initrdTree) add(h tar.Header, body string) initrdTree {
	h.ModTime = time.Unix(initrdTreeTime, 0)
	// Clipped, so trees built from a shared prefix never write into each other's array.
	return append(slices.Clip(tr), initrdMember{h, body})
}

func (tr initrdTree) dir(name string, mode int64) initrdTree {
	return tr.add(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}, "")
}

func (tr initrdTree) reg(name string, mode int64, body string) initrdTree {
	return tr.add(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body)
}

func (tr initrdTree) sym(name, target string) initrdTree {
	return tr.add(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, "")
}

func (tr initrdTree) hard(name, target string, mode int64) initrdTree {
	return tr.add(tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: mode}, "")
}

func (tr initrdTree) dev(name string, typ byte, mode, major, minor int64) initrdTree {
	return tr.add(tar.Header{Typeflag: typ, Name: name, Mode: mode, Devmajor: major, Devminor: minor}, "")
}

func (tr initrdTree) fifo(name string, mode int64) initrdTree {
	return tr.add(tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: mode}, "")
}

// with adjusts the last member's header (owner, time) without a constructor per field.
func (tr initrdTree) with(f func(*tar.Header)) initrdTree {
	f(&tr[len(tr)-1].hdr)
	return tr
}

// file writes the tree as a tar file, since writeInitrd reads its input twice by path.
func (tr initrdTree) file(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range tr {
		h := m.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, m.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Shorthands for the table's expected modes: type bits from unix, not from initrd.go, so the
// test does not share a mistake with the code.
const (
	sDir  = unix.S_IFDIR
	sReg  = unix.S_IFREG
	sLnk  = unix.S_IFLNK
	sChr  = unix.S_IFCHR
	sBlk  = unix.S_IFBLK
	sFIFO = unix.S_IFIFO
)

// initrdTypesTree has one of every kind of entry, with "./" names as the exporter writes them.
func initrdTypesTree() initrdTree {
	return initrdTree{}.
		dir("./", 0o755).
		dir("./bin/", 0o755).
		reg("./bin/su", 0o4755, "hello"). // 5 bytes, so the data needs padding
		with(func(h *tar.Header) { h.Uid, h.Gid, h.ModTime = 1234, 5678, time.Unix(initrdTreeTime+1, 0) }).
		sym("./bin/sh", "su").
		hard("./bin/su-again", "bin/su", 0o4755).
		dir("./dev/", 0o755).
		dev("./dev/null", tar.TypeChar, 0o666, 1, 3).
		dev("./dev/sda", tar.TypeBlock, 0o660, 8, 0).
		dir("./sbin/", 0o755).
		reg("./sbin/init", 0o755, "#!/bin/sh\n").
		dir("./tmp/", 0o1777).
		dir("./var/", 0o755).
		fifo("./var/fifo", 0o644)
}

func TestWriteInitrd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tree    initrdTree
		want    []newcEntry
		wantErr string // substring; the tree cannot become an initrd
	}{{
		name: "every entry type",
		tree: initrdTypesTree(),
		want: []newcEntry{
			// The mount points the tree lacks come first.
			{Ino: 1, Name: "proc", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 2, Name: "sys", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 3, Name: "run", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			// "./" itself is not an entry: the kernel unpacks into its own root.
			{Ino: 4, Name: "bin", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 5, Name: "bin/su", Mode: sReg | 0o4755, UID: 1234, GID: 5678, Nlink: 2, Mtime: initrdTreeTime + 1, Data: "hello"},
			{Ino: 6, Name: "bin/sh", Mode: sLnk | 0o777, Nlink: 1, Mtime: initrdTreeTime, Data: "su"},
			// The second name of bin/su: its inode, no data; the kernel links it to the first.
			{Ino: 5, Name: "bin/su-again", Mode: sReg | 0o4755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 7, Name: "dev", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 8, Name: "dev/null", Mode: sChr | 0o666, Nlink: 1, Mtime: initrdTreeTime, RdevMajor: 1, RdevMinor: 3},
			{Ino: 9, Name: "dev/sda", Mode: sBlk | 0o660, Nlink: 1, Mtime: initrdTreeTime, RdevMajor: 8},
			{Ino: 10, Name: "sbin", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 11, Name: "sbin/init", Mode: sReg | 0o755, Nlink: 1, Mtime: initrdTreeTime, Data: "#!/bin/sh\n"},
			{Ino: 12, Name: "tmp", Mode: sDir | 0o1777, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 13, Name: "var", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 14, Name: "var/fifo", Mode: sFIFO | 0o644, Nlink: 1, Mtime: initrdTreeTime},
			// Added after the tree: the console, /init.
			{Ino: 15, Name: "dev/console", Mode: sChr | 0o600, Nlink: 1, Mtime: initrdEpoch, RdevMajor: 5, RdevMinor: 1},
			{Ino: 16, Name: "init", Mode: sLnk | 0o777, Nlink: 1, Mtime: initrdEpoch, Data: "/sbin/init"}},
	}, {
		name: "only sbin/init: everything else added",
		tree: initrdTree{}.dir("sbin", 0o755).reg("sbin/init", 0o755, "x"),
		want: []newcEntry{
			// The mount points the tree lacks come first.
			{Ino: 1, Name: "dev", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 2, Name: "proc", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 3, Name: "sys", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 4, Name: "run", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 5, Name: "tmp", Mode: sDir | 0o1777, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 6, Name: "sbin", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 7, Name: "sbin/init", Mode: sReg | 0o755, Nlink: 1, Mtime: initrdTreeTime, Data: "x"},
			{Ino: 8, Name: "dev/console", Mode: sChr | 0o600, Nlink: 1, Mtime: initrdEpoch, RdevMajor: 5, RdevMinor: 1},
			{Ino: 9, Name: "init", Mode: sLnk | 0o777, Nlink: 1, Mtime: initrdEpoch, Data: "/sbin/init"}},
	}, {
		// sbin/init is not a tar entry, but the kernel resolves /sbin/init through the link.
		name: "merged /usr",
		tree: initrdTree{}.
			dir("./", 0o755).
			sym("sbin", "usr/sbin").
			dir("usr/", 0o755).
			dir("usr/sbin/", 0o755).
			reg("usr/sbin/init", 0o755, "init"),
		want: []newcEntry{
			// The mount points the tree lacks come first.
			{Ino: 1, Name: "dev", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 2, Name: "proc", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 3, Name: "sys", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 4, Name: "run", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 5, Name: "tmp", Mode: sDir | 0o1777, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 6, Name: "sbin", Mode: sLnk | 0o777, Nlink: 1, Mtime: initrdTreeTime, Data: "usr/sbin"},
			{Ino: 7, Name: "usr", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 8, Name: "usr/sbin", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 9, Name: "usr/sbin/init", Mode: sReg | 0o755, Nlink: 1, Mtime: initrdTreeTime, Data: "init"},
			{Ino: 10, Name: "dev/console", Mode: sChr | 0o600, Nlink: 1, Mtime: initrdEpoch, RdevMajor: 5, RdevMinor: 1},
			{Ino: 11, Name: "init", Mode: sLnk | 0o777, Nlink: 1, Mtime: initrdEpoch, Data: "/sbin/init"}},
	}, {
		// The Kata overlay: the agent as /usr/sbin/init and no /sbin at all.
		name: "overlay with only usr/sbin/init",
		tree: initrdTree{}.
			dir("usr/", 0o755).
			dir("usr/sbin/", 0o755).
			reg("usr/sbin/init", 0o755, "agent"),
		want: []newcEntry{
			// The mount points the tree lacks come first.
			{Ino: 1, Name: "dev", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 2, Name: "proc", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 3, Name: "sys", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 4, Name: "run", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 5, Name: "tmp", Mode: sDir | 0o1777, Nlink: 2, Mtime: initrdEpoch},
			{Ino: 6, Name: "usr", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 7, Name: "usr/sbin", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 8, Name: "usr/sbin/init", Mode: sReg | 0o755, Nlink: 1, Mtime: initrdTreeTime, Data: "agent"},
			{Ino: 9, Name: "dev/console", Mode: sChr | 0o600, Nlink: 1, Mtime: initrdEpoch, RdevMajor: 5, RdevMinor: 1},
			{Ino: 10, Name: "init", Mode: sLnk | 0o777, Nlink: 1, Mtime: initrdEpoch, Data: "/usr/sbin/init"}},
	}, {
		// A tree made for an initrd already has all of it: nothing is added or duplicated,
		// and its own /init needs no /sbin/init.
		name: "tree with init, console and mount points",
		tree: initrdTree{}.
			reg("init", 0o755, "#!/bin/sh\n").
			dir("dev/", 0o755).
			dev("dev/console", tar.TypeChar, 0o620, 5, 1).
			dir("proc/", 0o555).
			dir("sys/", 0o555).
			dir("run/", 0o755).
			dir("tmp/", 0o1777),
		want: []newcEntry{
			{Ino: 1, Name: "init", Mode: sReg | 0o755, Nlink: 1, Mtime: initrdTreeTime, Data: "#!/bin/sh\n"},
			{Ino: 2, Name: "dev", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 3, Name: "dev/console", Mode: sChr | 0o620, Nlink: 1, Mtime: initrdTreeTime, RdevMajor: 5, RdevMinor: 1},
			{Ino: 4, Name: "proc", Mode: sDir | 0o555, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 5, Name: "sys", Mode: sDir | 0o555, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 6, Name: "run", Mode: sDir | 0o755, Nlink: 2, Mtime: initrdTreeTime},
			{Ino: 7, Name: "tmp", Mode: sDir | 0o1777, Nlink: 2, Mtime: initrdTreeTime},
		},
	}, {
		name:    "no init at all",
		tree:    initrdTree{}.dir("bin/", 0o755).reg("bin/sh", 0o755, "sh"),
		wantErr: "/sbin/init",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := writeInitrd(tt.tree.file(t), &out, initrdEpoch)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("writeInitrd() error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("writeInitrd() error = %v", err)
			}
			got, err := readNewc(out.Bytes())
			if err != nil {
				t.Fatalf("decoding the initrd: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("writeInitrd() entries mismatch (-want +got):\n%s", diff)
			}

			t.Run("cpio -t", func(t *testing.T) {
				cpio, err := exec.LookPath("cpio")
				if err != nil {
					t.Skip("cpio is not on PATH, so only the test's own newc reader checked the archive")
				}
				raw, err := gunzipOne(out.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(cpio, "-t", "--quiet")
				cmd.Stdin = bytes.NewReader(raw)
				listing, err := cmd.Output()
				if err != nil {
					var ee *exec.ExitError
					if errors.As(err, &ee) {
						t.Fatalf("cpio -t: %v\n%s", err, ee.Stderr)
					}
					t.Fatalf("cpio -t: %v", err)
				}
				var want []string
				for _, e := range got {
					want = append(want, e.Name)
				}
				names := strings.Split(strings.TrimSuffix(string(listing), "\n"), "\n")
				if diff := cmp.Diff(want, names); diff != "" {
					t.Errorf("cpio -t names mismatch (-ours +cpio):\n%s", diff)
				}
			})
		})
	}
}

// TestWriteInitrdRefuses covers trees that must not become an initrd: each error has to name
// the entry, since the tar is a build artefact the user never sees.
func TestWriteInitrdRefuses(t *testing.T) {
	t.Parallel()
	withInit := initrdTree{}.dir("sbin/", 0o755).reg("sbin/init", 0o755, "x")
	tests := []struct {
		name string
		tree initrdTree
		want []string // substrings of the error
	}{{
		// The kernel links a later name to an earlier one; it cannot link forwards.
		name: "hard link to a later file",
		tree: withInit.hard("bin-link", "later", 0o644).reg("later", 0o644, "data"),
		want: []string{"bin-link", "later"},
	}, {
		name: "hard link to a missing file",
		tree: withInit.hard("bin-link", "nowhere", 0o644),
		want: []string{"bin-link", "nowhere"},
	}, {
		name: "absolute name",
		tree: withInit.reg("/etc/passwd", 0o644, "root"),
		want: []string{"/etc/passwd"},
	}, {
		name: "dot-dot name",
		tree: withInit.reg("../escape", 0o644, "out"),
		want: []string{"../escape"},
	}, {
		name: "dot-dot inside a name",
		tree: withInit.dir("etc/", 0o755).reg("etc/../../escape", 0o644, "out"),
		want: []string{"etc/../../escape"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := writeInitrd(tt.tree.file(t), io.Discard, initrdEpoch)
			if err == nil {
				t.Fatal("writeInitrd() succeeded")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("writeInitrd() error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestWriteInitrdDeterministic: the point of writing the cpio ourselves instead of running
// `cpio | gzip` is a byte-identical initrd from the same tree.
func TestWriteInitrdDeterministic(t *testing.T) {
	t.Parallel()
	// Two copies of the tree at different paths and times, so neither the path nor the tar
	// file's own mtime can leak into the output.
	p1 := initrdTypesTree().file(t)
	p2 := initrdTypesTree().file(t)
	if err := os.Chtimes(p2, time.Unix(1, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	var first, second bytes.Buffer
	if err := writeInitrd(p1, &first, initrdEpoch); err != nil {
		t.Fatal(err)
	}
	if err := writeInitrd(p2, &second, initrdEpoch); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Errorf("two conversions of the same tree differ (%d and %d bytes)", first.Len(), second.Len())
	}

	// gzip magic, deflate, no flags (so no file name or comment), and a zero mtime: what
	// `gzip -n` writes, and what keeps the build time out of the file.
	wantHeader := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}
	if got := first.Bytes()[:len(wantHeader)]; !bytes.Equal(got, wantHeader) {
		t.Errorf("gzip header = % x, want % x", got, wantHeader)
	}
	zr, err := gzip.NewReader(bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(gzip.Header{OS: zr.OS}, zr.Header); diff != "" {
		t.Errorf("gzip header mismatch (-want +got):\n%s", diff)
	}
}

// TestToInitrd checks the temporary file: a failed build must leave neither a half-written
// initrd under dest's name nor a stray temp file in the output directory, and must not
// clobber the initrd of a previous build.
func TestToInitrd(t *testing.T) {
	t.Parallel()
	good := initrdTree{}.dir("sbin/", 0o755).reg("sbin/init", 0o755, "x")
	// Fails after part of the archive has been written, so the temp file is not empty.
	lateFailure := good.reg("a", 0o644, strings.Repeat("data", 1000)).hard("b", "c", 0o644).reg("c", 0o644, "c")
	noInit := initrdTree{}.dir("bin/", 0o755)
	tests := []struct {
		name     string
		tree     initrdTree
		previous string // dest's content before the call; "" for none
		wantErr  string
		want     map[string]string // the output directory afterwards; "<new>" marks the new initrd
	}{
		{name: "new", tree: good, want: map[string]string{"initrd.img": "<new>"}},
		{name: "replaces", tree: good, previous: "old", want: map[string]string{"initrd.img": "<new>"}},
		{name: "no init", tree: noInit, wantErr: "/sbin/init", want: map[string]string{}},
		{name: "no init, previous kept", tree: noInit, previous: "old", wantErr: "/sbin/init", want: map[string]string{"initrd.img": "old"}},
		{name: "fails mid-archive", tree: lateFailure, wantErr: "c", want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tarPath := tt.tree.file(t)
			dir := t.TempDir()
			dest := filepath.Join(dir, "initrd.img")
			if tt.previous != "" {
				if err := os.WriteFile(dest, []byte(tt.previous), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := toInitrd(tarPath, dest, initrdEpoch)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("toInitrd() error = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("toInitrd() error = %v, want one mentioning %q", err, tt.wantErr)
			}

			var fresh bytes.Buffer
			if tt.wantErr == "" {
				if err := writeInitrd(tarPath, &fresh, initrdEpoch); err != nil {
					t.Fatal(err)
				}
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				got[e.Name()] = string(b)
				if tt.wantErr == "" && bytes.Equal(b, fresh.Bytes()) {
					got[e.Name()] = "<new>"
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("output directory after toInitrd() mismatch (-want +got):\n%s", diff)
			}
			if tt.wantErr == "" {
				// CreateTemp makes 0600 files; the initrd is read by the VMM as another user.
				st, err := os.Stat(dest)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o644 {
					t.Errorf("initrd mode = %v, want 0644", st.Mode().Perm())
				}
			}
		})
	}
}

// TestParseNewcStrict makes sure the reader the other tests rely on rejects what the kernel
// would misread, so that a lenient reader cannot hide a writer bug.
func TestParseNewcStrict(t *testing.T) {
	t.Parallel()
	var gz bytes.Buffer
	tree := initrdTree{}.dir("sbin", 0o755).reg("sbin/init", 0o755, "x")
	if err := writeInitrd(tree.file(t), &gz, initrdEpoch); err != nil {
		t.Fatal(err)
	}
	valid, err := gunzipOne(gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// The first header's name size, to find the padding after its name.
	nameSize, err := strconv.ParseUint(string(valid[94:102]), 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		ok     bool
	}{
		{name: "unchanged", mutate: func(b []byte) []byte { return b }, ok: true},
		{name: "zero padding after the trailer", mutate: func(b []byte) []byte { return append(b, make([]byte, 512)...) }, ok: true},
		{name: "odc magic", mutate: func(b []byte) []byte { copy(b, "070707"); return b }},
		{name: "lowercase hex", mutate: func(b []byte) []byte { copy(b[14:22], strings.ToLower(string(b[14:22]))); return b }},
		{name: "check field set", mutate: func(b []byte) []byte { copy(b[102:110], "00000001"); return b }},
		{name: "non-zero name padding", mutate: func(b []byte) []byte { b[110+nameSize] = 'x'; return b }},
		{name: "garbage after the trailer", mutate: func(b []byte) []byte { return append(b, 'x') }},
		{name: "no trailer", mutate: func(b []byte) []byte { return b[:len(b)-16] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(bytes.Clone(valid))
			if !tt.ok && bytes.Equal(b, valid) {
				t.Fatal("the mutation changed nothing")
			}
			_, err := parseNewc(b)
			if tt.ok != (err == nil) {
				t.Errorf("parseNewc() error = %v, want ok = %v", err, tt.ok)
			}
		})
	}
	t.Run("bytes after the gzip stream", func(t *testing.T) {
		if _, err := readNewc(append(bytes.Clone(gz.Bytes()), 0)); err == nil {
			t.Error("readNewc() accepted a byte after the gzip stream")
		}
	})
}

// TestWriteInitrdLinks: every name of a hard-linked file carries the full link count and the
// target's type, whether the target is a file or a symlink; a tar type newc cannot carry is an
// error, not a silently missing file.
func TestWriteInitrdLinks(t *testing.T) {
	tree := initrdTree{}.
		reg("sbin/init", 0o755, "x").
		hard("a", "sbin/init", 0o755).
		hard("b", "sbin/init", 0o755).
		sym("s", "sbin/init").
		hard("s2", "s", 0o777)
	var out bytes.Buffer
	if err := writeInitrd(tree.file(t), &out, initrdEpoch); err != nil {
		t.Fatal(err)
	}
	got, err := readNewc(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	type link struct {
		Name        string
		Ino, Nlink  uint32
		Type        uint32
		DataPresent bool
	}
	var links []link
	for _, e := range got {
		switch e.Name {
		case "sbin/init", "a", "b", "s", "s2":
			links = append(links, link{e.Name, e.Ino, e.Nlink, e.Mode & unix.S_IFMT, e.Data != ""})
		}
	}
	want := []link{
		{"sbin/init", 6, 3, sReg, true},
		{"a", 6, 3, sReg, false},
		{"b", 6, 3, sReg, false},
		// The kernel links only regular files: another name of a symlink is a copy of it.
		{"s", 7, 1, sLnk, true},
		{"s2", 8, 1, sLnk, true},
	}
	if diff := cmp.Diff(want, links); diff != "" {
		t.Errorf("hard links mismatch (-want +got):\n%s", diff)
	}

	odd := initrdTree{}.reg("sbin/init", 0o755, "x").add(tar.Header{Typeflag: tar.TypeCont, Name: "big", Mode: 0o644}, "")
	if err := writeInitrd(odd.file(t), io.Discard, initrdEpoch); err == nil || !strings.Contains(err.Error(), "big") {
		t.Errorf("writeInitrd(an entry of type %q) error = %v, want one naming it", tar.TypeCont, err)
	}
}
