package llb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/schema"
)

// DefaultHelperLocal is the [bkllb.Local] name used when [Opts.HelperLocal] is empty.
// The local must hold the static rootfsc binary at /rootfsc.
const DefaultHelperLocal = "rootfsc-helper"

// Paths inside the build containers. They are part of the contract with the
// helper command (rootfsc internal extract) and with the engine.
const (
	// HelperDir is where the helper local is mounted in stage 1; the binary is HelperDir+"/rootfsc".
	HelperDir = "/.rootfsc"
	// ExtractDebsDir is where the .debs are mounted in stage 1.
	ExtractDebsDir = "/debs"
	// TargetDir is the stage-1 mount that becomes the new root.
	TargetDir = "/target"
	// InstallDebsDir is where the .debs are mounted in stage 2, inside the new root.
	InstallDebsDir = "/tmp/rootfsc-debs"
)

const progressGroupID = "base"

// Input is what [Lower] turns into LLB.
type Input struct {
	// Lock pins the distro packages of the base layer; nil in overlay mode
	// (a manifest without distro), which lowers only the Kata layers.
	Lock *lock.Lock
	// Mirrors maps a suite name to its base URI ("http://HOST/debian");
	// a package's URL is base + "/" + Filename.
	Mirrors map[string]string
	// Manifest adds the Kata layers (agent, modules, policy, glue, files);
	// nil lowers the base alone.
	Manifest *schema.Manifest
	// DefaultPackages is the release's default set, recorded in osbuilder.yaml.
	DefaultPackages []string
	// BuiltinPolicy is the text of Manifest.Policy.Builtin.
	BuiltinPolicy []byte
	// Source, when set, gives every op the position of the manifest field it comes from.
	Source *Source
}

// Opts tunes [Lower].
type Opts struct {
	// HelperLocal is the [bkllb.Local] name holding the static rootfsc binary
	// at /rootfsc; default [DefaultHelperLocal].
	HelperLocal string
	// Platform the definition is marshalled for; the zero value means
	// linux plus the lock's architecture (linux/amd64 if it has none).
	Platform ocispecs.Platform
	// BuilderVersion is the rootfsc version recorded in osbuilder.yaml.
	BuilderVersion string
	// SourceDateEpoch is the time of every file the Kata layers write when
	// there is no lock (overlay mode); with a lock, the lock's epoch is used.
	SourceDateEpoch int64
}

// Result is the lowered rootfs.
type Result struct {
	State bkllb.State
	Def   *bkllb.Definition
	// Locals are the client folders the build reads, by [bkllb.Local] name,
	// besides the helper; the caller resolves relative Dirs against the
	// manifest's folder.
	Locals map[string]Local
}

// Lower builds the rootfs graph. The base install has two stages: stage 1
// runs the helper over scratch to extract the essential packages into a
// merged-/usr tree, and stage 2 runs dpkg inside that tree to install every
// package with its maintainer scripts, without network. The Kata layers
// (agent, kernel modules, policy, glue, extra files) are separate states
// merged over it, so each is cached on its own, and a last step checks what
// osbuilder's check_rootfs checks.
func Lower(ctx context.Context, in Input, opts Opts) (*Result, error) {
	if in.Lock == nil && in.Manifest == nil {
		return nil, errors.New("lowering: no lock and no manifest")
	}
	helperName := opts.HelperLocal
	if helperName == "" {
		helperName = DefaultHelperLocal
	}
	platform := opts.Platform
	arch := ""
	if in.Lock != nil {
		arch = in.Lock.Arch
	} else if in.Manifest != nil {
		arch = in.Manifest.Arch
	}
	if platform.OS == "" && platform.Architecture == "" {
		platform = debianPlatform(arch)
	}
	if platform.OS == "" {
		platform.OS = "linux"
	}
	helper := bkllb.Local(helperName,
		bkllb.IncludePatterns([]string{"rootfsc"}),
		bkllb.SharedKeyHint(helperName),
		// A fixed ID keeps the definition (and its cache keys) identical from run to run.
		bkllb.LocalUniqueID("rootfsc:"+helperName),
		bkllb.WithCustomName("helper rootfsc"),
	)

	loc := newLocator(in.Source)
	var st bkllb.State
	var base *bkllb.State
	if in.Lock != nil {
		debs, err := plan(in)
		if err != nil {
			return nil, fmt.Errorf("lowering %s/%s: %w", in.Lock.Distro, in.Lock.Release, err)
		}
		pg := loc.at("release", bkllb.ProgressGroup(progressGroupID, "base "+in.Lock.Distro+" "+in.Lock.Release, false))
		debDir := fetch(debs, pg)
		st = extract(debDir, helper, debs, pg)
		st = install(st, debDir, debs, in.Lock.SourceDateEpoch, pg)
		base = &st
	}
	locals := map[string]Local{}
	if in.Manifest != nil {
		epoch := opts.SourceDateEpoch
		if in.Lock != nil {
			epoch = in.Lock.SourceDateEpoch
		}
		l := &layers{locator: loc, m: in.Manifest, in: in, opts: opts, epoch: time.Unix(epoch, 0).UTC(),
			base: base, helper: helper, locals: locals}
		l.empty = bkllb.Scratch().File(bkllb.Mkdir("/", 0o755, bkllb.WithParents(true), l.root(), l.created()),
			bkllb.WithCustomName("rootfs: empty root"))
		var err error
		if st, err = l.rootfs(); err != nil {
			return nil, fmt.Errorf("lowering: %w", err)
		}
	}

	def, err := st.Marshal(ctx, bkllb.Platform(platform))
	if err != nil {
		return nil, fmt.Errorf("marshalling the rootfs: %w", err)
	}
	return &Result{State: st, Def: def, Locals: locals}, nil
}

// deb is one package as it appears in the debs directory.
type deb struct {
	pkg  lock.Package
	url  string
	file string // base name in the debs directory
}

// plan validates the lock and returns its packages, sorted by file name, with
// their URLs and file names.
func plan(in Input) ([]deb, error) {
	if len(in.Lock.Packages) == 0 {
		return nil, errors.New("lock has no packages")
	}
	debs := make([]deb, 0, len(in.Lock.Packages))
	names := map[string]bool{}
	essential := 0
	for _, p := range in.Lock.Packages {
		if names[p.Name] {
			return nil, fmt.Errorf("package %s: listed twice", p.Name)
		}
		names[p.Name] = true
		base, ok := in.Mirrors[p.Suite]
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
		if p.Essential {
			essential++
		}
		debs = append(debs, deb{pkg: p, url: strings.TrimSuffix(base, "/") + "/" + p.Filename, file: file})
	}
	if essential == 0 {
		return nil, errors.New("lock has no essential packages")
	}
	sort.Slice(debs, func(i, j int) bool { return debs[i].file < debs[j].file })
	return debs, nil
}

// fetch downloads every package, checked against its sha256, into one directory.
func fetch(debs []deb, pg bkllb.ConstraintsOpt) bkllb.State {
	files := make([]bkllb.State, 0, len(debs))
	for _, d := range debs {
		files = append(files, bkllb.HTTP(d.url,
			bkllb.Checksum(digest.Digest("sha256:"+d.pkg.SHA256)),
			bkllb.Filename(d.file),
			bkllb.WithCustomName("fetch "+d.pkg.Name+" "+d.pkg.Version),
			pg,
		))
	}
	return bkllb.Merge(files, bkllb.WithCustomName(fmt.Sprintf("debs: %d packages", len(debs))), pg)
}

// extract is stage 1: the static helper, over scratch, unpacks the essential
// packages into TargetDir after making the merged-/usr links.
func extract(debDir, helper bkllb.State, debs []deb, pg bkllb.ConstraintsOpt) bkllb.State {
	args := []string{HelperDir + "/rootfsc", "internal", "extract", "--root", TargetDir, "--usrmerge"}
	n := 0
	for _, d := range debs {
		if d.pkg.Essential {
			args = append(args, ExtractDebsDir+"/"+d.file)
			n++
		}
	}
	run := bkllb.Scratch().Run(
		bkllb.Args(args),
		bkllb.AddMount(HelperDir, helper, bkllb.Readonly),
		bkllb.AddMount(ExtractDebsDir, debDir, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName(fmt.Sprintf("base: extract %d essential packages", n)),
		pg,
	)
	return run.AddMount(TargetDir, bkllb.Scratch())
}

// install is stage 2: dpkg, inside the new root, installs the essential
// packages and then the rest, the way debootstrap and mmdebstrap do.
func install(root, debDir bkllb.State, debs []deb, sourceDateEpoch int64, pg bkllb.ConstraintsOpt) bkllb.State {
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

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
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

// debianPlatform maps a Debian architecture name to an OCI platform.
func debianPlatform(arch string) ocispecs.Platform {
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	switch arch {
	case "arm64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v5"
	case "i386":
		p.Architecture = "386"
	case "ppc64el":
		p.Architecture = "ppc64le"
	case "s390x", "riscv64":
		p.Architecture = arch
	case "mips64el":
		p.Architecture = "mips64le"
	}
	return p
}
