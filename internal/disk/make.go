package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MakeOpts is one disk image to make.
type MakeOpts struct {
	Spec
	// Rootfs is the folder the file system is made from; Out the folder that receives
	// [ImageFile] and, with verity, [VerityFile]; Work a folder for the partitions while they
	// are made.
	Rootfs, Out, Work string
	// Seed is what every identifier derives from (the file system's UUID and hash seed, the
	// disk signature, the pfn UUID, the verity salt): the same seed, the same bytes.
	Seed [32]byte
	// Epoch is every time the image holds: the file system's own and each file's atime, ctime
	// and creation time; modification times after it are clamped to it.
	Epoch int64
	// Log receives the tools' output.
	Log io.Writer
}

// journalMiB is an ext4 image's journal.
const journalMiB = 16

// The files [Make] writes in MakeOpts.Out.
const (
	ImageFile  = "image"
	VerityFile = "verity-params"
)

// Make makes the image: the file system with the distro's mke2fs (then every inode's times
// set with debugfs, since mke2fs copies each file's ctime and atime from the folder) or
// mkfs.erofs (every time fixed), the hash tree with veritysetup, the labels and the pfn block
// written here. The tools are found on PATH.
func Make(ctx context.Context, o MakeOpts) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	st, err := scan(o.Rootfs, o.FS == "ext4")
	if err != nil {
		return err
	}
	data := filepath.Join(o.Work, "data")
	var l Layout
	switch o.FS {
	case "ext4":
		inodes := st.inodes + st.inodes/4 + 1024
		// Content, inode tables, the journal (a fixed 16 MiB: the rootfs is mounted read-only,
		// and a journal that grew with the partition could outgrow the estimate), bitmaps and
		// group descriptors, 3 % reserved for root, and the free space asked for.
		journal := int64(journalMiB)
		if st.bytes < 64*MiB {
			journal = 4 // mke2fs's least; a small tree's file system cannot hold 16
		}
		need := st.bytes + st.bytes/50 + inodes*256 + journal*MiB + 8*MiB
		need = need*100/97 + o.FreeMiB*MiB
		// An estimate that proves short (mke2fs runs out of blocks while copying) is raised by
		// a quarter: the same tree takes the same attempts, so the bytes are still the same.
		for attempt := 1; ; attempt++ {
			if l, err = Plan(o.Spec, need, true); err != nil {
				return err
			}
			if err := createFile(data, l.DataSize); err != nil {
				return err
			}
			err = o.run(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-b", strconv.Itoa(BlockSize), "-m", "3",
				"-I", "256", "-N", strconv.FormatInt(inodes, 10), "-J", "size="+strconv.FormatInt(journal, 10), "-U", o.uuid("fs"),
				"-E", "hash_seed="+o.uuid("hash")+",lazy_itable_init=0,lazy_journal_init=0",
				"-d", o.Rootfs, data)
			if err == nil {
				break
			}
			if attempt == 4 || !strings.Contains(err.Error(), "Could not allocate block") {
				return err
			}
			if err := os.Remove(data); err != nil {
				return err
			}
			need += need / 4
		}
		if err := o.setTimes(ctx, data, st); err != nil {
			return err
		}
	case "erofs":
		// -Enoinline_data as osbuilder: DAX maps file data, which an inline tail is not.
		if err := o.run(ctx, "mkfs.erofs", "--quiet", "-zlz4hc", "-Enoinline_data",
			"-T"+strconv.FormatInt(o.Epoch, 10), "-U", o.uuid("fs"), data, o.Rootfs); err != nil {
			return err
		}
		fi, err := os.Stat(data)
		if err != nil {
			return err
		}
		if l, err = Plan(o.Spec, fi.Size()+o.FreeMiB*MiB, false); err != nil {
			return err
		}
		if err := os.Truncate(data, l.DataSize); err != nil {
			return err
		}
	}
	var verity *VerityParams
	hash := filepath.Join(o.Work, "hash")
	if o.Verity {
		if err := createFile(hash, l.HashSize); err != nil {
			return err
		}
		salt := o.derive("verity salt")
		rootHash := filepath.Join(o.Work, "root-hash")
		v := VerityParams{Salt: hex.EncodeToString(salt[:]), DataBlocks: l.DataSize / BlockSize}
		if err := o.run(ctx, "veritysetup", "format", "--no-superblock", "--hash=sha256",
			"--data-block-size="+strconv.Itoa(BlockSize), "--hash-block-size="+strconv.Itoa(BlockSize),
			"--data-blocks="+strconv.FormatInt(v.DataBlocks, 10), "--salt="+v.Salt,
			"--root-hash-file="+rootHash, data, hash); err != nil {
			return err
		}
		b, err := os.ReadFile(rootHash)
		if err != nil {
			return err
		}
		v.RootHash = strings.TrimSpace(string(b))
		if len(v.RootHash) != 64 {
			return fmt.Errorf("veritysetup wrote the root hash %q", v.RootHash)
		}
		verity = &v
	}
	return o.assemble(l, data, hash, verity)
}

// assemble writes the image: labels, pfn block and partitions, then the verity parameters.
func (o MakeOpts) assemble(l Layout, data, hash string, verity *VerityParams) error {
	img := filepath.Join(o.Out, ImageFile)
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(l.Size); err != nil {
		return err
	}
	if _, err := f.WriteAt(l.MBR(0, o.Seed), 0); err != nil {
		return err
	}
	if o.DAX {
		if _, err := f.WriteAt(l.PfnSuperblock(o.Seed), BlockSize); err != nil {
			return err
		}
		if _, err := f.WriteAt(l.MBR(DAXHeader, o.Seed), DAXHeader); err != nil {
			return err
		}
	}
	if err := copyAt(f, data, l.Data); err != nil {
		return err
	}
	if verity != nil {
		if err := copyAt(f, hash, l.Hash); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if verity != nil {
		return os.WriteFile(filepath.Join(o.Out, VerityFile), []byte(verity.String()+"\n"), 0o644)
	}
	return nil
}

// copyAt copies the file src into f at off (copy_file_range where the kernel can).
func copyAt(f *os.File, src string, off int64) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(f, s)
	return err
}

func createFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// run runs a tool with the epoch as the time e2fsprogs records (E2FSPROGS_FAKE_TIME, the
// superblock's times and each inode's creation time) and SOURCE_DATE_EPOCH.
func (o MakeOpts) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(o.Log, &out), io.MultiWriter(o.Log, &out)
	epoch := strconv.FormatInt(o.Epoch, 10)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+epoch, "SOURCE_DATE_EPOCH="+epoch, "LC_ALL=C")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(tail(out.String())))
	}
	return nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// derive is a value of the seed for one purpose.
func (o MakeOpts) derive(purpose string) [32]byte {
	return sha256.Sum256(append([]byte("rootfsc disk "+purpose+"\x00"), o.Seed[:]...))
}

// uuid is a version 4 (random-looking) UUID of the seed for one purpose.
func (o MakeOpts) uuid(purpose string) string {
	b := o.derive(purpose)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// stats is what a rootfs holds: the bytes of its blocks, its inodes and, for debugfs, every
// path with its modification time.
type stats struct {
	bytes, inodes int64
	paths         []string
	mtimes        []int64
}

// scan walks the rootfs (following no link). With paths, it refuses names debugfs's command
// language cannot quote (a newline ends a command).
func scan(root string, paths bool) (*stats, error) {
	st := &stats{}
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		if paths && strings.Contains(name, "\n") {
			return fmt.Errorf("disk: %s: a name with a newline cannot be given to debugfs", strconv.Quote(name))
		}
		sys, _ := fi.Sys().(*syscall.Stat_t)
		if sys != nil && sys.Nlink > 1 && !fi.IsDir() {
			key := [2]uint64{uint64(sys.Dev), sys.Ino}
			if seen[key] {
				st.paths, st.mtimes = append(st.paths, name), append(st.mtimes, fi.ModTime().Unix())
				return nil
			}
			seen[key] = true
		}
		st.inodes++
		switch {
		case fi.Mode().IsRegular():
			st.bytes += roundUp(fi.Size(), BlockSize)
		case fi.IsDir():
			st.bytes += BlockSize
		case fi.Mode()&fs.ModeSymlink != 0 && fi.Size() >= 60:
			st.bytes += BlockSize
		}
		st.paths, st.mtimes = append(st.paths, name), append(st.mtimes, fi.ModTime().Unix())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// setTimes gives every inode of the ext4 file system in img the epoch as its atime, ctime and
// creation time, and its modification time clamped to the epoch, with debugfs.
func (o MakeOpts) setTimes(ctx context.Context, img string, st *stats) error {
	var b strings.Builder
	at := "@" + strconv.FormatInt(o.Epoch, 10)
	for i, p := range st.paths {
		// In debugfs's command language a quoted word is literal but for "" (one quote).
		p = strings.ReplaceAll(p, `"`, `""`)
		m := min(st.mtimes[i], o.Epoch)
		if m < 0 {
			m = 0
		}
		fmt.Fprintf(&b, "sif \"%s\" mtime @%d\nsif \"%s\" atime %s\nsif \"%s\" ctime %s\nsif \"%s\" crtime %s\n", p, m, p, at, p, at, p, at)
	}
	for _, f := range []string{"mtime", "atime", "ctime", "crtime"} {
		fmt.Fprintf(&b, "sif /lost+found %s %s\n", f, at)
	}
	cmds := filepath.Join(o.Work, "debugfs-times")
	if err := os.WriteFile(cmds, []byte(b.String()), 0o600); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", cmds, img)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(o.Epoch, 10), "LC_ALL=C")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debugfs: %w: %s", err, tail(stderr.String()))
	}
	// debugfs exits 0 whatever its commands say; anything but its banner is a failure.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			return fmt.Errorf("debugfs, setting the inodes' times: %s", tail(stderr.String()))
		}
	}
	return nil
}
