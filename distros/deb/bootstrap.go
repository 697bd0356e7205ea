package deb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// BootstrapOpts tunes [Bootstrap].
type BootstrapOpts struct {
	// UsrMerge makes /bin, /sbin, /lib and /lib64 links into /usr before anything is extracted,
	// as debootstrap does by default and mmdebstrap's merged-usr hook does.
	UsrMerge bool
}

// Bootstrap is the in-build stage-1 helper: it lays the essential packages' files into an empty
// root and creates the empty dpkg database that `dpkg --install` in stage 2 fills.
func Bootstrap(ctx context.Context, root string, debs []string, opts BootstrapOpts) error {
	if opts.UsrMerge {
		for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
			if err := os.MkdirAll(filepath.Join(root, "usr", d), 0o755); err != nil {
				return err
			}
			link := filepath.Join(root, d)
			if _, err := os.Lstat(link); err == nil {
				continue
			}
			if err := os.Symlink("usr/"+d, link); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			return err
		}
	}
	for _, d := range debs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := Extract(ctx, d, root); err != nil {
			return fmt.Errorf("extracting %s: %w", filepath.Base(d), err)
		}
	}
	return nil
}
