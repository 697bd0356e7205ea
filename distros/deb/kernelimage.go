package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/rootfsc/rootfsc/distros/deb/unpack"
	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// KernelImage implements [family.Family]: the kernel package's boot/vmlinuz-RELEASE, from a
// download of the package checked by size and sha256 before rootfsc's own extractor reads it,
// kept in dir/SHA256 for the next boot with the package's lib/modules/RELEASE beside boot/ (the
// modules `rootfsc boot` loads in front of a disk image).
func (Family) KernelImage(ctx context.Context, r family.Request, lk *lock.Lock, dir string) (string, error) {
	k := lk.Kernel
	if k == nil {
		return "", errors.New("the lock pins no kernel package (modules: package: \"linux-image-amd64\" pins one; or give --kernel)")
	}
	if !isSHA256(k.SHA256) || !valid(k.Release, "+._-") || k.Release == "." || k.Release == ".." {
		return "", fmt.Errorf("lock: kernel %s: bad sha256 %q or release %q", k.Name, k.SHA256, k.Release)
	}
	// "-m": the tree with the modules (an older cache kept only boot/).
	root := filepath.Join(dir, k.SHA256+"-m")
	vmlinuz := filepath.Join(root, "boot", "vmlinuz-"+k.Release)
	if _, err := os.Stat(vmlinuz); err == nil {
		return vmlinuz, nil
	}
	u := packageURL(r, &k.Package)
	if u == "" {
		return "", fmt.Errorf("kernel package %s: no mirror for suite %q", k.Name, k.Suite)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".kernel-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	deb := filepath.Join(tmp, "kernel.deb")
	if err := download(ctx, u, deb, k); err != nil {
		return "", fmt.Errorf("kernel package %s %s: %w", k.Name, k.Version, err)
	}
	tree := filepath.Join(tmp, "root")
	if err := unpack.Bootstrap(ctx, tree, []string{deb}, unpack.BootstrapOpts{Only: []string{"boot/", "lib/modules/", "usr/lib/modules/"}}); err != nil {
		return "", fmt.Errorf("kernel package %s %s: %w", k.Name, k.Version, err)
	}
	if _, err := os.Stat(filepath.Join(tree, "boot", "vmlinuz-"+k.Release)); err != nil {
		return "", fmt.Errorf("kernel package %s %s has no boot/vmlinuz-%s", k.Name, k.Version, k.Release)
	}
	// A merged-/usr package (trixie's) has its modules under usr/lib: one path for the boot.
	if _, err := os.Stat(filepath.Join(tree, "lib", "modules")); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(tree, "usr", "lib", "modules")); err == nil {
			if err := os.MkdirAll(filepath.Join(tree, "lib"), 0o755); err != nil {
				return "", err
			}
			if err := os.Symlink("../usr/lib/modules", filepath.Join(tree, "lib", "modules")); err != nil {
				return "", err
			}
		}
	}
	if err := os.Rename(tree, root); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Stat(vmlinuz); serr != nil { // another boot may have put it there first
			return "", err
		}
	}
	return vmlinuz, nil
}

// download writes the package at u to path, refusing more than its locked size and other bytes.
func download(ctx context.Context, u, path string, p *lock.Kernel) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("mirror %s: %w", hostOf(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mirror %s: GET %s: %s", hostOf(u), u, resp.Status)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, p.Size+1))
	if err != nil {
		return fmt.Errorf("mirror %s: GET %s: %w", hostOf(u), u, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != p.Size || got != p.SHA256 {
		return fmt.Errorf("the mirror's bytes (%d, sha256 %s) are not the lock's (%d, sha256 %s): %s", n, got, p.Size, p.SHA256, u)
	}
	return f.Close()
}
