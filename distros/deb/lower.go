package deb

// Lowering the locked packages into the base layer: stage 1 runs the static helper over scratch
// to extract the essential packages into a merged-/usr tree; stage 2 runs dpkg inside that tree
// to install every package with its maintainer scripts, without network; the result is squashed
// into one layer, so an OCI image of the rootfs has one layer for the base.

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	bkllb "github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Paths inside the build containers; part of the contract with the helper (rootfsc internal extract).
const (
	// ExtractDebsDir is where the .debs are mounted in stage 1.
	ExtractDebsDir = "/debs"
	// TargetDir is the stage-1 mount that becomes the new root.
	TargetDir = "/target"
	// InstallDebsDir is where the .debs are mounted in stage 2, inside the new root.
	InstallDebsDir = "/tmp/rootfsc-debs"
	// kernelDir is where a kernel package is mounted to extract its modules.
	kernelDir = "/.rootfsc-kernel"
)

// Lower implements [family.Family]: fetch every package by its sha256, stage 1, stage 2, one
// layer; and, with a kernel package in the lock, its lib/modules extracted over the base.
func (Family) Lower(r family.Request, lk *lock.Lock, opts family.LowerOpts) (*family.Base, error) {
	req, err := request(r, true)
	if err != nil {
		return nil, err
	}
	mirrors := map[string]string{}
	for _, s := range req.Suites {
		mirrors[s.Name] = s.URI
	}
	debs, err := plan(lk, mirrors)
	if err != nil {
		return nil, fmt.Errorf("lowering %s/%s: %w", lk.Distro, lk.Release, err)
	}
	if opts.Base == nil {
		opts.Base = bkllb.ProgressGroup("base", "base "+lk.Distro+" "+lk.Release, false)
	}
	if opts.Kernel == nil {
		opts.Kernel = bkllb.ProgressGroup("modules", "kernel modules", false)
	}
	pg := opts.Base
	debDir := fetch(debs, opts.Attempt, pg)
	st := extractEssential(debDir, opts.Helper, debs, pg)
	st = install(st, debDir, debs, lk.SourceDateEpoch, pg)
	// Image layers cannot carry POSIX ACLs (containerd's layer writer keeps only
	// security.capability), so they go here, and the tar, dir and image outputs and a build from
	// an imported cache all hold the same tree (systemd-tmpfiles sets the journal's again at boot).
	st = bkllb.Scratch().Run(
		bkllb.Args([]string{family.HelperBin, "strip-acls", "--root", TargetDir}),
		bkllb.AddMount(family.HelperDir, opts.Helper, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName("base: drop POSIX ACLs"),
		pg,
	).AddMount(TargetDir, st)
	// Stage 1, stage 2 and the removal of the mount point are three layers; one copy makes them
	// one, so the base is one layer of an image (owners, modes, xattrs, hard links and times
	// are kept by BuildKit's copy).
	st = bkllb.Scratch().File(bkllb.Copy(st, "/", "/", &bkllb.CopyInfo{CopyDirContentsOnly: true}),
		bkllb.WithCustomName("base: one layer"), pg)
	base := &family.Base{State: st, Downloads: debDir}
	for _, d := range debs {
		base.DownloadBytes += d.pkg.Size
	}
	if opts.Tools {
		tools, files, size, err := toolsTree(lk, mirrors, opts)
		if err != nil {
			return nil, err
		}
		base.Tools = &tools
		base.Downloads = bkllb.Merge([]bkllb.State{base.Downloads, files}, bkllb.WithCustomName("downloads"), pg)
		base.DownloadBytes += size
	}
	if r.Kernel != "" {
		k, deb, err := kernelTree(st, lk, mirrors, opts)
		if err != nil {
			return nil, err
		}
		base.Kernel = k
		base.Downloads = bkllb.Merge([]bkllb.State{base.Downloads, deb}, bkllb.WithCustomName("downloads"), pg)
		base.DownloadBytes += lk.Kernel.Size
	}
	return base, nil
}

// toolsTree is the tools rootfs: the lock's tool packages extracted by the helper into a
// merged-/usr tree over scratch, with no maintainer script run (mke2fs, mkfs.erofs and
// veritysetup need their libraries, nothing configured); and the packages' download.
func toolsTree(lk *lock.Lock, mirrors map[string]string, opts family.LowerOpts) (bkllb.State, bkllb.State, int64, error) {
	if len(lk.Tools) == 0 {
		return bkllb.State{}, bkllb.State{}, 0, errors.New("the lock pins no disk image tools (the distro defines none, or the lock is older: run rootfsc lock)")
	}
	debs, err := packageFiles(lk.Tools, mirrors)
	if err != nil {
		return bkllb.State{}, bkllb.State{}, 0, fmt.Errorf("disk image tools: %w", err)
	}
	pg := bkllb.ProgressGroup("tools", "disk image tools", false)
	args := []string{family.HelperBin, "extract", "--root", TargetDir, "--usrmerge"}
	var size int64
	for _, d := range debs {
		args = append(args, ExtractDebsDir+"/"+d.file)
		size += d.pkg.Size
	}
	dir := fetch(debs, opts.Attempt, pg)
	tree := bkllb.Scratch().Run(
		bkllb.Args(args),
		bkllb.AddMount(family.HelperDir, opts.Helper, bkllb.Readonly),
		bkllb.AddMount(ExtractDebsDir, dir, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName(fmt.Sprintf("tools: extract %d packages", len(debs))),
		pg,
	).AddMount(TargetDir, bkllb.Scratch())
	return tree, dir, size, nil
}

// kernelTree extracts the lock's kernel package's lib/modules over the base with the helper; it
// returns the tree and the package's download.
func kernelTree(base bkllb.State, lk *lock.Lock, mirrors map[string]string, opts family.LowerOpts) (*family.Kernel, bkllb.State, error) {
	k := lk.Kernel
	if k == nil {
		return nil, bkllb.State{}, errors.New("the lock pins no kernel package (run rootfsc lock)")
	}
	mirror, ok := mirrors[k.Suite]
	if !ok || mirror == "" {
		return nil, bkllb.State{}, fmt.Errorf("kernel %s: no mirror for suite %q", k.Name, k.Suite)
	}
	if !isSHA256(k.SHA256) || !valid(k.Name, "+.-") || k.Filename == "" || strings.HasPrefix(k.Filename, "/") || strings.Contains(k.Filename, "..") {
		return nil, bkllb.State{}, fmt.Errorf("lock: kernel %s: bad filename %q or sha256 %q", k.Name, k.Filename, k.SHA256)
	}
	pg := opts.Kernel
	debFile := k.Name + ".deb"
	deb := bkllb.HTTP(strings.TrimSuffix(mirror, "/")+"/"+k.Filename,
		bkllb.Checksum(digest.Digest("sha256:"+k.SHA256)),
		attemptHeader(opts.Attempt),
		bkllb.Filename(debFile),
		bkllb.WithCustomName("fetch "+k.Name+" "+k.Version),
		pg,
	)
	run := base.Run(
		bkllb.Args([]string{family.HelperBin, "extract", "--root", "/",
			"--only", "lib/modules/", "--only", "usr/lib/modules/", kernelDir + "/" + debFile}),
		bkllb.AddMount(family.HelperDir, opts.Helper, bkllb.Readonly),
		bkllb.AddMount(kernelDir, deb, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName("modules: extract lib/modules of "+k.Name+" "+k.Version),
		pg,
	).Root()
	// The mount points are not part of the rootfs.
	tree := run.File(bkllb.Rm(family.HelperDir, bkllb.WithAllowNotFound(true)).Rm(kernelDir, bkllb.WithAllowNotFound(true)),
		bkllb.WithCustomName("modules: remove mount points"), pg)
	return &family.Kernel{Tree: tree, Release: k.Release}, deb, nil
}

// attemptHeader is what a download attempt after the first changes: BuildKit merges an op with
// an earlier one of the same cache key, failed or not, for the rest of the build, and the
// User-Agent is part of an HTTP source's cache key. What the steps over the downloads see is the
// same files (a read-only mount's cache key is its content), so they stay cached.
func attemptHeader(attempt int) bkllb.HTTPOption {
	if attempt <= 1 {
		return firstAttempt{}
	}
	return bkllb.Header(bkllb.HTTPHeader{UserAgent: fmt.Sprintf("rootfsc (download attempt %d)", attempt)})
}

// firstAttempt leaves an HTTP source as it is.
type firstAttempt struct{}

func (firstAttempt) SetHTTPOption(*bkllb.HTTPInfo) {}

// deb is one package as it appears in the debs directory.
type debFile struct {
	pkg  lock.Package
	url  string
	file string // base name in the debs directory
}

// plan validates the lock and returns its packages, sorted by file name, with
// their URLs and file names.
func plan(lk *lock.Lock, mirrors map[string]string) ([]debFile, error) {
	if len(lk.Packages) == 0 {
		return nil, errors.New("lock has no packages")
	}
	debs, err := packageFiles(lk.Packages, mirrors)
	if err != nil {
		return nil, err
	}
	essential := 0
	for _, d := range debs {
		if d.pkg.Essential {
			essential++
		}
	}
	if essential == 0 {
		return nil, errors.New("lock has no essential packages")
	}
	return debs, nil
}

// packageFiles validates locked packages and returns them sorted by file name, with their URLs
// and file names.
func packageFiles(pkgs []lock.Package, mirrors map[string]string) ([]debFile, error) {
	debs := make([]debFile, 0, len(pkgs))
	names := map[string]bool{}
	for _, p := range pkgs {
		if names[p.Name] {
			return nil, fmt.Errorf("package %s: listed twice", p.Name)
		}
		names[p.Name] = true
		base, ok := mirrors[p.Suite]
		if !ok || base == "" {
			return nil, fmt.Errorf("package %s: no mirror for suite %q", p.Name, p.Suite)
		}
		if p.Filename == "" || strings.HasPrefix(p.Filename, "/") || strings.Contains(p.Filename, "..") {
			return nil, fmt.Errorf("package %s: bad filename %q", p.Name, p.Filename)
		}
		if !isSHA256(p.SHA256) {
			return nil, fmt.Errorf("package %s: bad sha256 %q", p.Name, p.SHA256)
		}
		if !valid(p.Name, "+.-") || !valid(p.Version, "+.~:-") || !valid(p.Architecture, "-") {
			return nil, fmt.Errorf("package %q: bad name, version %q or architecture %q", p.Name, p.Version, p.Architecture)
		}
		// Debian's pool naming; unique because names are, and safe as a shell word.
		file := p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Architecture + ".deb"
		debs = append(debs, debFile{pkg: p, url: strings.TrimSuffix(base, "/") + "/" + p.Filename, file: file})
	}
	sort.Slice(debs, func(i, j int) bool { return debs[i].file < debs[j].file })
	return debs, nil
}

// fetch downloads every package, checked against its sha256, into one directory.
func fetch(debs []debFile, attempt int, pg bkllb.ConstraintsOpt) bkllb.State {
	files := make([]bkllb.State, 0, len(debs))
	for _, d := range debs {
		files = append(files, bkllb.HTTP(d.url,
			bkllb.Checksum(digest.Digest("sha256:"+d.pkg.SHA256)),
			attemptHeader(attempt),
			bkllb.Filename(d.file),
			bkllb.WithCustomName("fetch "+d.pkg.Name+" "+d.pkg.Version),
			pg,
		))
	}
	return bkllb.Merge(files, bkllb.WithCustomName(fmt.Sprintf("debs: %d packages", len(debs))), pg)
}

// extractEssential is stage 1: the static helper, over scratch, unpacks the essential
// packages into TargetDir after making the merged-/usr links.
func extractEssential(debDir, helper bkllb.State, debs []debFile, pg bkllb.ConstraintsOpt) bkllb.State {
	args := []string{family.HelperBin, "extract", "--root", TargetDir, "--usrmerge"}
	n := 0
	for _, d := range debs {
		if d.pkg.Essential {
			args = append(args, ExtractDebsDir+"/"+d.file)
			n++
		}
	}
	run := bkllb.Scratch().Run(
		bkllb.Args(args),
		bkllb.AddMount(family.HelperDir, helper, bkllb.Readonly),
		bkllb.AddMount(ExtractDebsDir, debDir, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName(fmt.Sprintf("base: extract %d essential packages", n)),
		pg,
	)
	return run.AddMount(TargetDir, bkllb.Scratch())
}

// install is stage 2: dpkg, inside the new root, installs the essential
// packages and then the rest, the way debootstrap and mmdebstrap do.
func install(root, debDir bkllb.State, debs []debFile, sourceDateEpoch int64, pg bkllb.ConstraintsOpt) bkllb.State {
	var essential, rest []string
	for _, d := range debs {
		if d.pkg.Essential {
			essential = append(essential, d.file)
		} else {
			rest = append(rest, d.file)
		}
	}
	st := root.Run(
		bkllb.Args([]string{"/bin/sh", "-c", installScript(essential, rest)}),
		bkllb.AddMount(InstallDebsDir, debDir, bkllb.Readonly),
		bkllb.AddEnv("DEBIAN_FRONTEND", "noninteractive"),
		bkllb.AddEnv("DEBCONF_NONINTERACTIVE_SEEN", "true"),
		bkllb.AddEnv("LC_ALL", "C"),
		bkllb.AddEnv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
		bkllb.AddEnv("SOURCE_DATE_EPOCH", fmt.Sprint(sourceDateEpoch)),
		bkllb.Dir("/"),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName(fmt.Sprintf("base: dpkg --install %d packages", len(debs))),
		pg,
	).Root()
	// The mount point BuildKit made for the debs is not part of the rootfs.
	return st.File(bkllb.Rm(InstallDebsDir, bkllb.WithAllowNotFound(true)),
		bkllb.WithCustomName("base: remove "+InstallDebsDir),
		pg,
	)
}

// installScript is the stage-2 shell script. File names are checked by
// valid, so they need no quoting.
func installScript(essential, rest []string) string {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("set -eu")
	// Services must not start while maintainer scripts run (invoke-rc.d honours policy-rc.d).
	w("mkdir -p /usr/sbin")
	w("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d")
	w("chmod 755 /usr/sbin/policy-rc.d")
	// The helper writes an empty database; make sure dpkg finds one either way.
	w("mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates")
	w("[ -e /var/lib/dpkg/status ] || : > /var/lib/dpkg/status")
	w("[ -e /var/lib/dpkg/available ] || : > /var/lib/dpkg/available")
	w("cd " + InstallDebsDir)
	const dpkg = "dpkg --force-unsafe-io --force-depends --install"
	w(dpkg + " " + strings.Join(essential, " "))
	if len(rest) > 0 {
		w(dpkg + " " + strings.Join(rest, " "))
	}
	w("dpkg --force-unsafe-io --configure -a")
	w("cd /")
	w("rm -f /usr/sbin/policy-rc.d")
	// Files maintainer scripts fill with randomness or the time.
	w("if [ -e /etc/machine-id ]; then : > /etc/machine-id; fi")
	// dbus's postinst writes a random id of its own; dbus reads the machine's through this link.
	w("if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then rm -f /var/lib/dbus/machine-id; ln -s /etc/machine-id /var/lib/dbus/machine-id; fi")
	w("rm -f /var/cache/ldconfig/aux-cache /var/log/dpkg.log /var/log/alternatives.log /var/log/apt/* /var/lib/dpkg/*-old /var/cache/debconf/*-old /etc/*-")
	return b.String()
}

// valid reports whether s is non-empty, starts with an alphanumeric and
// otherwise holds only alphanumerics and the given punctuation, as Debian
// package names, versions and architectures do.
func valid(s, punct string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && strings.ContainsRune(punct, c):
		default:
			return false
		}
	}
	return s != ""
}
