package rootfs

// Untar writes nothing by path. The root is opened once; the directory above each entry is
// opened from it one element at a time with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), and the
// entry is made, owned, moded, timed and given its xattrs relative to that descriptor, never
// following a link at its own name. So a link a stream makes is never followed by the unpacker,
// whatever order the entries come in: at worst an operation fails, it never lands outside root.

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"path"
	"slices"
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
	// directory, such a parent can only come from a hostile stream. Something other than a
	// directory already at an entry's own path is replaced; a directory is kept for a directory
	// entry and refused for anything else.
	Refuse
)

// Limits [Untar] applies when [UntarOpts] leaves them zero: far above any root filesystem, yet
// a bound on what a small compressed stream or a sparse entry can make the unpacker write.
const (
	DefaultMaxEntries = 1 << 20
	DefaultMaxSize    = 256 << 30
)

// maxName bounds entry names and link targets: the kernel's PATH_MAX.
const maxName = 4096

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
	// RefuseDevices refuses character and block devices (a package has none); fifos pass.
	RefuseDevices bool
	// MaxEntries and MaxSize bound the number of entries and the bytes the reader decodes for
	// them: headers, PAX records and data (sparse holes included, skipped entries too); 0 means
	// [DefaultMaxEntries] and [DefaultMaxSize]. Both are checked on each header, before its data.
	MaxEntries int
	MaxSize    int64
	// Reuse is a previous tree (the output this one replaces): a regular file whose header and
	// bytes match the file at the same path there is hard-linked from it instead of written (see
	// reuse.go). Only with Xattrs, so that a file's attributes can be compared; "" or a tree
	// that cannot be opened reuses nothing.
	Reuse string
	// Stats, when not nil, counts the regular files reused and written.
	Stats *UntarStats
}

// UntarStats counts what [Untar] did with the regular files of a stream.
type UntarStats struct {
	Reused, Written int
}

// Untar lays the tar stream r into root, an existing directory, preserving modes (setuid, setgid
// and sticky included), symlinks, hard links, device nodes, fifos and times. Entries named with
// an absolute path or "..", hard links to outside root, a second entry for a path, and a
// non-directory over a directory are refused. Directory modes and times are set last, deepest
// first, so a read-only directory does not block its own contents and filling a directory does
// not change its time.
func Untar(ctx context.Context, r io.Reader, root string, opts UntarOpts) error {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	u := &untarrer{
		root:     os.NewFile(uintptr(fd), root),
		rootPath: root,
		opts:     opts,
		seen:     map[string]bool{},
		dirs:     map[string]*tar.Header{},
	}
	defer u.close()
	if opts.Reuse != "" && opts.Xattrs {
		if r, err := openReuse(opts.Reuse); err == nil {
			u.reuse = r
		}
	}
	maxEntries := cmp.Or(opts.MaxEntries, DefaultMaxEntries)
	maxSize := cmp.Or(opts.MaxSize, DefaultMaxSize)
	var entries int
	var size int64
	tr := tar.NewReader(r)
	// Directories Keep passed over, by path: laid down only once a kept entry lies below them.
	held := map[string]*tar.Header{}
	prev := "" // the last entry read, to place an error in the next header
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
			if prev == "" {
				return fmt.Errorf("reading tar: %w", err)
			}
			return fmt.Errorf("reading tar after entry %s: %w", quote(prev), err)
		}
		prev = h.Name
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // defaults for later entries, which the reader does not apply either
		}
		if entries++; entries > maxEntries {
			return fmt.Errorf("entry %s: more than %d entries in one archive", quote(h.Name), maxEntries)
		}
		n := h.Size + headerSize(h)
		if n > maxSize-size {
			return fmt.Errorf("entry %s: the archive passes the limit of %d bytes", quote(h.Name), maxSize)
		}
		size += n
		if len(h.Name) > maxName {
			return fmt.Errorf("entry %s: name longer than %d bytes", quote(h.Name), maxName)
		}
		if len(h.Linkname) > maxName {
			return fmt.Errorf("entry %s: link target longer than %d bytes", quote(h.Name), maxName)
		}
		rel, err := Name(h.Name)
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if u.seen[rel] {
			return fmt.Errorf("entry %q: duplicate of an earlier entry", h.Name)
		}
		u.seen[rel] = true
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
	return u.finish()
}

// headerSize is about what the reader decoded for h besides its data: the header block and its
// PAX records or GNU long names, which a stream can make up to a MiB each.
func headerSize(h *tar.Header) int64 {
	n := int64(512 + len(h.Name) + len(h.Linkname))
	for k, v := range h.PAXRecords {
		n += int64(len(k) + len(v))
	}
	return n
}

// quote quotes an entry name for an error, cut short when a hostile header made it huge.
func quote(name string) string {
	const max = 256
	if len(name) <= max {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q… (%d bytes)", name[:max], len(name))
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
	root     *os.File // O_PATH, the directory everything is opened from
	rootPath string   // for Resolve, which only reads
	opts     UntarOpts
	seen     map[string]bool        // entry names laid down, to refuse a second entry for one
	dirs     map[string]*tar.Header // by path below root: modes and times applied last
	// The directory the last entry went into, kept open since entries come grouped by directory.
	lastDir  string
	lastFile *os.File
	reuse    *reuser // the previous tree, or nil
}

func (u *untarrer) close() {
	u.reuse.close()
	if u.lastFile != nil {
		u.lastFile.Close()
	}
	u.root.Close()
}

// mode is the permission bits of h, setuid, setgid and sticky included.
func mode(h *tar.Header) uint32 { return uint32(h.Mode) & 0o7777 }

// How every directory is opened below root: no symlink at all, not even one inside root.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens rel (relative to dirfd, no symlink on the way or at the end) with flags.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: beneath}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

func (u *untarrer) rootEntry(h *tar.Header) error {
	if h.Typeflag != tar.TypeDir {
		return fmt.Errorf("the root is a directory, not tar type %q", h.Typeflag)
	}
	rootfd := int(u.root.Fd())
	if u.opts.Chown {
		if err := unix.Fchownat(rootfd, "", h.Uid, h.Gid, unix.AT_EMPTY_PATH); err != nil {
			return &os.PathError{Op: "chown", Path: ".", Err: err}
		}
	}
	if err := u.dirXattrs(rootfd, ".", h); err != nil {
		return err
	}
	u.dirs["."] = h
	return nil
}

// parent returns the directory above rel, open, and its path below root (links resolved when
// following them), making missing directories. The file belongs to u.
func (u *untarrer) parent(rel string) (*os.File, string, error) {
	dir, err := u.parentPath(rel)
	if err != nil {
		return nil, "", err
	}
	if u.lastFile != nil && dir == u.lastDir {
		return u.lastFile, dir, nil
	}
	f, err := u.openDir(dir, rel, true)
	if err != nil {
		return nil, "", err
	}
	if u.lastFile != nil {
		u.lastFile.Close()
	}
	u.lastDir, u.lastFile = dir, f
	return f, dir, nil
}

// parentPath is the path below root of the directory above rel, "." for root itself.
func (u *untarrer) parentPath(rel string) (string, error) {
	dir := path.Dir(rel)
	if u.opts.ParentLinks == Refuse {
		return dir, nil
	}
	// Resolve only reads (lstat, readlink); what it returns has no link left in it, and
	// openDir refuses one should it find any.
	resolved, err := walk(u.rootPath, dir, true, false)
	if err != nil {
		return "", err
	}
	return cmp.Or(strings.TrimPrefix(resolved, "/"), "."), nil
}

// openDir opens dir (below root) one element at a time, none of them a link, making missing
// directories when create is set. rel is the entry it is for, in errors.
func (u *untarrer) openDir(dir, rel string, create bool) (*os.File, error) {
	cur, err := openBeneath(int(u.root.Fd()), ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: ".", Err: err}
	}
	if dir != "." {
		done := ""
		for _, el := range strings.Split(dir, "/") {
			done = path.Join(done, el)
			fd, err := openBeneath(cur, el, unix.O_PATH|unix.O_DIRECTORY)
			if err == unix.ENOENT && create {
				if err = unix.Mkdirat(cur, el, 0o755); err == nil || err == unix.EEXIST {
					fd, err = openBeneath(cur, el, unix.O_PATH|unix.O_DIRECTORY)
				}
			}
			unix.Close(cur)
			switch {
			case err == unix.ELOOP || err == unix.ENOTDIR:
				return nil, fmt.Errorf("parent %q of %q is not a directory", el, rel)
			case err != nil:
				return nil, &os.PathError{Op: "openat2", Path: done, Err: err}
			}
			cur = fd
		}
	}
	return os.NewFile(uintptr(cur), dir), nil
}

// kind names a tar type the way an error about replacing something does.
func kind(t byte) string {
	switch t {
	case tar.TypeDir:
		return "directory"
	case tar.TypeReg:
		return "file"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("tar type %q", t)
}

// entry lays down one entry at rel (cleaned, relative to root), reading a regular file's body from body.
func (u *untarrer) entry(rel string, h *tar.Header, body io.Reader) error {
	switch h.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		if u.opts.RefuseDevices {
			return fmt.Errorf("%s %d:%d not allowed in this archive", kind(h.Typeflag), h.Devmajor, h.Devminor)
		}
	default:
		return fmt.Errorf("unsupported tar type %q", h.Typeflag)
	}
	if h.Typeflag == tar.TypeSymlink && u.opts.ParentLinks == Follow && !path.IsAbs(h.Linkname) && !staysIn(path.Dir(rel), h.Linkname) {
		return fmt.Errorf("symlink to %q: target leaves the root", h.Linkname)
	}
	parent, dir, err := u.parent(rel)
	if err != nil {
		return err
	}
	pfd := int(parent.Fd())
	name := path.Base(rel)
	var st unix.Stat_t
	switch err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
	case err != nil:
		return &os.PathError{Op: "lstat", Path: rel, Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		if h.Typeflag != tar.TypeDir {
			// As dpkg does: what a directory holds is not thrown away for another kind of file.
			return fmt.Errorf("a %s cannot replace the directory %q", kind(h.Typeflag), rel)
		}
	case st.Mode&unix.S_IFMT == unix.S_IFLNK && h.Typeflag == tar.TypeDir && u.opts.ParentLinks == Follow:
		// Following links, an existing one (merged /usr) stands for the directory; leave it.
		return nil
	default:
		if err := unix.Unlinkat(pfd, name, 0); err != nil {
			return &os.PathError{Op: "unlink", Path: rel, Err: err}
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "mkdir", Path: rel, Err: err}
		}
		if err := u.owner(pfd, name, h); err != nil {
			return err
		}
		if err := u.dirXattrs(pfd, name, h); err != nil {
			return err
		}
		u.dirs[path.Join(dir, name)] = h
		return nil
	case tar.TypeReg:
		if u.reuse != nil {
			reused, rest, done, err := u.reuseFile(pfd, name, path.Join(dir, name), h, body)
			defer done()
			if err != nil || reused {
				return err
			}
			body = rest
		}
		if u.opts.Stats != nil {
			u.opts.Stats.Written++
		}
		return u.file(pfd, name, rel, h, body)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, pfd, name); err != nil {
			return &os.PathError{Op: "symlink", Path: rel, Err: err}
		}
	case tar.TypeLink:
		return u.hardlink(pfd, name, rel, h)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := uint32(unix.S_IFIFO)
		switch h.Typeflag {
		case tar.TypeChar:
			typ = unix.S_IFCHR
		case tar.TypeBlock:
			typ = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknodat(pfd, name, typ|0o600, int(dev)); err != nil {
			return &os.PathError{Op: "mknod", Path: rel, Err: err}
		}
	}
	if err := u.owner(pfd, name, h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := chmodAt(pfd, name, mode(h)); err != nil {
			return &os.PathError{Op: "chmod", Path: rel, Err: err}
		}
	}
	if err := u.xattrsAt(pfd, name, h); err != nil {
		return err
	}
	return u.setTimes(pfd, name, h)
}

// file writes a regular file's body into a new file name in the directory pfd.
func (u *untarrer) file(pfd int, name, rel string, h *tar.Header, body io.Reader) error {
	fd, err := unix.Openat(pfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if _, err := io.Copy(f, body); err != nil {
		return err
	}
	if u.opts.Chown {
		if err := unix.Fchown(fd, h.Uid, h.Gid); err != nil {
			return &os.PathError{Op: "chown", Path: rel, Err: err}
		}
	}
	if err := unix.Fchmod(fd, mode(h)); err != nil {
		return &os.PathError{Op: "chmod", Path: rel, Err: err}
	}
	if err := u.xattrsFd(fd, h); err != nil {
		return err
	}
	if err := u.setTimes(pfd, name, h); err != nil {
		return err
	}
	return f.Close()
}

// hardlink links name in the directory pfd to the entry h names, which must be in root already.
func (u *untarrer) hardlink(pfd int, name, rel string, h *tar.Header) error {
	lrel, err := Name(h.Linkname)
	if err != nil || lrel == "." {
		return fmt.Errorf("hardlink to %q outside the root", h.Linkname)
	}
	ldir, err := u.parentPath(lrel)
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", h.Linkname, err)
	}
	target, err := u.openDir(ldir, lrel, false)
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", h.Linkname, err)
	}
	defer target.Close()
	// No AT_SYMLINK_FOLLOW: a link at the target's name is linked itself, never what it names.
	if err := unix.Linkat(int(target.Fd()), path.Base(lrel), pfd, name, 0); err != nil {
		return fmt.Errorf("hardlink to %q: %w", h.Linkname, err)
	}
	return nil // metadata is shared with the link target
}

// chmodAt sets the mode of name in dirfd, something other than a symlink just made there.
func chmodAt(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP {
		return err
	}
	// Before Linux 6.6 (no fchmodat2), or a symlink: chmod follows a link, so make sure there is none.
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return unix.Fchmodat(dirfd, name, mode, 0)
}

func (u *untarrer) owner(dirfd int, name string, h *tar.Header) error {
	if !u.opts.Chown {
		return nil
	}
	if err := unix.Fchownat(dirfd, name, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: name, Err: err}
	}
	return nil
}

// xattrs yields the extended attributes h carries.
func xattrs(h *tar.Header) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, k := range slices.Sorted(maps.Keys(h.PAXRecords)) {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && !yield(name, h.PAXRecords[k]) {
				return
			}
		}
	}
}

// xattrsFd sets h's extended attributes on the open file fd.
func (u *untarrer) xattrsFd(fd int, h *tar.Header) error {
	if !u.opts.Xattrs {
		return nil
	}
	for name, v := range xattrs(h) {
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

// dirXattrs sets h's extended attributes on the directory name in dirfd.
func (u *untarrer) dirXattrs(dirfd int, name string, h *tar.Header) error {
	if !u.opts.Xattrs || len(h.PAXRecords) == 0 {
		return nil
	}
	fd, err := openBeneath(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return &os.PathError{Op: "openat2", Path: name, Err: err}
	}
	defer unix.Close(fd)
	return u.xattrsFd(fd, h)
}

// xattrsAt sets h's extended attributes on name in dirfd, which cannot be opened for it (a
// symlink or a device). The path goes through the directory's descriptor in /proc and does not
// follow name itself.
func (u *untarrer) xattrsAt(dirfd int, name string, h *tar.Header) error {
	if !u.opts.Xattrs {
		return nil
	}
	for attr, v := range xattrs(h) {
		p := fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name)
		if err := unix.Lsetxattr(p, attr, []byte(v), 0); err != nil {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}

func (u *untarrer) times(h *tar.Header) []unix.Timespec {
	at := h.ModTime
	if u.opts.AccessTimes && !h.AccessTime.IsZero() {
		at = h.AccessTime
	}
	return []unix.Timespec{timespec(at), timespec(h.ModTime)}
}

func (u *untarrer) setTimes(dirfd int, name string, h *tar.Header) error {
	if err := unix.UtimesNanoAt(dirfd, name, u.times(h), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: name, Err: err}
	}
	return nil
}

// finish sets the directories' modes and times, deepest first, each opened from root again
// without following a link.
func (u *untarrer) finish() error {
	depth := func(rel string) int {
		if rel == "." {
			return -1
		}
		return strings.Count(rel, "/")
	}
	rels := slices.SortedFunc(maps.Keys(u.dirs), func(a, b string) int {
		return cmp.Or(cmp.Compare(depth(b), depth(a)), cmp.Compare(a, b))
	})
	for _, rel := range rels {
		h := u.dirs[rel]
		if err := u.dirMeta(rel, h); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
	return nil
}

func (u *untarrer) dirMeta(rel string, h *tar.Header) error {
	fd, err := openBeneath(int(u.root.Fd()), rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return &os.PathError{Op: "openat2", Path: rel, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, mode(h)); err != nil {
		return &os.PathError{Op: "chmod", Path: rel, Err: err}
	}
	if err := unix.UtimesNanoAt(fd, "", u.times(h), unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "utimes", Path: rel, Err: err}
	}
	return nil
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
