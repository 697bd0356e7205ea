package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/engine"
	"github.com/rootfsc/rootfsc/kata"
	rllb "github.com/rootfsc/rootfsc/llb"
)

// helperLocal is the llb.Local that carries the static rootfsc binary into the build.
const helperLocal = "rootfsc-helper"

func runLock(e *env, args []string) error {
	fs := flags("lock")
	mirror := fs.String("mirror", "", "Debian mirror URL (default: the manifest's, $ROOTFSC_MIRROR, the host's apt sources)")
	l, err := parseManifest(e, fs, args)
	if err != nil {
		return err
	}
	lk, _, err := l.resolve(e, *mirror)
	if err != nil {
		return err
	}
	if err := lk.Write(l.lockPath); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d packages, %s %s\n", l.lockPath, len(lk.Packages), lk.Distro, lk.Release)
	return nil
}

// resolve runs the resolver for the manifest and returns the lock and the suite mirrors.
func (l *loaded) resolve(e *env, mirror string) (*lock.Lock, map[string]string, error) {
	req, err := l.request(mirror)
	if err != nil {
		return nil, nil, err
	}
	lk, err := deb.Resolve(e.ctx, req, deb.Opts{Client: http.DefaultClient, CacheDir: filepath.Join(cacheDir(), "index")})
	if err != nil {
		return nil, nil, err
	}
	return lk, mirrorMap(req), nil
}

func mirrorMap(req deb.Request) map[string]string {
	m := map[string]string{}
	for _, s := range req.Suites {
		m[s.Name] = s.URI
	}
	return m
}

// current returns the manifest's lock when it is fresh; with locked, a missing or stale lock is an
// error, otherwise the packages are resolved again and the lock rewritten.
func (l *loaded) current(e *env, mirror string, locked, write bool) (*lock.Lock, map[string]string, error) {
	req, err := l.request(mirror)
	if err != nil {
		return nil, nil, err
	}
	lk, err := lock.Read(l.lockPath)
	if err == nil {
		err = lk.Verify(deb.InputDigest(req))
	}
	if err == nil {
		return lk, mirrorMap(req), nil
	}
	if locked {
		if why := staleReason(req, lk, err); why != "" {
			return nil, nil, fmt.Errorf("--locked: %s: %w (%s); run rootfsc lock", l.lockPath, err, why)
		}
		return nil, nil, fmt.Errorf("--locked: %s: %w; run rootfsc lock", l.lockPath, err)
	}
	if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, lock.ErrStale) {
		return nil, nil, err
	}
	lk, mirrors, err := l.resolve(e, mirror)
	if err != nil {
		return nil, nil, err
	}
	if write {
		if err := lk.Write(l.lockPath); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(e.stderr, "wrote %s: %d packages\n", l.lockPath, len(lk.Packages))
	}
	return lk, mirrors, nil
}

func staleReason(req deb.Request, lk *lock.Lock, err error) string {
	if lk == nil || !errors.Is(err, lock.ErrStale) {
		return ""
	}
	return deb.StaleReason(req, lk)
}

func runVet(e *env, args []string) error {
	fs := flags("vet")
	l, err := parseManifest(e, fs, args)
	if err != nil {
		return err
	}
	if l.res.Release == nil {
		fmt.Fprintf(e.stdout, "%s: ok (overlay, no distro)\n", fs.Arg(0))
		return nil
	}
	req, err := l.request("")
	if err != nil {
		return err
	}
	lk, err := lock.Read(l.lockPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(e.stdout, "%s: ok; no lock yet (rootfsc lock writes %s)\n", fs.Arg(0), l.lockPath)
		return nil
	case err != nil:
		return err
	}
	if err := lk.Verify(deb.InputDigest(req)); err != nil {
		if why := staleReason(req, lk, err); why != "" {
			return fmt.Errorf("%s: %w (%s)", l.lockPath, err, why)
		}
		return fmt.Errorf("%s: %w", l.lockPath, err)
	}
	fmt.Fprintf(e.stdout, "%s: ok; lock is current (%d packages)\n", fs.Arg(0), len(lk.Packages))
	return nil
}

// lower turns the manifest and its lock (nil in overlay mode) into LLB, and returns the client
// folders the build reads by local name, the helper's excepted.
func (l *loaded) lower(e *env, lk *lock.Lock, mirrors map[string]string, epoch int64) (*llb.Definition, map[string]string, error) {
	in := rllb.Input{Lock: lk, Mirrors: mirrors, Manifest: l.res.Manifest, BuiltinPolicy: l.builtinPolicy, Source: l.source()}
	if l.res.Release != nil {
		in.DefaultPackages = l.res.Release.DefaultPackages
	}
	opts := rllb.Opts{HelperLocal: helperLocal, BuilderVersion: Version, SourceDateEpoch: epoch}
	res, err := rllb.Lower(e.ctx, in, opts)
	if err != nil {
		return nil, nil, err
	}
	dirs := map[string]string{}
	for name, loc := range res.Locals {
		dirs[name] = l.abs(loc.Dir)
	}
	return res.Def, dirs, nil
}

// buildEpoch is the time of every file of the build: the lock's, or in overlay mode
// $SOURCE_DATE_EPOCH, else 0 (an overlay has no lock to take a date from, and the wall clock
// would make every build differ).
func buildEpoch(lk *lock.Lock) (int64, error) {
	if lk != nil {
		return lk.SourceDateEpoch, nil
	}
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a count of seconds", v)
	}
	return n, nil
}

// pinned returns the lock and mirrors for a manifest with a distro, and nothing for an overlay.
func (l *loaded) pinned(e *env, mirror string, locked, write bool) (*lock.Lock, map[string]string, error) {
	if l.res.Release == nil {
		return nil, nil, nil
	}
	return l.current(e, mirror, locked, write)
}

func runLLB(e *env, args []string) error {
	fs := flags("llb")
	mirror := fs.String("mirror", "", "Debian mirror URL")
	locked := fs.Bool("locked", false, "refuse a missing or stale lock")
	l, err := parseManifest(e, fs, args)
	if err != nil {
		return err
	}
	lk, mirrors, err := l.pinned(e, *mirror, *locked, false)
	if err != nil {
		return err
	}
	epoch, err := buildEpoch(lk)
	if err != nil {
		return err
	}
	def, dirs, err := l.lower(e, lk, mirrors, epoch)
	if err != nil {
		return err
	}
	// buildctl needs every local the definition reads, and the epoch rootfsc's own exports use.
	var flags []string
	for name, dir := range dirs {
		flags = append(flags, "--local "+name+"="+dir)
	}
	sort.Strings(flags)
	fmt.Fprintf(e.stderr, "buildctl build --local %s=DIR_OF_STATIC_ROOTFSC %s --output type=tar,dest=ROOTFS.tar,source-date-epoch=%d\n",
		helperLocal, strings.Join(flags, " "), epoch)
	return llb.WriteTo(def, e.stdout)
}

func runBuild(e *env, args []string) error {
	fs := flags("build")
	outs := fs.StringArrayP("output", "o", nil, "output as type=dir|tar|initrd,dest=PATH (repeatable; default: the manifest's outputs)")
	locked := fs.Bool("locked", false, "refuse to build with a missing or stale lock")
	progress := fs.String("progress", "auto", "progress output: auto, plain, tty, rawjson or quiet")
	addr := fs.String("addr", "", "buildkitd address (default $BUILDKIT_HOST, else the embedded daemon)")
	mirror := fs.String("mirror", "", "Debian mirror URL")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	outputs, err := parseOutputs(*outs)
	if err != nil {
		return usageError{err.Error()}
	}
	l, err := load(e, pos[0])
	if err != nil {
		return err
	}
	if len(outputs) == 0 {
		for _, o := range l.res.Manifest.Outputs {
			dest := o.Dest
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(l.res.Dir, dest)
			}
			outputs = append(outputs, engine.Output{Type: o.Type, Dest: dest})
		}
	}
	lk, mirrors, err := l.pinned(e, *mirror, *locked, true)
	if err != nil {
		return err
	}
	epoch, err := buildEpoch(lk)
	if err != nil {
		return err
	}
	def, dirs, err := l.lower(e, lk, mirrors, epoch)
	if err != nil {
		return err
	}
	if dirs[helperLocal], err = helperDir(); err != nil {
		return err
	}
	if _, err := engine.Solve(e.ctx, def, outputs, engine.Opts{
		Addr:            *addr,
		Progress:        *progress,
		ProgressOut:     e.stderr,
		LocalDirs:       dirs,
		SourceDateEpoch: &epoch,
	}); err != nil {
		return namePackage(err, lk)
	}
	for _, o := range outputs {
		fmt.Fprintf(e.stdout, "%s: %s\n", o.Type, o.Dest)
	}
	return nil
}

// namePackage turns BuildKit's "digest mismatch sha256:…" into an error that names the locked
// package whose bytes did not match, since the digest alone means nothing to a user.
func namePackage(err error, lk *lock.Lock) error {
	msg := err.Error()
	if lk == nil || !strings.Contains(msg, "digest mismatch") {
		return err
	}
	if k := lk.Kernel; k != nil && strings.Contains(msg, "sha256:"+k.SHA256) {
		return fmt.Errorf("kernel package %s %s (%s): the mirror's bytes do not match the lock's sha256 %s: %w", k.Name, k.Version, k.Filename, k.SHA256, err)
	}
	for _, p := range lk.Packages {
		if strings.Contains(msg, "sha256:"+p.SHA256) {
			return fmt.Errorf("package %s %s (%s): the mirror's bytes do not match the lock's sha256 %s: %w", p.Name, p.Version, p.Filename, p.SHA256, err)
		}
	}
	return err
}

// helperDir is the folder holding this rootfsc executable, which runs inside the build as the
// static extraction helper.
func helperDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", err
	}
	if filepath.Base(exe) != "rootfsc" {
		return "", fmt.Errorf("the build helper must be an executable named rootfsc (running %s)", exe)
	}
	return filepath.Dir(exe), nil
}

// parseOutputs reads buildctl-style output specs: type=dir,dest=PATH.
func parseOutputs(specs []string) ([]engine.Output, error) {
	var out []engine.Output
	for _, s := range specs {
		var o engine.Output
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			switch {
			case !ok:
				return nil, fmt.Errorf("output %q: %q is not key=value", s, kv)
			case k == "type":
				o.Type = v
			case k == "dest":
				o.Dest = v
			default:
				return nil, fmt.Errorf("output %q: unknown key %q", s, k)
			}
		}
		if o.Type != "dir" && o.Type != "tar" && o.Type != "initrd" {
			return nil, fmt.Errorf("output %q: type must be dir, tar or initrd (others are not implemented yet)", s)
		}
		if o.Dest == "" {
			return nil, fmt.Errorf("output %q: dest is required", s)
		}
		out = append(out, o)
	}
	return out, nil
}

func runDistros(e *env, args []string) error {
	if _, err := parse(flags("distros"), args, 0); err != nil {
		return err
	}
	for _, d := range distros.List() {
		fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", d.Name, d.Family, strings.Join(d.Releases, " "))
	}
	return nil
}

// runInternal holds the helpers that run inside the build, from the helper local.
func runInternal(e *env, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "extract":
			return internalExtract(e, args[1:])
		case "check":
			return internalCheck(e, args[1:])
		}
	}
	fmt.Fprintln(e.stderr, "rootfsc internal: extract or check (used inside builds)")
	return 2
}

func internalExtract(e *env, args []string) int {
	fs := flags("internal extract")
	root := fs.String("root", "", "the root to extract into")
	usrmerge := fs.Bool("usrmerge", false, "make the merged-/usr links first")
	only := fs.StringArray("only", nil, "extract only entries under this path prefix (repeatable)")
	if err := fs.Parse(args); err != nil || *root == "" {
		fmt.Fprintln(e.stderr, "usage: rootfsc internal extract --root DIR [--usrmerge] [--only PREFIX]... DEB...")
		return 2
	}
	if err := deb.Bootstrap(e.ctx, *root, fs.Args(), deb.BootstrapOpts{UsrMerge: *usrmerge, Only: *only}); err != nil {
		fmt.Fprintf(e.stderr, "rootfsc internal extract: %v\n", err)
		return 1
	}
	return 0
}

func internalCheck(e *env, args []string) int {
	fs := flags("internal check")
	root := fs.String("root", "", "the rootfs to check")
	init := fs.String("init", "", "systemd or agent (empty: no agent)")
	agent := fs.String("agent", "", "the agent binary the rootfs must hold")
	overlay := fs.Bool("overlay", false, "the rootfs is an overlay without distro files")
	if err := fs.Parse(args); err != nil || *root == "" || fs.NArg() != 0 {
		fmt.Fprintln(e.stderr, "usage: rootfsc internal check --root DIR [--init systemd|agent --agent FILE] [--overlay]")
		return 2
	}
	if err := kata.Check(*root, kata.CheckOpts{Init: *init, Agent: *agent, Overlay: *overlay}); err != nil {
		fmt.Fprintf(e.stderr, "rootfsc internal check: %v\n", err)
		return 1
	}
	fmt.Fprintln(e.stdout, "rootfs check: ok")
	return 0
}
