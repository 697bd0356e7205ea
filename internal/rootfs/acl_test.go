package rootfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStripACLs(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "var/log/journal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A minimal ACL (version 2, user/group/other entries) as setfacl writes it.
	acl := []byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 5, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(dir, "system.posix_acl_default", acl, 0); err != nil {
		t.Skipf("this file system takes no ACLs: %v", err)
	}
	if err := unix.Setxattr(dir, "user.keep", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := StripACLs(root); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	if _, err := unix.Getxattr(dir, "system.posix_acl_default", buf); err != unix.ENODATA {
		t.Errorf("the default ACL is still there (%v)", err)
	}
	if n, err := unix.Getxattr(dir, "user.keep", buf); err != nil || string(buf[:n]) != "x" {
		t.Errorf("user.keep = %q, %v; other xattrs must stay", buf[:n], err)
	}
}
