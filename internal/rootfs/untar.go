package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ParentLinks says what a symbolic link among the directories above an entry means.
type ParentLinks int

const (
	// Follow resolves an entry's parents with [Resolve], as if root were "/": a link already in
	// the tree (merged /usr's lib -> usr/lib) leads on inside root, and a directory entry over a
	// link leaves the link standing. Relative symlinks whose target climbs out of root are
	// refused, since later entries would be resolved through them. For laying packages onto a
	// tree that is already there.
	Follow ParentLinks = iota
	// Refuse fails on a parent that is a link or not a directory: unpacking into an empty
	// directory, such a parent can only come from a hostile stream. Whatever stands at an
	// entry's own path is replaced, except a directory by a directory.
	Refuse
)

// UntarOpts says how [Untar] lays entries down.
type UntarOpts struct {
	ParentLinks ParentLinks
	// Keep, when not nil, picks the entries to lay down by their cleaned relative path (like
	// "lib/modules/6.1.0-28-amd64"); the directory entries above a kept entry come with it.
	Keep func(rel string) bool
	// Chown gives each entry the archive's owner (lchown). Modes are set after it, since
	// chown clears setuid and setgid.
	Chown bool
	// Xattrs sets the extended attributes carried as SCHILY.xattr PAX records.
	Xattrs bool
	// RootEntry gives root itself the owner, mode, xattrs and times of the archive's "./"
	// entry; otherwise that entry is skipped and root is left as it is.
	RootEntry bool
	// AccessTimes sets atimes from the archive where it carries them; otherwise atime is mtime.
	AccessTimes bool
}

// Untar lays the tar stream r into root, an existing directory, preserving modes (setuid, setgid
// and sticky included), symlinks, hard links, device nodes, fifos and times. Entries named with
// an absolute path or "..", and hard links to outside root, are refused. Directory modes and times
// are set last, deepest first, so a read-only directory does not block its own contents and
// filling a directory does not change its time.
func Untar(ctx context.Context, r io.Reader, root string, opts UntarOpts) error {
	u := &untarrer{root: root, opts: opts}
	tr := tar.NewReader(r)
	// Directories Keep passed over, by path: laid down only once a kept entry lies below them.
	held := map[string]*tar.Header{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		// The name checks below refuse what the reader calls insecure, with a clearer message.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && h != nil) {
			return fmt.Errorf("reading tar: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // defaults for later entries, which the reader does not apply either
		}
		rel, err := Name(h.Name)
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if rel == "." {
			if opts.RootEntry {
				if err := u.rootEntry(h); err != nil {
					return fmt.Errorf("entry %q: %w", h.Name, err)
				}
			}
			continue
		}
		if opts.Keep != nil {
			if !opts.Keep(rel) {
				if h.Typeflag == tar.TypeDir {
					held[rel] = h
				}
				continue
			}
			for dir := range ancestors(rel) {
				if dh, ok := held[dir]; ok {
					delete(held, dir)
					if err := u.entry(dir, dh, nil); err != nil {
						return fmt.Errorf("entry %q: %w", dh.Name, err)
					}
				}
			}
		}
		if err := u.entry(rel, h, tr); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		if err := unix.Chmod(d.path, mode(d.hdr)); err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
		if err := u.setTimes(d.path, d.hdr); err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

// Name validates a tar entry name and returns it cleaned and relative, "." for the root.
// Empty and absolute names, and names with a ".." element, are refused.
func Name(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", errors.New(`path contains ".."`)
		}
	}
	return path.Clean(name), nil
}

// ancestors yields the directories above rel, outermost first: "a", "a/b" for "a/b/c".
func ancestors(rel string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := 0; i < len(rel); i++ {
			if rel[i] == '/' && !yield(rel[:i]) {
				return
			}
		}
	}
}

// untarrer holds what laying down one archive's entries accumulates.
type untarrer struct {
	root string
	opts UntarOpts
	dirs []dirMeta // modes and times applied after all entries
}

type dirMeta struct {
	path string
	hdr  *tar.Header
}

// mode is the permission bits of h, setuid, setgid and sticky included.
func mode(h *tar.Header) uint32 { return uint32(h.Mode) & 0o7777 }

func (u *untarrer) rootEntry(h *tar.Header) error {
	if h.Typeflag != tar.TypeDir {
		return fmt.Errorf("the root is a directory, not tar type %q", h.Typeflag)
	}
	if err := u.owner(u.root, h); err != nil {
		return err
	}
	if err := u.xattrs(u.root, h); err != nil {
		return err
	}
	u.dirs = append(u.dirs, dirMeta{u.root, h})
	return nil
}

// parent returns the host path of the directory above rel, making missing directories when create
// is set.
func (u *untarrer) parent(rel string, create bool) (string, error) {
	dir := path.Dir(rel)
	if u.opts.ParentLinks == Follow {
		p, err := Resolve(u.root, dir, true)
		if err != nil {
			return "", err
		}
		if create {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", err
			}
		}
		return p, nil
	}
	cur := u.root
	if dir == "." {
		return cur, nil
	}
	for _, el := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, el)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist) && create:
			if err := os.Mkdir(cur, 0o755); err != nil {
				return "", err
			}
		case errors.Is(err, os.ErrNotExist):
			return filepath.Join(u.root, dir), nil // what is looked up there fails as missing
		case err != nil:
			return "", err
		case !fi.IsDir():
			return "", fmt.Errorf("parent %q of %q is not a directory", el, rel)
		}
	}
	return cur, nil
}

// entry lays down one entry at rel (cleaned, relative to root), reading a regular file's body from body.
func (u *untarrer) entry(rel string, h *tar.Header, body io.Reader) error {
	parent, err := u.parent(rel, true)
	if err != nil {
		return err
	}
	target := filepath.Join(parent, path.Base(rel))
	fi, err := os.Lstat(target)
	exists := err == nil
	switch {
	case !exists:
	case h.Typeflag != tar.TypeDir || u.opts.ParentLinks == Refuse && !fi.IsDir():
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		exists = false
	case fi.Mode()&os.ModeSymlink != 0:
		// Following links, an existing one (merged /usr) stands for the directory; leave it.
		return nil
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		}
	case tar.TypeReg:
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, body)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if u.opts.ParentLinks == Follow && !path.IsAbs(h.Linkname) && !staysIn(path.Dir(rel), h.Linkname) {
			return fmt.Errorf("symlink to %q: target leaves the root", h.Linkname)
		}
		if err := os.Symlink(h.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		lrel, err := Name(h.Linkname)
		if err != nil || lrel == "." {
			return fmt.Errorf("hardlink to %q outside the root", h.Linkname)
		}
		dir, err := u.parent(lrel, false)
		if err != nil {
			return fmt.Errorf("hardlink to %q: %w", h.Linkname, err)
		}
		if err := os.Link(filepath.Join(dir, path.Base(lrel)), target); err != nil {
			return err
		}
		return nil // metadata is shared with the link target
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := uint32(unix.S_IFIFO)
		switch h.Typeflag {
		case tar.TypeChar:
			kind = unix.S_IFCHR
		case tar.TypeBlock:
			kind = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknod(target, kind|mode(h)&0o777, int(dev)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar type %q", h.Typeflag)
	}
	if err := u.owner(target, h); err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := u.xattrs(target, h); err != nil {
			return err
		}
		u.dirs = append(u.dirs, dirMeta{target, h})
		return nil
	case tar.TypeSymlink:
	default:
		if err := unix.Chmod(target, mode(h)); err != nil {
			return err
		}
	}
	if err := u.xattrs(target, h); err != nil {
		return err
	}
	return u.setTimes(target, h)
}

func (u *untarrer) owner(p string, h *tar.Header) error {
	if !u.opts.Chown {
		return nil
	}
	return os.Lchown(p, h.Uid, h.Gid)
}

func (u *untarrer) xattrs(p string, h *tar.Header) error {
	if !u.opts.Xattrs {
		return nil
	}
	for k, v := range h.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

func (u *untarrer) setTimes(p string, h *tar.Header) error {
	at := h.ModTime
	if u.opts.AccessTimes && !h.AccessTime.IsZero() {
		at = h.AccessTime
	}
	ts := []unix.Timespec{timespec(at), timespec(h.ModTime)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func timespec(t time.Time) unix.Timespec { return unix.NsecToTimespec(t.UnixNano()) }

// staysIn reports whether a relative symlink target, seen from dir (relative to the root), stays
// in the root.
func staysIn(dir, target string) bool {
	depth := 0
	for _, el := range strings.Split(dir, "/") {
		if el != "" && el != "." {
			depth++
		}
	}
	for _, el := range strings.Split(target, "/") {
		switch el {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return false
			}
		default:
			depth++
		}
	}
	return true
}
