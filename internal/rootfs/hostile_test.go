package rootfs

// Hostile streams: nothing a tar stream says may change anything outside the root, whichever
// way its entries are ordered. Each case names the cause it expects.

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// hostState is what a test watches on a host directory that a stream must not reach.
type hostState struct {
	Mode  uint32
	Mtime int64
	Names []string
}

func statHost(t *testing.T, dir string) map[string]hostState {
	t.Helper()
	got := map[string]hostState{}
	for _, p := range []string{dir, filepath.Join(dir, "b")} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		got[filepath.Base(p)] = hostState{Mode: st.Mode & 0o7777, Mtime: st.Mtim.Sec, Names: names}
	}
	return got
}

// hostDir makes a directory outside the root, 0700 with a subdirectory b, stamped with an old time.
func hostDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	if err := os.MkdirAll(filepath.Join(dir, "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_000_000_000, 0)
	for _, p := range []string{filepath.Join(dir, "b"), dir} {
		if err := os.Chmod(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Review finding 1: directory modes and times were applied at the end by path, so a directory
// entry that a later entry turned into a symlink had its mode set on whatever the link named.
func TestUntarDirectoryModesNeverFollowLinks(t *testing.T) {
	mt := time.Unix(1_700_000_000, 0)
	dir := func(name string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o777, ModTime: mt}}
	}
	sym := func(name, target string) entry {
		return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, ModTime: mt}}
	}
	for _, mode := range []struct {
		name string
		opts UntarOpts
	}{
		{"refuse", UntarOpts{ParentLinks: Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true}},
		{"follow", UntarOpts{ParentLinks: Follow, Chown: true}},
	} {
		tests := []struct {
			name    string
			before  map[string]string // see mkTree
			entries func(host string) []entry
			wantErr string
		}{{
			name:    "a directory, then a link at its path",
			entries: func(host string) []entry { return []entry{dir("a/"), sym("a", host)} },
			wantErr: `entry "a": duplicate of an earlier entry`,
		}, {
			name:    "a directory and one below it, then a link at the first",
			entries: func(host string) []entry { return []entry{dir("a/"), dir("a/b/"), sym("./a", host)} },
			wantErr: `entry "./a": duplicate of an earlier entry`,
		}, {
			name:    "a directory already in the root, then a link at its path",
			before:  map[string]string{"a/b/f": "old"},
			entries: func(host string) []entry { return []entry{dir("a/b/"), sym("a", host)} },
			wantErr: `entry "a": a symlink cannot replace the directory "a"`,
		}}
		for _, tt := range tests {
			t.Run(mode.name+": "+tt.name, func(t *testing.T) {
				host := hostDir(t)
				want := statHost(t, host)
				root := t.TempDir()
				mkTree(t, root, tt.before)
				err := Untar(context.Background(), bytes.NewReader(mkTar(t, tt.entries(host))), root, mode.opts)
				if diff := cmp.Diff(want, statHost(t, host)); diff != "" {
					t.Errorf("Untar() changed the host directory (-before +after):\n%s", diff)
				}
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("Untar() error = %v, want %q", err, tt.wantErr)
				}
			})
		}
	}
}

// The stream rules above stop a stream from turning a directory into a link; this is the guard
// under them. Another writer (here Keep, called between entries) swaps a directory for a link to
// the host after its entry: the modes and times applied last, and entries below it, must fail
// on the link rather than follow it.
func TestUntarLinkSwappedInIsNotFollowed(t *testing.T) {
	mt := time.Unix(1_700_000_000, 0)
	for _, tt := range []struct {
		name    string
		opts    UntarOpts
		last    string // the entry after the swap
		wantErr string
	}{
		{"refuse: directory modes", UntarOpts{ParentLinks: Refuse}, "c", `entry "a/b/": openat2 a/b: too many levels of symbolic links`},
		{"follow: directory modes", UntarOpts{ParentLinks: Follow}, "c", `entry "a/b/": openat2 a/b: too many levels of symbolic links`},
		{"refuse: an entry below", UntarOpts{ParentLinks: Refuse}, "a/b/f", `entry "a/b/f": parent "a" of "a/b/f" is not a directory`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host := hostDir(t)
			want := statHost(t, host)
			root := t.TempDir()
			opts := tt.opts
			opts.Keep = func(rel string) bool {
				if rel == tt.last {
					if err := os.Rename(filepath.Join(root, "a"), filepath.Join(root, "moved")); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(host, filepath.Join(root, "a")); err != nil {
						t.Fatal(err)
					}
				}
				return true
			}
			entries := []entry{
				{hdr: tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o777, ModTime: mt}},
				{hdr: tar.Header{Name: "a/b/", Typeflag: tar.TypeDir, Mode: 0o777, ModTime: mt}},
				{hdr: tar.Header{Name: tt.last, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt}, body: "x"},
			}
			err := Untar(context.Background(), bytes.NewReader(mkTar(t, entries)), root, opts)
			if diff := cmp.Diff(want, statHost(t, host)); diff != "" {
				t.Errorf("Untar() changed the host directory (-before +after):\n%s", diff)
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Untar() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// Crafted archives (issue 8): each is refused with the entry named, and the directory outside
// the root is as it was. refuse is the dir output's options, follow the .deb extractor's.
func TestUntarCraftedArchives(t *testing.T) {
	mt := time.Unix(1_700_000_000, 0)
	hdr := func(name string, typ byte) tar.Header {
		return tar.Header{Name: name, Typeflag: typ, Mode: 0o644, ModTime: mt}
	}
	reg := func(name, body string) entry { return entry{hdr: hdr(name, tar.TypeReg), body: body} }
	dir := func(name string) entry { return entry{hdr: hdr(name, tar.TypeDir)} }
	link := func(name string, typ byte, target string) entry {
		e := entry{hdr: hdr(name, typ)}
		e.hdr.Linkname = target
		return e
	}
	dev := func(name string, typ byte, major, minor int64) entry {
		e := entry{hdr: hdr(name, typ)}
		e.hdr.Devmajor, e.hdr.Devminor = major, minor
		return e
	}
	refuse := UntarOpts{ParentLinks: Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true}
	follow := UntarOpts{ParentLinks: Follow, Chown: true, RefuseDevices: true}
	long := strings.Repeat("a", 5000)
	tests := []struct {
		name    string
		opts    UntarOpts
		before  map[string]string // see mkTree
		entries func(host string) []entry
		wantErr func(host string) string
	}{
		{"dot-dot", refuse, nil, func(string) []entry { return []entry{reg("../host/x", "evil")} },
			fixed(`entry "../host/x": path contains ".."`)},
		{"dot-dot inside", follow, nil, func(string) []entry { return []entry{reg("./a/../../host/x", "evil")} },
			fixed(`entry "./a/../../host/x": path contains ".."`)},
		{"absolute", refuse, nil, func(host string) []entry { return []entry{reg(host+"/x", "evil")} },
			func(host string) string { return fmt.Sprintf("entry %q: absolute path", host+"/x") }},
		{"absolute", follow, nil, func(host string) []entry { return []entry{reg(host+"/x", "evil")} },
			func(host string) string { return fmt.Sprintf("entry %q: absolute path", host+"/x") }},
		{"hard link out", refuse, nil, func(string) []entry { return []entry{link("x", tar.TypeLink, "../host/b")} },
			fixed(`entry "x": hardlink to "../host/b" outside the root`)},
		{"absolute hard link", follow, nil, func(host string) []entry { return []entry{link("x", tar.TypeLink, host+"/b")} },
			func(host string) string {
				return fmt.Sprintf("entry \"x\": hardlink to %q outside the root", host+"/b")
			}},
		{"hard link through a symlink out", refuse, nil,
			func(host string) []entry {
				return []entry{link("s", tar.TypeSymlink, host), link("h", tar.TypeLink, "s/b")}
			},
			fixed(`entry "h": hardlink to "s/b": parent "s" of "s/b" is not a directory`)},
		{"file through a symlink out", refuse, nil,
			func(host string) []entry { return []entry{link("s", tar.TypeSymlink, host), reg("s/x", "evil")} },
			fixed(`entry "s/x": parent "s" of "s/x" is not a directory`)},
		{"relative symlink out", follow, nil,
			func(string) []entry { return []entry{link("./s", tar.TypeSymlink, "../host"), reg("./s/x", "evil")} },
			fixed(`entry "./s": symlink to "../host": target leaves the root`)},
		{"symlink replaced by a directory", refuse, nil,
			func(host string) []entry {
				return []entry{link("d", tar.TypeSymlink, host), dir("d/"), reg("d/x", "evil")}
			},
			fixed(`entry "d/": duplicate of an earlier entry`)},
		{"directory replaced by a symlink", follow, nil,
			func(host string) []entry { return []entry{dir("d/"), link("d", tar.TypeSymlink, host)} },
			fixed(`entry "d": duplicate of an earlier entry`)},
		{"directory from before replaced by a symlink", follow, map[string]string{"d/f": "old"},
			func(host string) []entry { return []entry{link("d", tar.TypeSymlink, host)} },
			fixed(`entry "d": a symlink cannot replace the directory "d"`)},
		{"directory from before replaced by a file", refuse, map[string]string{"d/f": "old"},
			func(string) []entry { return []entry{reg("d", "x")} },
			fixed(`entry "d": a file cannot replace the directory "d"`)},
		{"character device", follow, nil, func(string) []entry { return []entry{dev("./dev/mem", tar.TypeChar, 1, 1)} },
			fixed(`entry "./dev/mem": character device 1:1 not allowed in this archive`)},
		{"block device", follow, nil, func(string) []entry { return []entry{dev("./dev/sda", tar.TypeBlock, 8, 0)} },
			fixed(`entry "./dev/sda": block device 8:0 not allowed in this archive`)},
		{"duplicate file", refuse, nil, func(string) []entry { return []entry{reg("x", "one"), reg("./x", "two")} },
			fixed(`entry "./x": duplicate of an earlier entry`)},
		{"duplicate root", refuse, nil, func(string) []entry { return []entry{dir("./"), dir(".")} },
			fixed(`entry ".": duplicate of an earlier entry`)},
		{"long name", follow, nil, func(string) []entry { return []entry{reg(long, "")} },
			fixed(fmt.Sprintf(`entry %q… (5000 bytes): name longer than 4096 bytes`, long[:256]))},
		{"long link target", refuse, nil, func(string) []entry { return []entry{link("l", tar.TypeSymlink, long)} },
			fixed(`entry "l": link target longer than 4096 bytes`)},
		{"unsupported type", refuse, nil, func(string) []entry { return []entry{{hdr: hdr("x", 'Z')}} },
			fixed(`entry "x": unsupported tar type 'Z'`)},
	}
	for _, tt := range tests {
		mode := "refuse"
		if tt.opts.ParentLinks == Follow {
			mode = "follow"
		}
		t.Run(mode+": "+tt.name, func(t *testing.T) {
			host := hostDir(t)
			want := statHost(t, host)
			root := filepath.Join(filepath.Dir(host), "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			mkTree(t, root, tt.before)
			err := Untar(context.Background(), bytes.NewReader(mkTar(t, tt.entries(host))), root, tt.opts)
			if diff := cmp.Diff(want, statHost(t, host)); diff != "" {
				t.Errorf("Untar() changed the directory outside the root (-before +after):\n%s", diff)
			}
			if wantErr := tt.wantErr(host); err == nil || err.Error() != wantErr {
				t.Errorf("Untar() error = %v,\nwant %s", err, wantErr)
			}
		})
	}
}

func fixed(s string) func(string) string { return func(string) string { return s } }

// A decompression bomb, or a stream that says it is one: the bounds are checked on each header,
// before its data is read.
func TestUntarLimits(t *testing.T) {
	big := entry{hdr: tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644}, body: strings.Repeat("\x00", 2<<20)}
	small := func(name string) entry { return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}} }
	tests := []struct {
		name    string
		opts    UntarOpts
		entries []entry
		wantErr string
	}{
		{"size", UntarOpts{MaxSize: 1 << 20}, []entry{small("a"), big}, `entry "big": the archive passes the limit of 1048576 bytes`},
		{"skipped entries count", UntarOpts{MaxSize: 1 << 20, Keep: func(string) bool { return false }}, []entry{big}, `entry "big": the archive passes the limit of 1048576 bytes`},
		{"entries", UntarOpts{MaxEntries: 3}, []entry{small("a"), small("b"), small("c"), small("d")}, `entry "d": more than 3 entries in one archive`},
		{"headers count", UntarOpts{MaxSize: 4 << 10}, []entry{small("a"), small("b"), small("c"), small("d"), small("e"), small("f"), small("g"), small("h")}, `entry "h": the archive passes the limit of 4096 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Untar(context.Background(), bytes.NewReader(mkTar(t, tt.entries)), t.TempDir(), tt.opts)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Untar() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// An oversized header: a PAX extended header of 2 MiB, which the tar writer will not make, so
// it is patched in by hand.
func TestUntarOversizedHeader(t *testing.T) {
	tarball := oversizedPAX(t)
	err := Untar(context.Background(), bytes.NewReader(tarball), t.TempDir(), UntarOpts{ParentLinks: Refuse})
	want := `reading tar after entry "a": archive/tar: header field too long`
	if err == nil || err.Error() != want {
		t.Errorf("Untar() error = %v, want %q", err, want)
	}
}

// oversizedPAX is a tar with an entry "a" and then a PAX header block of 2 MiB.
func oversizedPAX(t testing.TB) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	off := buf.Len()
	body := strings.Repeat("x", 2<<20)
	if err := tw.WriteHeader(&tar.Header{Name: "PaxHeaders/b", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	b := buf.Bytes()
	blk := b[off : off+512]
	blk[156] = tar.TypeXHeader
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}
