package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	rcue "github.com/rootfsc/rootfsc/cue"
	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/internal/disk"
)

// Source is where a build reads its manifest and its local inputs.
type Source struct {
	// Manifest holds the manifest and its lock: the manifest's folder on disk, or the
	// `dockerfile` local in the frontend.
	Manifest fs.FS
	// Name is the manifest file (or folder of .cue files) in Manifest; its lock is
	// Name+".lock.json" beside it.
	Name string
	// Dir is the absolute folder Manifest stands for: file names in positions, and the base of
	// the manifest's output destinations.
	Dir string
	// Context opens the build context once the manifest says which paths it reads (every
	// agent, OPA, modules, policy, files source and tarball path is relative to it).
	Context func(ctx context.Context, paths []string) (fs.FS, error)
	// ContextDir is the context's folder on disk, for file names in messages ("" when it is
	// not on this machine).
	ContextDir string
}

// DirSource is the [Source] of a manifest on disk with the build context contextDir (the
// manifest's folder when ""). Nothing outside contextDir can be read through it, not even by a
// symbolic link.
func DirSource(manifest, contextDir string) (Source, error) {
	abs, err := filepath.Abs(manifest)
	if err != nil {
		return Source{}, err
	}
	dir, name := filepath.Split(abs)
	dir = filepath.Clean(dir)
	if contextDir == "" {
		contextDir = dir
		if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
			contextDir = abs
		}
	}
	if contextDir, err = filepath.Abs(contextDir); err != nil {
		return Source{}, err
	}
	return Source{
		ContextDir: contextDir,
		Manifest:   os.DirFS(dir),
		Name:       name,
		Dir:        dir,
		Context: func(context.Context, []string) (fs.FS, error) {
			root, err := os.OpenRoot(contextDir)
			if err != nil {
				return nil, fmt.Errorf("build context: %w", err)
			}
			return root.FS(), nil
		},
	}, nil
}

// Opts configures [Prepare].
type Opts struct {
	// Mirror overrides the host's configuration (the manifest's own mirror still wins).
	Mirror string
	// Locked refuses a missing or stale lock instead of resolving again.
	Locked bool
	// WriteLock writes a lock resolved again next to the manifest (Source.Dir must be a folder
	// on disk).
	WriteLock bool
	// AllowDowngrade accepts an index older than the one the current lock was made from.
	AllowDowngrade bool
	// SourceDateEpoch is the time of every file in overlay mode (no lock to take a date from);
	// nil means 0, never the wall clock.
	SourceDateEpoch *int64
	// DistroPath are the folders of user-defined distros ($ROOTFSC_DISTRO_PATH); see
	// [rcue.Opts.DistroPath].
	DistroPath []string
	// Client and CacheDir are the resolver's HTTP client and verified-index cache.
	Client   *http.Client
	CacheDir string
}

// Plan is a loaded manifest with its pinned lock and checked inputs: everything [Frontend]
// needs to lower and solve it.
type Plan struct {
	Manifest *rcue.Result
	// Family and Request are the manifest's package family and what it asks of it; Family is nil
	// in overlay mode.
	Family  family.Family
	Request family.Request
	// Lock is the pinned lock (nil in overlay mode); LockName its name in Source.Manifest.
	Lock     *lock.Lock
	LockName string
	// Resolved says why the lock was resolved again ("" when the lock on disk was current).
	Resolved string
	// Epoch is the time of every file of the build.
	Epoch int64
	// Warnings do not stop the build; the caller prints them.
	Warnings []string
	// DownloadTimeout bounds one attempt at the base's downloads (0: [DownloadTimeout] of
	// their size).
	DownloadTimeout time.Duration
	// NoCache runs every step again, ignoring the cache.
	NoCache bool
	// Disks are the disk images to make besides the rootfs, by result key ([engine.RefKey]; ""
	// makes the image the result itself).
	Disks map[string]disk.Spec

	source        Source
	contextFS     fs.FS
	builtinPolicy []byte
}

// ErrNoDistro is returned by [Lock] for an overlay manifest, which has nothing to resolve.
var ErrNoDistro = errors.New("no distro: nothing to resolve")

// load loads the manifest and fills the plan's request.
func load(ctx context.Context, src Source, opts Opts) (*Plan, error) {
	res, err := rcue.Load(ctx, src.Manifest, src.Name, rcue.Opts{Dir: src.Dir, DistroPath: opts.DistroPath})
	if err != nil {
		return nil, err
	}
	if err := rcue.NotImplemented(res); err != nil {
		return nil, err
	}
	p := &Plan{Manifest: res, source: src, LockName: src.Name + ".lock.json"}
	if res.Release == nil {
		return p, nil
	}
	if p.Family, err = distros.Family(res.Family); err != nil {
		return nil, res.Errorf([]string{"distro"}, "%v", err)
	}
	m := res.Manifest
	mirror := m.Mirror
	if mirror == "" {
		mirror = opts.Mirror
	}
	p.Request = family.Request{
		Distro: m.Distro, Release: m.Release, Arch: m.Arch, Def: res.Release,
		Packages: append(append([]string(nil), res.Release.DefaultPackages...), m.Packages...),
		Mirror:   mirror,
		Tools:    res.Release.Tools,
	}
	if m.Modules != nil {
		p.Request.Kernel = m.Modules.Package
	}
	return p, nil
}

// Prepare loads the manifest, pins its lock (reading it, verifying it against the manifest and,
// unless opts.Locked, resolving it again when it is missing or stale) and checks every local
// input and the policy. Nothing here needs a BuildKit daemon.
func Prepare(ctx context.Context, src Source, opts Opts) (*Plan, error) {
	p, err := load(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	if err := p.pin(ctx, opts); err != nil {
		return nil, err
	}
	if err := p.checkInputs(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// pin sets the plan's lock and epoch.
func (p *Plan) pin(ctx context.Context, opts Opts) error {
	if p.Family == nil {
		p.Epoch = 0
		if opts.SourceDateEpoch != nil {
			p.Epoch = *opts.SourceDateEpoch
		}
		return nil
	}
	lk, err := readLock(p.source.Manifest, p.LockName)
	if err == nil {
		err = lk.Verify(p.Family.InputDigest(p.Request))
	}
	switch {
	case err == nil:
		p.Lock, p.Epoch = lk, lk.SourceDateEpoch
		return nil
	case opts.Locked:
		return p.staleError("--locked: ", lk, err)
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, lock.ErrStale):
		return fmt.Errorf("%s: %w", p.lockPath(), err)
	}
	p.Resolved = "no lock yet"
	if lk != nil {
		p.Resolved = "the lock is stale"
		if why := p.Family.StaleReason(p.Request, lk); why != "" {
			p.Resolved += " (" + why + ")"
		}
	}
	if p.Lock, err = p.Family.Resolve(ctx, p.Request, family.ResolveOpts{
		Client: opts.Client, CacheDir: opts.CacheDir, Previous: lk, AllowDowngrade: opts.AllowDowngrade, Warn: p.warn,
	}); err != nil {
		return p.locate(err)
	}
	p.Epoch = p.Lock.SourceDateEpoch
	if opts.WriteLock {
		return p.Lock.Write(p.lockPath())
	}
	return nil
}

// warn adds a warning for the caller to print.
func (p *Plan) warn(msg string) { p.Warnings = append(p.Warnings, msg) }

// locate puts a family's error about a requested package at that package's place in the
// manifest's packages; an error about a package of the distro's default set stays as it is.
func (p *Plan) locate(err error) error {
	var pe *family.PackageError
	if !errors.As(err, &pe) {
		return err
	}
	if i := slices.Index(p.Manifest.Manifest.Packages, pe.Package); i >= 0 {
		return p.Manifest.ElemErrorf("packages", i, "%s", pe.Msg)
	}
	return fmt.Errorf("the default packages of %s %s: %w", p.Request.Distro, p.Request.Release, err)
}

// staleError says why a lock cannot be used and what to run.
func (p *Plan) staleError(prefix string, lk *lock.Lock, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s%s: no lock; run rootfsc lock %s", prefix, p.lockPath(), p.Manifest.Name)
	}
	if lk != nil && errors.Is(err, lock.ErrStale) {
		if why := p.Family.StaleReason(p.Request, lk); why != "" {
			return fmt.Errorf("%s%s: %w (%s); run rootfsc lock", prefix, p.lockPath(), err, why)
		}
	}
	return fmt.Errorf("%s%s: %w; run rootfsc lock", prefix, p.lockPath(), err)
}

// lockPath is the lock's path as a user reads it.
func (p *Plan) lockPath() string {
	return filepath.Join(p.source.Dir, filepath.FromSlash(p.LockName))
}

// LockPath is the lock's path on disk (for a [DirSource]).
func (p *Plan) LockPath() string { return p.lockPath() }

func readLock(fsys fs.FS, name string) (*lock.Lock, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return lock.Parse(data)
}

// Lock resolves the manifest's packages again, whatever the current lock says, and writes the
// lock next to the manifest.
func Lock(ctx context.Context, src Source, opts Opts) (*Plan, error) {
	p, err := load(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	if p.Family == nil {
		return nil, fmt.Errorf("%s: %w", p.Manifest.Path, ErrNoDistro)
	}
	prev, _ := readLock(src.Manifest, p.LockName)
	if p.Lock, err = p.Family.Resolve(ctx, p.Request, family.ResolveOpts{
		Client: opts.Client, CacheDir: opts.CacheDir, Previous: prev, AllowDowngrade: opts.AllowDowngrade, Warn: p.warn,
	}); err != nil {
		return nil, p.locate(err)
	}
	p.Epoch = p.Lock.SourceDateEpoch
	if err := p.Lock.Write(p.lockPath()); err != nil {
		return nil, err
	}
	return p, nil
}

// VetResult is what [Vet] found.
type VetResult struct {
	Plan *Plan
	// Overlay is true for a manifest without distro; NoLock when it has a distro and no lock yet.
	Overlay, NoLock bool
}

// Vet checks the manifest against the schema, its inputs and its lock's freshness, without
// resolving or building anything.
func Vet(ctx context.Context, src Source, opts Opts) (*VetResult, error) {
	p, err := load(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	if err := p.checkInputs(ctx); err != nil {
		return nil, err
	}
	res := &VetResult{Plan: p, Overlay: p.Family == nil}
	if p.Family == nil {
		return res, nil
	}
	lk, err := readLock(src.Manifest, p.LockName)
	if errors.Is(err, fs.ErrNotExist) {
		res.NoLock = true
		return res, nil
	}
	if err == nil {
		err = lk.Verify(p.Family.InputDigest(p.Request))
	}
	if err != nil {
		return nil, p.staleError("", lk, err)
	}
	p.Lock = lk
	return res, nil
}

// ParseEpoch reads a SOURCE_DATE_EPOCH value ("" is nil).
func ParseEpoch(v string) (*int64, error) {
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a count of seconds", v)
	}
	return &n, nil
}

// OutputDir is the folder a manifest's output destinations are relative to.
func (p *Plan) OutputDir() string {
	if fi, err := fs.Stat(p.source.Manifest, p.source.Name); err == nil && fi.IsDir() {
		return filepath.Join(p.source.Dir, filepath.FromSlash(p.source.Name))
	}
	return filepath.Join(p.source.Dir, filepath.FromSlash(path.Dir(p.source.Name)))
}
