package rootfs

import (
	"errors"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// aclXattrs are the extended attributes that hold POSIX ACLs.
var aclXattrs = []string{"system.posix_acl_access", "system.posix_acl_default"}

// StripACLs removes the POSIX ACLs of every entry under root, never following a symbolic link.
// Image layers cannot carry them (containerd's layer writer keeps only security.capability), so
// a rootfs that has them would differ between its tar and its image, and between a fresh build
// and one from an imported cache; in a Debian base only systemd-tmpfiles sets one (on
// /var/log/journal), and it sets it again at boot.
func StripACLs(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		for _, x := range aclXattrs {
			if err := unix.Lremovexattr(p, x); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP) {
				return &fs.PathError{Op: "removexattr " + x, Path: p, Err: err}
			}
		}
		return nil
	})
}
