package engine

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// safeName validates a tar entry name and returns it cleaned and relative
// ("." for the root). Absolute names and any ".." component are refused.
func safeName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty entry name")
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("refusing absolute path %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("refusing path with '..' %q", name)
		}
	}
	return path.Clean(name), nil
}

// checkParents makes sure no existing parent of rel (inside root) is a
// symlink or non-directory, creating missing parents as 0755 dirs.
func checkParents(root, rel string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	cur := root
	for _, part := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case !st.IsDir():
			return fmt.Errorf("parent %q of %q is not a directory", part, rel)
		}
	}
	return nil
}

type dirTimes struct {
	path string
	hdr  *tar.Header
}

// untar unpacks the tar stream r into root (an existing directory),
// preserving ownership, permission bits (incl. setuid/setgid/sticky),
// symlinks, hardlinks, device nodes, fifos, xattrs and modification times.
func untar(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	var dirs []dirTimes
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		rel, err := safeName(hdr.Name)
		if err != nil {
			return err
		}
		if err := checkParents(root, rel); err != nil {
			return err
		}
		p := filepath.Join(root, rel)
		if err := unpackEntry(tr, hdr, root, rel, p); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTimes{p, hdr})
		}
	}
	// Directory times last, deepest first, since filling them changes mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setTimes(dirs[i].path, dirs[i].hdr); err != nil {
			return fmt.Errorf("%s: %w", dirs[i].hdr.Name, err)
		}
	}
	return nil
}

func unpackEntry(tr *tar.Reader, hdr *tar.Header, root, rel, p string) error {
	mode := uint32(hdr.Mode) & 0o7777
	// Remove whatever is in the way, unless dir-over-dir.
	if rel != "." {
		if st, err := os.Lstat(p); err == nil {
			if !(st.IsDir() && hdr.Typeflag == tar.TypeDir) {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
			}
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if rel != "." {
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
	case tar.TypeReg, tar.TypeRegA:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, p); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := safeName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink target: %w", err)
		}
		if err := checkParents(root, target); err != nil {
			return fmt.Errorf("hardlink target: %w", err)
		}
		if err := os.Link(filepath.Join(root, target), p); err != nil {
			return err
		}
		// A hardlink shares the inode: metadata came with the target.
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			kind = unix.S_IFCHR
		case tar.TypeBlock:
			kind = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(p, kind|(mode&0o777), int(dev)); err != nil {
			return err
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}

	if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown: chown clears setuid/setgid.
		if err := unix.Chmod(p, mode); err != nil {
			return err
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		return setTimes(p, hdr)
	}
	return nil
}

func setTimes(p string, hdr *tar.Header) error {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// unpackDir unpacks r into a fresh temp dir next to dest and, on success,
// replaces dest with it. On failure dest is left untouched.
func unpackDir(r io.Reader, dest string) error {
	tmp, err := unpackTemp(r, dest)
	if err != nil {
		return err
	}
	if err := replace(tmp, dest); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// unpackTemp unpacks r into a new dir "dest.tmp-XXXX" and returns its path;
// on error nothing is left behind.
func unpackTemp(r io.Reader, dest string) (tmp string, err error) {
	parent, base := filepath.Dir(dest), filepath.Base(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err = os.MkdirTemp(parent, base+".tmp-")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			tmp = ""
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return tmp, err
	}
	if err := untar(r, tmp); err != nil {
		return tmp, err
	}
	return tmp, nil
}

// replace moves src to dest, removing a previous dest only once src is in place.
func replace(src, dest string) error {
	if _, err := os.Lstat(dest); errors.Is(err, os.ErrNotExist) {
		return os.Rename(src, dest)
	}
	old, err := os.MkdirTemp(filepath.Dir(dest), filepath.Base(dest)+".old-")
	if err != nil {
		return err
	}
	aside := filepath.Join(old, "x")
	if err := os.Rename(dest, aside); err != nil {
		os.Remove(old)
		return err
	}
	if err := os.Rename(src, dest); err != nil {
		os.Rename(aside, dest)
		os.Remove(old)
		return err
	}
	return os.RemoveAll(old)
}
