package rootfs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLinks bounds the symlinks followed resolving one path, as the kernel's ELOOP does.
const maxLinks = 40

// Resolve returns the host path of p (slash-separated, taken relative to root) with the symlinks
// on the way followed inside root as if root were "/": absolute link targets start again at root
// and the result never leaves it. Missing elements are taken as directories still to be made. The
// last element is not followed when followLast is false. A link climbing above root is an error.
func Resolve(root, p string, followLast bool) (string, error) {
	cur, err := walk(root, p, followLast, false)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, cur), nil
}

// Lookup resolves p inside root the way the kernel would with root as "/": every element must
// exist, and ".." at the root stays there. It returns the resolved path, "/"-rooted and relative
// to root, with its [fs.FileInfo].
func Lookup(root, p string) (string, fs.FileInfo, error) {
	cur, err := walk(root, p, true, true)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Lstat(filepath.Join(root, cur))
	return cur, fi, err
}

// walk resolves p to a "/"-rooted path relative to root. When exist is set, a missing element is
// the Lstat error and ".." at the root stays there; otherwise missing elements are kept as they are
// and ".." above the root is an error.
func walk(root, p string, followLast, exist bool) (string, error) {
	rest := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	links := 0
	for len(rest) > 0 {
		el := rest[0]
		rest = rest[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if cur == "/" && !exist {
				return "", fmt.Errorf("path %q leaves the root", p)
			}
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, el)
		if len(rest) == 0 && !followLast {
			cur = next
			break
		}
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil && exist {
			return "", err
		}
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", unix.ELOOP // "too many levels of symbolic links", as the kernel says
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, nil
}
