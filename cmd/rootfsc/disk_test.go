package main

// Kata disk images (issue 10): the systemd guest as an ext4 image with the DAX header and
// dm-verity, and as an erofs image with dm-verity and no DAX header, each made inside BuildKit
// with the lock's Debian tools, then read by this machine's own sfdisk, e2fsck, debugfs,
// fsck.erofs, dump.erofs and veritysetup.

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rootfsc/rootfsc/internal/disk"
)

func TestDiskImage(t *testing.T) {
	h := newHarness(t)
	for _, tool := range []string{"sfdisk", "e2fsck", "debugfs", "fsck.erofs", "dump.erofs", "veritysetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%v (make test installs fdisk, e2fsprogs, erofs-utils and cryptsetup-bin)", err)
		}
	}
	dir := t.TempDir()
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	copyFile(t, filepath.Join(h.bin, "opa"), filepath.Join(dir, "opa"))
	writeFile(t, filepath.Join(dir, "m.cue"), systemdGuest+`outputs: [
	{type: "disk", dest: "kata.img", verity: true},
	{type: "disk", dest: "kata-erofs.img", fs: "erofs", verity: true, dax: false, align: 16},
]
`)
	h.run(dir, true, "build", "--progress=plain", "m.cue")

	t.Run("ext4 with DAX and verity", func(t *testing.T) {
		img := filepath.Join(dir, "kata.img")
		parts := checkTable(t, img, 6144) // the data partition at 3 MiB of the file: behind the 2 MiB header
		data, hash := extract(t, img, parts[0]), extract(t, img, parts[1])
		run(t, "e2fsck", "-fn", data)
		for _, p := range []string{"/usr/bin/kata-agent", "/sbin/init", "/etc/kata-opa/default-policy.rego"} {
			if out := run(t, "debugfs", "-R", "stat "+p, data); !strings.Contains(out, "Inode:") {
				t.Errorf("debugfs stat %s:\n%s", p, out)
			}
		}
		if out := run(t, "debugfs", "-R", "stat /etc/machine-id", data); !strings.Contains(out, "Size: 0") {
			t.Errorf("/etc/machine-id is not empty:\n%s", out)
		}
		// The NVDIMM pfn info block at 4 KiB, with its checksum; the image proper's own label
		// at 2 MiB puts the data partition at 1 MiB.
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		pfn := b[4096 : 4096+disk.BlockSize]
		if string(pfn[:16]) != disk.PfnSignature {
			t.Errorf("no NVDIMM pfn signature at 4 KiB: %q", pfn[:16])
		}
		sum := binary.LittleEndian.Uint64(pfn[disk.BlockSize-8:])
		zeroed := append([]byte(nil), pfn...)
		clear(zeroed[disk.BlockSize-8:])
		if sum != disk.Fletcher64(zeroed) {
			t.Errorf("pfn checksum %#x, want %#x", sum, disk.Fletcher64(zeroed))
		}
		if off := binary.LittleEndian.Uint64(pfn[56:]); off != disk.DAXHeader {
			t.Errorf("pfn dataoff %d, want %d", off, disk.DAXHeader)
		}
		if got := binary.LittleEndian.Uint32(b[disk.DAXHeader+446+8:]); got != 2048 || b[disk.DAXHeader+510] != 0x55 {
			t.Errorf("the label at 2 MiB starts the data partition at sector %d, want 2048", got)
		}
		if len(b)%(128<<20) != 0 {
			t.Errorf("image size %d is not a multiple of 128 MiB", len(b))
		}
		verify(t, img, data, hash)
	})

	t.Run("erofs with verity, no DAX", func(t *testing.T) {
		img := filepath.Join(dir, "kata-erofs.img")
		parts := checkTable(t, img, 2048)
		data, hash := extract(t, img, parts[0]), extract(t, img, parts[1])
		run(t, "fsck.erofs", data)
		// /sbin is merged /usr's link, which dump.erofs does not follow.
		for _, p := range []string{"/usr/bin/kata-agent", "/usr/sbin/init", "/sbin"} {
			if out := run(t, "dump.erofs", "--path="+p, data); !strings.Contains(out, "Path :") && !strings.Contains(out, "File :") {
				t.Errorf("dump.erofs --path=%s:\n%s", p, out)
			}
		}
		fi, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size()%(16<<20) != 0 {
			t.Errorf("image size %d is not a multiple of the manifest's 16 MiB", fi.Size())
		}
		verify(t, img, data, hash)
	})
}

// checkTable reads the image's label with sfdisk: two Linux partitions, the first at start.
func checkTable(t *testing.T, img string, start int64) [2][2]int64 {
	t.Helper()
	out := run(t, "sfdisk", "--dump", img)
	var parts [2][2]int64
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "start=") {
			continue
		}
		var s, size int64
		for _, f := range strings.Split(strings.SplitN(line, ":", 2)[1], ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			switch strings.TrimSpace(k) {
			case "start":
				s, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			case "size":
				size, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		if !strings.Contains(line, "type=83") || n == 2 {
			t.Fatalf("sfdisk --dump %s: unexpected %q\n%s", img, line, out)
		}
		parts[n] = [2]int64{s * 512, size * 512}
		n++
	}
	if !strings.Contains(out, "label: dos") || n != 2 || parts[0][0] != start*512 {
		t.Fatalf("sfdisk --dump %s: want a dos label, two partitions, the first at sector %d:\n%s", img, start, out)
	}
	return parts
}

// extract copies a partition out of the image into a file of its own.
func extract(t *testing.T, img string, part [2]int64) string {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "part")
	if err := os.WriteFile(p, b[part[0]:part[0]+part[1]], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// verify runs veritysetup verify with the parameters written beside the image.
func verify(t *testing.T, img, data, hash string) {
	t.Helper()
	b, err := os.ReadFile(img + ".verity-params")
	if err != nil {
		t.Fatal(err)
	}
	v, err := disk.ParseVerityParams(string(b))
	if err != nil {
		t.Fatal(err)
	}
	run(t, "veritysetup", "verify", "--no-superblock", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
		"--data-blocks="+strconv.FormatInt(v.DataBlocks, 10), "--salt="+v.Salt, data, hash, v.RootHash)
	// And a flipped byte in the data is caught.
	bad := filepath.Join(t.TempDir(), "bad")
	d, _ := os.ReadFile(data)
	d[len(d)/2] ^= 1
	os.WriteFile(bad, d, 0o644)
	if out, err := exec.Command("veritysetup", "verify", "--no-superblock", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
		"--data-blocks="+strconv.FormatInt(v.DataBlocks, 10), "--salt="+v.Salt, bad, hash, v.RootHash).CombinedOutput(); err == nil {
		t.Errorf("veritysetup verify accepted a changed data partition:\n%s", out)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
