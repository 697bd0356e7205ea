package deb

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Extract unpacks the data.tar.* member of the .deb at debPath into root, preserving modes, owners,
// symlinks, hardlinks and mtimes. Entries with absolute paths or "..", symlinks whose target would
// leave root, and hardlinks to outside root are refused. Existing symlinks under root (such as the
// merged-/usr links) are followed as if root were "/".
func Extract(ctx context.Context, debPath, root string) error {
	return extract(ctx, debPath, root, nil)
}

// extract is [Extract] with a filter: when keep is not nil, only the entries it accepts (by cleaned
// relative path, like "lib/modules/6.1.0-28-amd64") are laid down, with the directories above them.
func extract(ctx context.Context, debPath, root string, keep func(rel string) bool) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer f.Close()
	name, member, err := findData(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	var r io.Reader
	switch name {
	case "data.tar":
		r = member
	case "data.tar.xz":
		if r, err = xz.NewReader(member); err != nil {
			return fmt.Errorf("extract %s: %s: %w", debPath, name, err)
		}
	case "data.tar.gz":
		gz, err := gzip.NewReader(member)
		if err != nil {
			return fmt.Errorf("extract %s: %s: %w", debPath, name, err)
		}
		defer gz.Close()
		r = gz
	case "data.tar.zst":
		zr, err := zstd.NewReader(member)
		if err != nil {
			return fmt.Errorf("extract %s: %s: %w", debPath, name, err)
		}
		defer zr.Close()
		r = zr
	default:
		return fmt.Errorf("extract %s: unsupported member %s", debPath, name)
	}
	if err := untar(ctx, tar.NewReader(r), root, keep); err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	return nil
}

// findData walks the ar archive and returns the data.tar member.
func findData(r *bufio.Reader) (string, io.Reader, error) {
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != "!<arch>\n" {
		return "", nil, fmt.Errorf("not a .deb (ar) archive")
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return "", nil, fmt.Errorf("no data.tar member")
			}
			return "", nil, fmt.Errorf("reading ar header: %w", err)
		}
		name := strings.TrimRight(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return "", nil, fmt.Errorf("bad ar member size for %q", name)
		}
		if strings.HasPrefix(name, "data.tar") {
			return name, io.LimitReader(r, size), nil
		}
		if _, err := r.Discard(int(size + size%2)); err != nil {
			return "", nil, fmt.Errorf("ar member %s: %w", name, err)
		}
	}
}

// resolveIn resolves p (relative to root, slash-separated) following symlinks inside root as if root
// were "/": the result never leaves root. The last element is not followed when followLast is false.
func resolveIn(root, p string, followLast bool) (string, error) {
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "" // relative to root, resolved
	links := 0
	for len(parts) > 0 {
		el := parts[0]
		parts = parts[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return "", fmt.Errorf("path %q leaves the root", p)
			}
			cur = path.Dir(cur)
			if cur == "." {
				cur = ""
			}
			continue
		}
		next := path.Join(cur, el)
		if len(parts) == 0 && !followLast {
			cur = next
			break
		}
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("too many symlinks resolving %q", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = ""
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return filepath.Join(root, cur), nil
}

func cleanEntry(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("path contains \"..\"")
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

type dirMeta struct {
	path  string
	mode  os.FileMode
	mtime time.Time
}

// untar lays the entries of tr into root; see [Extract] and extract for keep.
func untar(ctx context.Context, tr *tar.Reader, root string, keep func(rel string) bool) error {
	u := &untarrer{root: root, chown: os.Geteuid() == 0}
	// Directories keep passed over, by path: made, with their packaged metadata, only once a
	// kept entry lies below them.
	held := map[string]*tar.Header{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && h != nil) {
			return err
		}
		rel, err := cleanEntry(h.Name)
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if rel == "" {
			continue // the root itself
		}
		if keep != nil {
			if !keep(rel) {
				if h.Typeflag == tar.TypeDir {
					held[rel] = h
				}
				continue
			}
			for dir := range ancestors(rel) {
				if dh, ok := held[dir]; ok {
					delete(held, dir)
					if err := u.entry(dir, dh, nil); err != nil {
						return err
					}
				}
			}
		}
		if err := u.entry(rel, h, tr); err != nil {
			return err
		}
	}
	// Directory modes and times last: a read-only directory must not block its own contents.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
		if err := os.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
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
	root  string
	chown bool
	dirs  []dirMeta // modes and times applied after all entries
}

// entry lays down one entry at rel (cleaned, relative to root), reading a regular file's body from body.
func (u *untarrer) entry(rel string, h *tar.Header, body io.Reader) error {
	root := u.root
	parent, err := resolveIn(root, path.Dir(rel), true)
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	target := filepath.Join(parent, path.Base(rel))
	mode := h.FileInfo().Mode()
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	if h.Typeflag != tar.TypeDir {
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(target)
		if err == nil && fi.Mode()&os.ModeSymlink != 0 {
			// An existing link (merged /usr) stands for the directory; leave it.
			return nil
		}
		if err != nil {
			if err := os.Mkdir(target, 0o755); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		}
		u.dirs = append(u.dirs, dirMeta{target, mode, h.ModTime})
	case tar.TypeReg:
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		_, err = io.Copy(out, body)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	case tar.TypeSymlink:
		if !strings.HasPrefix(h.Linkname, "/") {
			if _, err := cleanLinkTarget(path.Dir(rel), h.Linkname); err != nil {
				return fmt.Errorf("entry %q: symlink to %q: %w", h.Name, h.Linkname, err)
			}
		}
		if err := os.Symlink(h.Linkname, target); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	case tar.TypeLink:
		lrel, err := cleanEntry(h.Linkname)
		if err != nil || lrel == "" {
			return fmt.Errorf("entry %q: hardlink to %q outside the root", h.Name, h.Linkname)
		}
		old, err := resolveIn(root, lrel, false)
		if err != nil {
			return fmt.Errorf("entry %q: hardlink to %q: %w", h.Name, h.Linkname, err)
		}
		if err := os.Link(old, target); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		return nil // metadata is shared with the link target
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		m := uint32(mode.Perm())
		switch h.Typeflag {
		case tar.TypeChar:
			m |= unix.S_IFCHR
		case tar.TypeBlock:
			m |= unix.S_IFBLK
		default:
			m |= unix.S_IFIFO
		}
		if err := unix.Mknod(target, m, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	default:
		return fmt.Errorf("entry %q: unsupported tar type %q", h.Name, h.Typeflag)
	}
	if u.chown {
		if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
	if h.Typeflag == tar.TypeSymlink {
		ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		return nil
	}
	if h.Typeflag == tar.TypeDir {
		return nil
	}
	if err := os.Chmod(target, mode); err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	if err := os.Chtimes(target, h.ModTime, h.ModTime); err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	return nil
}

// cleanLinkTarget checks that a relative symlink target, seen from dir (relative to the root), stays in the root.
func cleanLinkTarget(dir, target string) (string, error) {
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
				return "", fmt.Errorf("target leaves the root")
			}
		default:
			depth++
		}
	}
	return path.Join(dir, target), nil
}
