// Package disk makes Kata's guest disk images (osbuilder's image_builder.sh): a raw image with
// an msdos label, the rootfs's file system in a partition from 1 MiB, optionally a dm-verity
// hash partition after it, and by default the 2 MiB DAX/NVDIMM header in front (a first MBR
// whose partitions start 2 MiB later, and an NVDIMM pfn superblock at 4 KiB), the whole rounded
// up to an alignment. The layout, the labels and the pfn superblock are computed here; the file
// systems and the hash tree are made by the distro's own mke2fs, mkfs.erofs and veritysetup
// (see [Make]), inside a build step.
package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	// MiB is a mebibyte.
	MiB = 1 << 20
	// BlockSize is the file system and dm-verity block size (osbuilder's, and DAX's page size).
	BlockSize = 4096
	// DAXHeader is the size of the DAX/NVDIMM header in front of the image.
	DAXHeader = 2 * MiB
	// PartStart is where the first partition starts, from the start of the image proper.
	PartStart = 1 * MiB
	// DefaultAlign is osbuilder's IMAGE_SIZE_ALIGNMENT_MB.
	DefaultAlign = 128
	sector       = 512
)

// Spec is what a disk output asks for.
type Spec struct {
	FS     string // ext4 or erofs
	Verity bool
	DAX    bool
	// FreeMiB is the free space the file system gets over its content; AlignMiB rounds the
	// file's size (0: [DefaultAlign]).
	FreeMiB, AlignMiB int64
}

// Validate says what is wrong with a spec.
func (s Spec) Validate() error {
	switch s.FS {
	case "ext4", "erofs":
	case "xfs":
		return errors.New("fs xfs: mkfs.xfs cannot populate a file system from a folder without mounting it (no loop devices in a build step): use ext4 or erofs")
	default:
		return fmt.Errorf("fs %q: want ext4 or erofs", s.FS)
	}
	if s.FreeMiB < 0 || s.FreeMiB > 1<<20 {
		return fmt.Errorf("freeSpace %d MiB: want 0 to 1048576", s.FreeMiB)
	}
	if s.AlignMiB < 0 || s.AlignMiB > 65536 {
		return fmt.Errorf("align %d MiB: want 1 to 65536", s.AlignMiB)
	}
	return nil
}

func (s Spec) align() int64 {
	if s.AlignMiB == 0 {
		return DefaultAlign * MiB
	}
	return s.AlignMiB * MiB
}

// Layout is where everything goes in the file, in bytes from its start.
type Layout struct {
	Size int64 // of the file
	// Image is where the image proper starts (its MBR): DAXHeader with DAX, else 0.
	Image int64
	// Data and Hash are the partitions (Hash 0 without verity), from the start of the file.
	Data, DataSize int64
	Hash, HashSize int64
}

// HashTreeSize is the size of dm-verity's hash tree (no superblock) over dataSize bytes with
// sha256 and 4 KiB blocks: every level down to a single block, each block holding 128 digests.
func HashTreeSize(dataSize int64) int64 {
	n := ceilDiv(dataSize, BlockSize)
	var blocks int64
	for n > 1 {
		n = ceilDiv(n, BlockSize/sha256.Size)
		blocks += n
	}
	if blocks == 0 {
		blocks = 1
	}
	return blocks * BlockSize
}

// Plan lays out a disk for a file system of fsSize bytes (the least it needs); with grow, the
// file system's partition takes whatever the alignment leaves (ext4, made after the layout),
// else it is fsSize rounded up to a MiB (erofs, made before).
func Plan(s Spec, fsSize int64, grow bool) (Layout, error) {
	if err := s.Validate(); err != nil {
		return Layout{}, err
	}
	if fsSize <= 0 {
		return Layout{}, errors.New("disk: empty file system")
	}
	var l Layout
	if s.DAX {
		l.Image = DAXHeader
	}
	l.Data = l.Image + PartStart
	l.DataSize = roundUp(fsSize, MiB)
	if s.Verity {
		l.HashSize = roundUp(HashTreeSize(l.DataSize), MiB)
	}
	l.Size = roundUp(l.Data+l.DataSize+l.HashSize, s.align())
	if grow {
		avail := l.Size - l.Data
		if s.Verity {
			l.DataSize = (avail - roundUp(HashTreeSize(avail), MiB)) / MiB * MiB
			l.HashSize = roundUp(HashTreeSize(l.DataSize), MiB)
		} else {
			l.DataSize = avail
		}
	}
	if s.Verity {
		l.Hash = l.Data + l.DataSize
	}
	if l.Hash+l.HashSize > l.Size || l.Data+l.DataSize > l.Size {
		return Layout{}, fmt.Errorf("disk: layout overflows %d bytes", l.Size)
	}
	// msdos labels address 2^32 sectors.
	if l.Size/sector >= 1<<32 {
		return Layout{}, fmt.Errorf("disk: %d MiB is more than an msdos label addresses (2 TiB)", l.Size/MiB)
	}
	return l, nil
}

// MBR is the master boot record of the label as seen from offset base of the file (0 for the
// first, [DAXHeader] for the image proper behind a DAX header): partitions relative to base,
// Linux type 0x83, the disk signature from the seed.
func (l Layout) MBR(base int64, seed [32]byte) []byte {
	b := make([]byte, sector)
	copy(b[440:444], seed[:4])
	parts := [][2]int64{{l.Data, l.DataSize}}
	if l.HashSize > 0 {
		parts = append(parts, [2]int64{l.Hash, l.HashSize})
	}
	for i, p := range parts {
		e := b[446+16*i : 446+16*(i+1)]
		start, n := uint64(p[0]-base)/sector, uint64(p[1])/sector
		e[0] = 0x00
		copy(e[1:4], chs(start))
		e[4] = 0x83
		copy(e[5:8], chs(start+n-1))
		binary.LittleEndian.PutUint32(e[8:12], uint32(start))
		binary.LittleEndian.PutUint32(e[12:16], uint32(n))
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

// chs is the cylinder/head/sector address of an LBA with 255 heads and 63 sectors per track,
// as fdisk writes it, or the "beyond 1024 cylinders" marker.
func chs(lba uint64) []byte {
	const heads, sectors = 255, 63
	c := lba / (heads * sectors)
	if c > 1023 {
		return []byte{0xfe, 0xff, 0xff}
	}
	h := (lba / sectors) % heads
	s := lba%sectors + 1
	return []byte{byte(h), byte(s) | byte((c>>2)&0xc0), byte(c)}
}

// PfnSignature is an NVDIMM pfn info block's signature.
const PfnSignature = "NVDIMM_PFN_INFO\x00"

// PfnSuperblock is the 4 KiB NVDIMM "pfn" info block at 4 KiB of a DAX image: Linux's struct
// nd_pfn_sb (drivers/nvdimm/pfn.h), version 1.2: the data (the image proper) at DAXHeader, the
// pages it maps, RAM mode, 2 MiB alignment, and the fletcher64 checksum of the block. RAM mode
// keeps the image's struct pages in guest memory: in PMEM mode they would have to fit between
// the info block and the data, 64 bytes a page in under 2 MiB, 128 MiB of image at most, and
// Linux refuses a larger one (nd_pmem: probe of pfn0.1 failed with error -12, seen with Debian's
// 6.1 kernel booting a 256 MiB image).
func (l Layout) PfnSuperblock(seed [32]byte) []byte {
	b := make([]byte, BlockSize)
	copy(b[0:16], PfnSignature)
	u := sha256.Sum256(append([]byte("rootfsc pfn uuid\x00"), seed[:]...))
	copy(b[16:32], u[:16]) // uuid; parent_uuid (32:48) stays zero
	le := binary.LittleEndian
	le.PutUint32(b[48:], 0)                                  // flags
	le.PutUint16(b[52:], 1)                                  // version_major
	le.PutUint16(b[54:], 2)                                  // version_minor
	le.PutUint64(b[56:], DAXHeader)                          // dataoff
	le.PutUint64(b[64:], uint64(l.Size-DAXHeader)/BlockSize) // npfns
	le.PutUint32(b[72:], 1)                                  // mode: PFN_MODE_RAM (see above)
	le.PutUint32(b[76:], 0)                                  // start_pad
	le.PutUint32(b[80:], 0)                                  // end_trunc
	le.PutUint32(b[84:], DAXHeader)                          // align
	le.PutUint64(b[BlockSize-8:], Fletcher64(b))             // checksum, over the block with the field zero
	return b
}

// Fletcher64 is the NVDIMM info blocks' checksum (Linux's nd_fletcher64, little endian) over b,
// whose length is a multiple of 4 (the block, with its checksum field zero).
func Fletcher64(b []byte) uint64 {
	var lo uint32
	var hi uint64
	for i := 0; i+4 <= len(b); i += 4 {
		lo += binary.LittleEndian.Uint32(b[i:])
		hi += uint64(lo)
	}
	return hi<<32 | uint64(lo)
}

// VerityParams is the line Kata's runtime reads as kernel_verity_params.
type VerityParams struct {
	RootHash, Salt string
	DataBlocks     int64
}

func (v VerityParams) String() string {
	return fmt.Sprintf("root_hash=%s,salt=%s,data_blocks=%d,data_block_size=%d,hash_block_size=%d",
		v.RootHash, v.Salt, v.DataBlocks, BlockSize, BlockSize)
}

// DMTable is the dm-verity table of the kernel's dm-mod.create= for the partitions dataDev and
// hashDev ("/dev/vda1", "/dev/pmem0p1"): what Kata's runtime builds from the parameters.
func (v VerityParams) DMTable(dataDev, hashDev string) string {
	return fmt.Sprintf("dm-verity,,,ro,0 %d verity 1 %s %s %d %d %d 0 sha256 %s %s",
		v.DataBlocks*BlockSize/sector, dataDev, hashDev, BlockSize, BlockSize, v.DataBlocks, v.RootHash, v.Salt)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func roundUp(a, b int64) int64 { return ceilDiv(a, b) * b }

// ParseVerityParams reads the parameters line [VerityParams.String] writes.
func ParseVerityParams(s string) (VerityParams, error) {
	var v VerityParams
	kv := map[string]string{}
	for _, f := range strings.Split(strings.TrimSpace(s), ",") {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return v, fmt.Errorf("%q is not key=value", f)
		}
		kv[k] = val
	}
	v.RootHash, v.Salt = kv["root_hash"], kv["salt"]
	n, err := strconv.ParseInt(kv["data_blocks"], 10, 64)
	if err != nil || n <= 0 {
		return v, fmt.Errorf("data_blocks %q: not a count of blocks", kv["data_blocks"])
	}
	v.DataBlocks = n
	if !isHex(v.RootHash) || !isHex(v.Salt) {
		return v, fmt.Errorf("root_hash %q or salt %q: not hex digits", v.RootHash, v.Salt)
	}
	if kv["data_block_size"] != strconv.Itoa(BlockSize) || kv["hash_block_size"] != strconv.Itoa(BlockSize) {
		return v, fmt.Errorf("block sizes %s and %s: rootfsc makes %d", kv["data_block_size"], kv["hash_block_size"], BlockSize)
	}
	return v, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
