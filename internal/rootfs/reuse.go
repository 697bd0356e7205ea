package rootfs

// Reusing a previous tree's files (UntarOpts.Reuse): a regular file of the stream whose header
// matches the file at the same path of the previous tree — size, mode, owner, mtime, extended
// attributes — and whose bytes match too is hard-linked from there instead of written again. The
// previous tree is opened the way root is, beneath its root with no link followed anywhere, and
// only files whose single name is that path (link count 1) are taken, each inode once: a file
// linked from elsewhere (by a user, or by another name of the previous tree) is never brought
// into the new tree. The previous tree is only read; its atimes are not touched (O_NOATIME).

import (
	"archive/tar"
	"bytes"
	"io"
	"maps"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// reuser is the previous tree of one Untar.
type reuser struct {
	root  *os.File        // O_PATH, the previous tree's root
	taken map[uint64]bool // inodes linked into the new tree already
	// The buffers every comparison reads into: allocated once, since a rootfs has tens of
	// thousands of files and zeroing fresh buffers for each cost more than the reading.
	stream, old, xattr []byte
}

func openReuse(path string) (*reuser, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &reuser{root: os.NewFile(uintptr(fd), path), taken: map[uint64]bool{},
		stream: make([]byte, 128<<10), old: make([]byte, 128<<10), xattr: make([]byte, 64<<10)}, nil
}

func (r *reuser) close() {
	if r != nil {
		r.root.Close()
	}
}

// candidate opens the previous tree's file at rel when its header matches h; nil when there is
// none that could be reused.
func (r *reuser) candidate(rel string, h *tar.Header, chown bool) *os.File {
	fd, err := openBeneath(int(r.root.Fd()), rel, unix.O_RDONLY|unix.O_NOATIME)
	if err == unix.EPERM {
		fd, err = openBeneath(int(r.root.Fd()), rel, unix.O_RDONLY)
	}
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), rel)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || !sameHeader(&st, h, chown) || r.taken[st.Ino] || !sameXattrs(fd, h, r.xattr) {
		f.Close()
		return nil
	}
	return f
}

// sameHeader reports whether st is a regular file with one name and h's size, mode, owner (when
// chown) and mtime.
func sameHeader(st *unix.Stat_t, h *tar.Header, chown bool) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 &&
		st.Size == h.Size && st.Mode&0o7777 == mode(h) &&
		(!chown || int(st.Uid) == h.Uid && int(st.Gid) == h.Gid) &&
		st.Mtim.Nano() == h.ModTime.UnixNano()
}

// sameXattrs reports whether the file fd has exactly the extended attributes h carries (buf is
// where their values are read).
func sameXattrs(fd int, h *tar.Header, buf []byte) bool {
	want := map[string]string{}
	for k, v := range xattrs(h) {
		want[k] = v
	}
	size, err := unix.Flistxattr(fd, nil)
	if err != nil {
		return false
	}
	if size == 0 {
		return len(want) == 0
	}
	got := map[string]string{}
	{
		buf := make([]byte, size)
		n, err := unix.Flistxattr(fd, buf)
		if err != nil {
			return false
		}
		for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			m, err := unix.Fgetxattr(fd, name, buf)
			if err != nil {
				return false
			}
			got[name] = string(buf[:m])
		}
	}
	return maps.Equal(want, got)
}

// sameBytes reads body and old side by side, into a and b. It returns true when they hold the
// same bytes; otherwise the reader of the entry's whole content from the bytes read so far on
// (the prefix both share, read again from old, then a copy of what body gave that differed, then
// the rest of body).
func sameBytes(old *os.File, body io.Reader, size int64, a, b []byte) (bool, io.Reader, error) {
	var off int64
	for off < size {
		n := int(min(int64(len(a)), size-off))
		got, err := io.ReadFull(body, a[:n])
		if err != nil {
			return false, nil, err
		}
		if _, err := io.ReadFull(io.NewSectionReader(old, off, int64(n)), b[:n]); err != nil || !bytes.Equal(a[:got], b[:n]) {
			rest := io.MultiReader(io.NewSectionReader(old, 0, off), bytes.NewReader(bytes.Clone(a[:got])), body)
			return false, rest, nil
		}
		off += int64(n)
	}
	return true, nil, nil
}

// reuseFile lays down the regular file rel (name in the directory pfd) from the previous tree's
// file at prel when header and bytes match, and reports whether it did; when it did not, the
// reader returned is what to write the entry from (the bytes compared so far included), valid
// until the caller calls done.
func (u *untarrer) reuseFile(pfd int, name, prel string, h *tar.Header, body io.Reader) (reused bool, rest io.Reader, done func(), err error) {
	old := u.reuse.candidate(prel, h, u.opts.Chown)
	if old == nil {
		return false, body, func() {}, nil
	}
	reused, rest, err = u.reuseFrom(old, pfd, name, h, body)
	return reused, rest, func() { old.Close() }, err
}

func (u *untarrer) reuseFrom(old *os.File, pfd int, name string, h *tar.Header, body io.Reader) (bool, io.Reader, error) {
	same, rest, err := sameBytes(old, body, h.Size, u.reuse.stream, u.reuse.old)
	if err != nil || !same {
		return false, rest, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(old.Fd()), &st); err != nil {
		return false, io.NewSectionReader(old, 0, h.Size), nil
	}
	// Linked through the descriptor compared, so the inode taken is the one whose bytes were read.
	err = unix.Linkat(int(old.Fd()), "", pfd, name, unix.AT_EMPTY_PATH)
	if err != nil {
		// Another filesystem (EXDEV), or no CAP_DAC_READ_SEARCH: written from the old file,
		// whose bytes are the entry's.
		return false, io.NewSectionReader(old, 0, h.Size), nil
	}
	u.reuse.taken[st.Ino] = true
	if u.opts.Stats != nil {
		u.opts.Stats.Reused++
	}
	if at := u.times(h)[0]; st.Atim != at {
		return true, nil, u.setTimes(pfd, name, h)
	}
	return true, nil, nil
}
