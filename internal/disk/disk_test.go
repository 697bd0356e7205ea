package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		fs   int64
		grow bool
		want Layout
	}{
		{"ext4 with dax and verity", Spec{FS: "ext4", DAX: true, Verity: true}, 300 * MiB, true,
			Layout{Size: 384 * MiB, Image: DAXHeader, Data: 3 * MiB, DataSize: 377 * MiB, Hash: 380 * MiB, HashSize: 3 * MiB}},
		{"ext4 plain", Spec{FS: "ext4"}, 300 * MiB, true,
			Layout{Size: 384 * MiB, Data: MiB, DataSize: 383 * MiB}},
		{"erofs keeps its size", Spec{FS: "erofs", Verity: true, AlignMiB: 16}, 100*MiB + 1, false,
			Layout{Size: 112 * MiB, Data: MiB, DataSize: 101 * MiB, Hash: 102 * MiB, HashSize: MiB}},
		{"a few MB over costs an alignment", Spec{FS: "ext4", DAX: true}, 126 * MiB, true,
			Layout{Size: 256 * MiB, Image: DAXHeader, Data: 3 * MiB, DataSize: 253 * MiB}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(tc.spec, tc.fs, tc.grow)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("layout (-want +got):\n%s", d)
			}
			if got.HashSize > 0 && got.HashSize < HashTreeSize(got.DataSize) {
				t.Errorf("hash partition %d < tree %d", got.HashSize, HashTreeSize(got.DataSize))
			}
		})
	}
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{FS: "xfs"}, "fs xfs: mkfs.xfs cannot populate"},
		{Spec{FS: "btrfs"}, `fs "btrfs": want ext4 or erofs`},
		{Spec{FS: "ext4", AlignMiB: -1}, "align -1 MiB"},
	} {
		if _, err := Plan(tc.spec, MiB, true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Plan(%+v): %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestHashTreeSize(t *testing.T) {
	for _, tc := range []struct{ data, want int64 }{
		{BlockSize, BlockSize},                   // one block still gets one hash block
		{128 * BlockSize, BlockSize},             // one level
		{129 * BlockSize, 3 * BlockSize},         // two blocks, then the root
		{128 * 128 * BlockSize, 129 * BlockSize}, // 128 + 1
	} {
		if got := HashTreeSize(tc.data); got != tc.want {
			t.Errorf("HashTreeSize(%d) = %d, want %d", tc.data, got, tc.want)
		}
	}
}

func TestLabels(t *testing.T) {
	l, err := Plan(Spec{FS: "ext4", DAX: true, Verity: true}, 300*MiB, true)
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("seed"))
	part := func(mbr []byte, i int) [2]uint32 {
		e := mbr[446+16*i:]
		return [2]uint32{binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])}
	}
	first, second := l.MBR(0, seed), l.MBR(DAXHeader, seed)
	// Seen from the file's start (virtio-blk) the data partition is at 3 MiB; seen from the
	// image proper (NVDIMM with DAX, past the header) at 1 MiB.
	if d := cmp.Diff([2][2]uint32{{6144, 377 * 2048}, {380 * 2048, 3 * 2048}}, [2][2]uint32{part(first, 0), part(first, 1)}); d != "" {
		t.Errorf("first MBR (-want +got):\n%s", d)
	}
	if d := cmp.Diff([2][2]uint32{{2048, 377 * 2048}, {378 * 2048, 3 * 2048}}, [2][2]uint32{part(second, 0), part(second, 1)}); d != "" {
		t.Errorf("second MBR (-want +got):\n%s", d)
	}
	if first[510] != 0x55 || first[511] != 0xaa || first[446+4] != 0x83 {
		t.Errorf("boot signature or type: % x", first[446:])
	}
	pfn := l.PfnSuperblock(seed)
	if string(pfn[:16]) != PfnSignature {
		t.Errorf("signature %q", pfn[:16])
	}
	le := binary.LittleEndian
	if got := [4]uint64{le.Uint64(pfn[56:]), le.Uint64(pfn[64:]), uint64(le.Uint32(pfn[72:])), uint64(le.Uint32(pfn[84:]))}; got != [4]uint64{DAXHeader, (384*MiB - DAXHeader) / BlockSize, 1, DAXHeader} {
		t.Errorf("dataoff, npfns, mode, align = %v", got)
	}
	// The checksum is over the block with its own field zero.
	sum := le.Uint64(pfn[BlockSize-8:])
	zeroed := bytes.Clone(pfn)
	clear(zeroed[BlockSize-8:])
	if sum != Fletcher64(zeroed) || sum == 0 {
		t.Errorf("checksum %x, want %x", sum, Fletcher64(zeroed))
	}
}

func TestFletcher64(t *testing.T) {
	// Words 1, 2, 3: lo = 6, hi = 1 + 3 + 6 = 10.
	b := []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}
	if got := Fletcher64(b); got != 10<<32|6 {
		t.Errorf("Fletcher64 = %#x, want %#x", got, uint64(10<<32|6))
	}
}

func TestVerityParams(t *testing.T) {
	v := VerityParams{RootHash: "ab", Salt: "cd", DataBlocks: 1000}
	if got, want := v.String(), "root_hash=ab,salt=cd,data_blocks=1000,data_block_size=4096,hash_block_size=4096"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := v.DMTable("/dev/vda1", "/dev/vda2"), "dm-verity,,,ro,0 8000 verity 1 /dev/vda1 /dev/vda2 4096 4096 1000 0 sha256 ab cd"; got != want {
		t.Errorf("DMTable = %q, want %q", got, want)
	}
}

// TestMakeHostTools makes images with this machine's mke2fs, mkfs.erofs and veritysetup (the
// build runs the same code with the lock's): twice from trees with other ctimes and atimes, which
// must give the same bytes, then checked with e2fsck/fsck.erofs, sfdisk and veritysetup verify.
func TestMakeHostTools(t *testing.T) {
	for _, tool := range []string{"mke2fs", "debugfs", "mkfs.erofs", "veritysetup", "e2fsck", "sfdisk", "fsck.erofs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
	for _, fsType := range []string{"ext4", "erofs"} {
		t.Run(fsType, func(t *testing.T) {
			var sums [2][32]byte
			var params [2]string
			var out string
			for i := range 2 {
				root := filepath.Join(t.TempDir(), "rootfs")
				writeTree(t, root)
				time.Sleep(1100 * time.Millisecond) // other ctimes
				out = t.TempDir()
				o := MakeOpts{Spec: Spec{FS: fsType, Verity: true, DAX: true, AlignMiB: 32}, Rootfs: root, Out: out, Work: t.TempDir(),
					Seed: sha256.Sum256([]byte("seed")), Epoch: 1700000000}
				if err := Make(context.Background(), o); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(filepath.Join(out, ImageFile))
				if err != nil {
					t.Fatal(err)
				}
				sums[i] = sha256.Sum256(b)
				p, err := os.ReadFile(filepath.Join(out, VerityFile))
				if err != nil {
					t.Fatal(err)
				}
				params[i] = string(p)
			}
			if sums[0] != sums[1] || params[0] != params[1] {
				t.Fatalf("two images of the same tree differ: %x %x\n%s%s", sums[0], sums[1], params[0], params[1])
			}
			checkImage(t, filepath.Join(out, ImageFile), filepath.Join(out, VerityFile), fsType)
		})
	}
}

func writeTree(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"sbin", "etc", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/motd"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr/bin/kata-agent"), bytes.Repeat([]byte("agent"), 100000), 0o755)
	os.Symlink("../usr/bin/kata-agent", filepath.Join(root, "sbin/init"))
	os.Link(filepath.Join(root, "etc/motd"), filepath.Join(root, "etc/motd.link"))
	// systemd's escaped unit names, and a quote, which debugfs's commands must quote.
	os.WriteFile(filepath.Join(root, `etc/system-systemd\x2dcryptsetup.slice`), nil, 0o644)
	os.WriteFile(filepath.Join(root, `etc/a "quoted" name`), nil, 0o644)
	epoch := time.Unix(1600000000, 0)
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if fi.Mode()&os.ModeSymlink == 0 {
			os.Chtimes(p, epoch, epoch)
		}
		return nil
	})
	// A time after the epoch, which the image clamps.
	os.Chtimes(filepath.Join(root, "etc/motd"), time.Now(), time.Now())
}

// checkImage runs the third-party checks of a verity disk image with a DAX header.
func checkImage(t *testing.T, img, paramsFile, fsType string) {
	t.Helper()
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	table := run("sfdisk", "--dump", img)
	if !strings.Contains(table, "label: dos") || !strings.Contains(table, "start=        6144") {
		t.Errorf("sfdisk --dump:\n%s", table)
	}
	l, err := readLayout(img)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "p1"), filepath.Join(dir, "p2")
	run("dd", "if="+img, "of="+data, "bs=1M", "skip="+itoa(l[0][0]/MiB), "count="+itoa(l[0][1]/MiB), "status=none")
	run("dd", "if="+img, "of="+hash, "bs=1M", "skip="+itoa(l[1][0]/MiB), "count="+itoa(l[1][1]/MiB), "status=none")
	if fsType == "ext4" {
		run("e2fsck", "-fn", data)
		for _, name := range []string{`/etc/motd`, `/etc/system-systemd\x2dcryptsetup.slice`, `/etc/a ""quoted"" name`} {
			if out := run("debugfs", "-R", `stat "`+name+`"`, data); !strings.Contains(out, "ctime: 0x6553f100") || !strings.Contains(out, "atime: 0x6553f100") {
				t.Errorf("times of %s:\n%s", name, out)
			}
		}
		if out := run("debugfs", "-R", "stat /etc/motd", data); !strings.Contains(out, "mtime: 0x6553f100") {
			t.Errorf("/etc/motd's modification time is not clamped to the epoch:\n%s", out)
		}
	} else {
		run("fsck.erofs", data)
	}
	p, err := os.ReadFile(paramsFile)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, f := range strings.Split(strings.TrimSpace(string(p)), ",") {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	run("veritysetup", "verify", "--no-superblock", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
		"--data-blocks="+kv["data_blocks"], "--salt="+kv["salt"], data, hash, kv["root_hash"])
	b, _ := os.ReadFile(img)
	if string(b[4096:4096+16]) != PfnSignature {
		t.Errorf("no pfn signature at 4 KiB")
	}
}

// readLayout reads the first MBR's two partitions (offset, size in bytes).
func readLayout(img string) ([2][2]int64, error) {
	var out [2][2]int64
	f, err := os.Open(img)
	if err != nil {
		return out, err
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, 0); err != nil {
		return out, err
	}
	for i := range 2 {
		e := b[446+16*i:]
		out[i] = [2]int64{int64(binary.LittleEndian.Uint32(e[8:])) * 512, int64(binary.LittleEndian.Uint32(e[12:])) * 512}
	}
	return out, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
