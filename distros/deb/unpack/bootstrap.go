package unpack

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// BootstrapOpts tunes [Bootstrap].
type BootstrapOpts struct {
	// UsrMerge makes /bin, /sbin, /lib and /lib64 links into /usr before anything is extracted,
	// as debootstrap does by default and mmdebstrap's merged-usr hook does.
	UsrMerge bool
	// Only, when set, extracts just the entries at or under these paths inside the packages, like
	// "lib/modules/" and "usr/lib/modules/" for a kernel package's modules, with the directories
	// above them; nothing else is made (no dpkg database, etc or tmp). Existing symlinks in root,
	// such as /lib -> usr/lib, are followed. A package with nothing under any of the paths is an
	// error. The merged-/usr links are still made when UsrMerge is set too.
	Only []string
}

// Bootstrap is the in-build stage-1 helper: it lays the essential packages' files into an empty
// root and creates the empty dpkg database that `dpkg --install` in stage 2 fills. With
// [BootstrapOpts.Only] it lays down only part of each package and nothing else.
func Bootstrap(ctx context.Context, root string, debs []string, opts BootstrapOpts) error {
	var only []string
	for _, p := range opts.Only {
		c, err := cleanPrefix(p)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		only = append(only, c)
	}
	// The tree is written through os.Root, which never leaves root, link or no link.
	// The root itself may be new (a folder the caller names); everything in it is made
	// through r, never by path.
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer r.Close()
	if opts.UsrMerge {
		for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
			if err := r.MkdirAll(path.Join("usr", d), 0o755); err != nil {
				return err
			}
			if _, err := r.Lstat(d); err == nil {
				continue
			}
			if err := r.Symlink("usr/"+d, d); err != nil {
				return err
			}
		}
	}
	if len(only) > 0 {
		return extractOnly(ctx, root, debs, only)
	}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "tmp"} {
		if err := r.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := r.Chmod("tmp", 0o777|os.ModeSticky); err != nil {
		return err
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := r.WriteFile(f, nil, 0o644); err != nil {
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

// extractOnly extracts from each of debs the entries under the cleaned prefixes only.
func extractOnly(ctx context.Context, root string, debs, prefixes []string) error {
	for _, d := range debs {
		if err := ctx.Err(); err != nil {
			return err
		}
		found := false
		keep := func(rel string) bool {
			for _, p := range prefixes {
				if rel == p || strings.HasPrefix(rel, p+"/") {
					found = found || rel != p
					return true
				}
			}
			return false
		}
		if err := extract(ctx, d, root, keep); err != nil {
			return fmt.Errorf("extracting %s: %w", filepath.Base(d), err)
		}
		if !found {
			return fmt.Errorf("extracting %s: nothing under %s", filepath.Base(d), strings.Join(prefixes, ", "))
		}
	}
	return nil
}

// cleanPrefix turns a path inside a package ("./lib/modules/", "/lib/modules") into the form
// entries are matched in ("lib/modules").
func cleanPrefix(p string) (string, error) {
	c := path.Clean("/" + p)
	if c == "/" || slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("bad path prefix %q: want a path inside the package, like lib/modules/", p)
	}
	return c[1:], nil
}
