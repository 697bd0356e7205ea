package engine

// The initrd output: the rootfs as a gzip'd cpio archive in the "newc" format, the job of
// osbuilder's initrd_builder.sh (`cpio -H newc | gzip -9`), but reproducible: entries in the tar
// exporter's order, times as exported (the epoch), inode numbers counted from 1, and a
// fixed gzip header.

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// Unix file type bits of a cpio mode.
const (
	cpioDir  = 0o040000
	cpioReg  = 0o100000
	cpioLink = 0o120000
	cpioChr  = 0o020000
	cpioBlk  = 0o060000
	cpioFIFO = 0o010000
)

// cpioTrailer names the entry that ends an archive.
const cpioTrailer = "TRAILER!!!"

// cpioWriter writes newc entries.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	n   int64 // bytes written, for padding
}

type cpioEntry struct {
	name                 string
	mode                 uint32 // type and permission bits
	uid, gid             uint32
	nlink                uint32
	mtime                int64
	size                 int64
	devMajor, devMinor   uint32
	ino                  uint32 // 0: a new one
	rdevMajor, rdevMinor uint32
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// header writes e's header and name; the caller writes e.size bytes of data and calls pad.
func (c *cpioWriter) header(e cpioEntry) (uint32, error) {
	ino := e.ino
	if ino == 0 && e.name != cpioTrailer {
		c.ino++
		ino = c.ino
	}
	if e.nlink == 0 {
		e.nlink = 1
		if e.mode&0o170000 == cpioDir {
			e.nlink = 2
		}
	}
	if e.mtime < 0 {
		e.mtime = 0
	}
	if e.size > math.MaxUint32 || e.mtime > math.MaxUint32 {
		return 0, fmt.Errorf("%s: size %d or time %d does not fit a newc header", e.name, e.size, e.mtime)
	}
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.mode, e.uid, e.gid, e.nlink, uint32(e.mtime), uint32(e.size),
		e.devMajor, e.devMinor, e.rdevMajor, e.rdevMinor, len(e.name)+1, 0)
	if err := c.write([]byte(h)); err != nil {
		return 0, err
	}
	if err := c.write(append([]byte(e.name), 0)); err != nil {
		return 0, err
	}
	return ino, c.pad()
}

// writeInitrd converts the rootfs tar at tarPath into a gzip'd newc cpio at dest. It adds what
// the kernel needs from an initramfs when the tree has none: /init (a link to the init the tree
// has), /dev/console (the init's stdio) and the mount points /dev, /proc, /sys, /run and /tmp.
// Extended attributes have no place in newc and are dropped.
func writeInitrd(tarPath string, dest io.Writer, epoch int64) error {
	// First pass: which names exist, and which files are hard link targets.
	names := map[string]byte{}
	links := map[string]uint32{} // hard link target -> number of names it has
	if err := eachEntry(tarPath, func(h *tar.Header, _ io.Reader) error {
		names[cleanEntry(h.Name)] = h.Typeflag
		if h.Typeflag == tar.TypeLink {
			target := cleanEntry(h.Linkname)
			if links[target] == 0 {
				links[target] = 1
			}
			links[target]++
		}
		return nil
	}); err != nil {
		return err
	}

	zw, err := gzip.NewWriterLevel(dest, gzip.BestCompression)
	if err != nil {
		return err
	}
	c := &cpioWriter{w: bufio.NewWriterSize(zw, 1<<20)}

	// The mount points the kernel needs come first, so a tree with dev/pts but no dev still unpacks.
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		if _, ok := names[d]; !ok {
			mode := uint32(cpioDir | 0o755)
			if d == "tmp" {
				mode = cpioDir | 0o1777
			}
			if _, err := c.header(cpioEntry{name: d, mode: mode, mtime: epoch}); err != nil {
				return err
			}
		}
	}

	type inode struct {
		ino, mode            uint32
		rdevMajor, rdevMinor uint32
		target               string // a symlink's
	}
	inodes := map[string]inode{} // every non-directory written, for the hard links to it
	err = eachEntry(tarPath, func(h *tar.Header, r io.Reader) error {
		name := cleanEntry(h.Name)
		if name == "." {
			return nil
		}
		e := cpioEntry{name: name, mode: uint32(h.Mode) & 0o7777, uid: uint32(h.Uid), gid: uint32(h.Gid), mtime: h.ModTime.Unix()}
		var data io.Reader
		switch h.Typeflag {
		case tar.TypeDir:
			e.mode |= cpioDir
		case tar.TypeReg:
			e.mode |= cpioReg
			e.size, data = h.Size, r
			e.nlink = links[name]
		case tar.TypeLink:
			target := cleanEntry(h.Linkname)
			in, ok := inodes[target]
			if !ok {
				return fmt.Errorf("%s: hard link to %s, which comes later or not at all", name, target)
			}
			if in.mode&0o170000 != cpioReg {
				// The kernel links only regular files; another name of a symlink or a
				// device is written as a copy of it.
				e.mode, e.rdevMajor, e.rdevMinor = in.mode, in.rdevMajor, in.rdevMinor
				if in.mode&0o170000 == cpioLink {
					e.size, data = int64(len(in.target)), strings.NewReader(in.target)
				}
				break
			}
			// A later name of a file already written: same inode, no data; the kernel links it.
			e.mode = e.mode&0o7777 | cpioReg
			e.ino, e.nlink = in.ino, links[target]
		case tar.TypeSymlink:
			e.mode |= cpioLink
			e.size, data = int64(len(h.Linkname)), strings.NewReader(h.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			e.mode |= cpioChr
			if h.Typeflag == tar.TypeBlock {
				e.mode = e.mode&^0o170000 | cpioBlk
			}
			e.rdevMajor, e.rdevMinor = uint32(h.Devmajor), uint32(h.Devminor)
		case tar.TypeFifo:
			e.mode |= cpioFIFO
		case tar.TypeXGlobalHeader:
			return nil // carries no file
		default:
			return fmt.Errorf("%s: tar entry type %q has no initrd equivalent", name, h.Typeflag)
		}
		ino, err := c.header(e)
		if err != nil {
			return err
		}
		if e.mode&0o170000 != cpioDir {
			inodes[name] = inode{ino: ino, mode: e.mode, rdevMajor: e.rdevMajor, rdevMinor: e.rdevMinor, target: h.Linkname}
		}
		if data != nil {
			if _, err := io.CopyN(c, data, e.size); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return c.pad()
		}
		return nil
	})
	if err != nil {
		return err
	}

	// The console and /init, when the tree lacks them.
	if _, ok := names["dev/console"]; !ok {
		if _, err := c.header(cpioEntry{name: "dev/console", mode: cpioChr | 0o600, rdevMajor: 5, rdevMinor: 1, mtime: epoch}); err != nil {
			return err
		}
	}
	if _, ok := names["init"]; !ok {
		target := initTarget(names)
		if target == "" {
			return fmt.Errorf("the rootfs has no /sbin/init for the initrd's /init")
		}
		if _, err := c.header(cpioEntry{name: "init", mode: cpioLink | 0o777, size: int64(len(target)), mtime: epoch}); err != nil {
			return err
		}
		if err := c.write([]byte(target)); err != nil {
			return err
		}
		if err := c.pad(); err != nil {
			return err
		}
	}
	if _, err := c.header(cpioEntry{name: cpioTrailer, nlink: 1}); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

// Write lets io.CopyN write file data through the counting writer.
func (c *cpioWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// initTarget is where the initrd's /init points: /sbin/init when the tree has it (directly or
// through a merged-/usr /sbin link), else /usr/sbin/init (an overlay of the Kata layers).
func initTarget(names map[string]byte) string {
	if _, ok := names["sbin/init"]; ok {
		return "/sbin/init"
	}
	if t, ok := names["sbin"]; ok && t == tar.TypeSymlink {
		if _, ok := names["usr/sbin/init"]; ok {
			return "/sbin/init"
		}
	}
	if _, ok := names["usr/sbin/init"]; ok {
		return "/usr/sbin/init"
	}
	return ""
}

func cleanEntry(name string) string { return path.Clean("./" + name) }

// eachEntry calls fn for every entry of the tar file at p.
func eachEntry(p string, fn func(*tar.Header, io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := rootfs.Name(h.Name)
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		// newc ends at an entry of this name: what followed would be a new archive to the
		// kernel, which forgets the inodes seen before it (hard links become empty files).
		if name == cpioTrailer {
			return fmt.Errorf("entry %q: the name ends a newc archive", h.Name)
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

// toInitrd converts the rootfs tar at tarPath into the initrd dest, through a temporary file
// renamed into place only when complete.
func toInitrd(tarPath, dest string, epoch int64) error {
	f, err := os.CreateTemp(filepath.Dir(dest), filepath.Base(dest)+".tmp-*")
	if err != nil {
		return err
	}
	err = writeInitrd(tarPath, f, epoch)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), dest)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing the initrd: %w", err)
	}
	return nil
}

// WriteInitrd converts the tar at tarPath into a gzip'd newc cpio, as the initrd output does
// (`rootfsc boot` makes the boot shim's initramfs with it).
func WriteInitrd(tarPath string, dest io.Writer, epoch int64) error {
	return writeInitrd(tarPath, dest, epoch)
}
