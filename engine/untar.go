package engine

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

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
	// Cancelling the solve reaches the unpack through the pipe solveDir closes.
	opts := rootfs.UntarOpts{ParentLinks: rootfs.Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true}
	if err := rootfs.Untar(context.Background(), r, tmp, opts); err != nil {
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
