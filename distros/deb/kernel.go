package deb

// Kernel packages are resolved apart from the installed set: the guest needs the modules of the
// kernel it boots, not a kernel to boot itself, and installing linux-image-* would run its
// postinst (initramfs-tools, bootloader hooks) inside the rootfs.

import (
	"fmt"
	"strings"

	"github.com/rootfsc/rootfsc/distros/lock"
)

// kernelPrefix starts the name of every Debian kernel image package, meta or real.
const kernelPrefix = "linux-image-"

// resolveKernel finds the kernel package name in the index and follows meta packages
// (linux-image-amd64 depends on linux-image-6.1.0-28-amd64) to the package that carries the modules.
func resolveKernel(ix *index, name, suites string) (*lock.Kernel, error) {
	r := newResolver(ix)
	var p *pkg
	switch c := r.candidates(rel{Name: name}); {
	case len(c) == 0:
		return nil, fmt.Errorf("unknown kernel package %q in %s", name, suites)
	case c[0].Name == name || len(c) == 1:
		p = c[0]
	default:
		return nil, fmt.Errorf("kernel package %q is virtual with several providers: %s", name, pkgNames(c))
	}
	seen := map[string]bool{}
	for {
		if seen[p.Name] {
			return nil, fmt.Errorf("kernel package %q: meta packages depend on each other in a loop at %s", name, p.Name)
		}
		seen[p.Name] = true
		next, err := metaTarget(r, p)
		if err != nil {
			return nil, fmt.Errorf("kernel package %q: %w", name, err)
		}
		if next == nil {
			break
		}
		p = next
	}
	release, err := kernelRelease(p.Name)
	if err != nil {
		if p.Name != name {
			return nil, fmt.Errorf("kernel package %q leads to %s: %w", name, p.Name, err)
		}
		return nil, fmt.Errorf("kernel package %q: %w", name, err)
	}
	return &lock.Kernel{
		Package: lock.Package{
			Name: p.Name, Version: p.Version, Architecture: p.Architecture, Filename: p.Filename,
			Size: p.Size, SHA256: p.SHA256, Suite: p.Suite,
		},
		Release:   release,
		Requested: name,
	}, nil
}

// metaTarget returns the package a kernel meta package stands for: the first alternative of its
// (pre-)dependencies named linux-image-*. It returns nil for a package that depends on no such
// package, which is then the one that carries the modules.
func metaTarget(r *resolver, p *pkg) (*pkg, error) {
	groups, err := r.deps(p)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		for _, a := range g {
			if !strings.HasPrefix(a.Name, kernelPrefix) {
				continue
			}
			switch c := r.candidates(a); {
			case len(c) == 0:
				return nil, fmt.Errorf("%s %s depends on %s, which no package in the suites satisfies", p.Name, p.Version, a)
			case c[0].Name == a.Name || len(c) == 1:
				return c[0], nil
			default:
				return nil, fmt.Errorf("%s %s depends on virtual package %q with several providers: %s", p.Name, p.Version, a.Name, pkgNames(c))
			}
		}
	}
	return nil, nil
}

// kernelRelease returns the kernel release (the /lib/modules directory name) of a Debian kernel
// image package: its name without "linux-image-", and without "-unsigned", whose package ships the
// same /lib/modules/<release> as its signed twin. Debug-symbol packages (-dbg) carry no modules
// and are refused, as is any name that does not end in a release ("linux-image-amd64-signed-template").
func kernelRelease(name string) (string, error) {
	release, ok := strings.CutPrefix(name, kernelPrefix)
	if !ok {
		return "", fmt.Errorf("%s is not a kernel image package (%s*)", name, kernelPrefix)
	}
	if strings.HasSuffix(release, "-dbg") {
		return "", fmt.Errorf("%s holds debug symbols, not kernel modules; name the kernel image package instead", name)
	}
	release = strings.TrimSuffix(release, "-unsigned")
	if release == "" || release[0] < '0' || release[0] > '9' || strings.ContainsAny(release, "/ ") {
		return "", fmt.Errorf("%s is not a kernel image package: its name does not end in a kernel release like 6.1.0-28-amd64", name)
	}
	return release, nil
}
