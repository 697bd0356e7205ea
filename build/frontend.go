package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	commonexptypes "github.com/moby/buildkit/exporter/exptypes"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	rcue "github.com/rootfsc/rootfsc/cue"
	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/distros/family"
	rllb "github.com/rootfsc/rootfsc/llb"
)

// Version is rootfsc's version, recorded in osbuilder.yaml and the image labels; set at link
// time (-ldflags "-X github.com/rootfsc/rootfsc/build.Version=…").
var Version = "devel"

// The frontend's options (buildctl --opt KEY=VALUE) and locals, by BuildKit's conventions.
const (
	// OptFilename is the manifest in the dockerfile local; default [DefaultFilename].
	OptFilename = "filename"
	// OptMirror is the Debian mirror when the manifest names none.
	OptMirror = "mirror"
	// OptEpoch is SOURCE_DATE_EPOCH for an overlay manifest (a lock has its own).
	OptEpoch = "build-arg:SOURCE_DATE_EPOCH"
	// OptDownloadTimeout bounds one attempt at the base's downloads (a Go duration; default
	// [DownloadTimeout] of their size).
	OptDownloadTimeout = "download-timeout"
	// OptNoCache (with no value, as the Dockerfile frontend's no-cache=) runs every step again,
	// ignoring the cache: what `rootfsc build --check` compares against.
	OptNoCache = "no-cache"
	// OptLabelPrefix sets an image label: label:KEY=VALUE.
	OptLabelPrefix = "label:"
	// OptHelper "local" takes the in-build helper from the [LocalHelper] local instead of the
	// frontend's own image (what the CLI's in-process build does).
	OptHelper = "rootfsc-helper"

	DefaultFilename = "rootfs.cue"
	LocalManifest   = "dockerfile"
	LocalContext    = "context"
	LocalHelper     = "rootfsc-helper"
	// HelperName is the in-build helper's file name, in the helper local and the frontend image.
	HelperName = "rootfsc-helper"
)

// Frontend is the one build function of every door: `rootfsc build` runs it in-process and
// buildkitd runs it as the image frontend. It reads the manifest and its lock from the
// dockerfile local and inputs from the context local, builds from the lock (a missing or stale
// one fails), solves the rootfs check and returns the rootfs with its image config and epoch.
func Frontend(ctx context.Context, c gwclient.Client) (*gwclient.Result, error) {
	opts := c.BuildOpts().Opts
	name := opts[OptFilename]
	if name == "" {
		name = DefaultFilename
	}
	name = path.Clean(strings.TrimPrefix(name, "./"))
	if !fs.ValidPath(name) || name == "." {
		return nil, fmt.Errorf("filename %q: not a path inside the dockerfile local", opts[OptFilename])
	}
	// The manifest's own distros (distros/NAME/distro.cue beside it) travel with it.
	mref, err := solveLocal(ctx, c, LocalManifest, []string{name, name + ".lock.json", path.Join(path.Dir(name), "distros/*/distro.cue")})
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	epoch, err := ParseEpoch(opts[OptEpoch])
	if err != nil {
		return nil, err
	}
	const dir = "/" + LocalManifest
	src := Source{
		Manifest: refFS{ctx, mref},
		Name:     name,
		Dir:      dir,
		Context: func(ctx context.Context, paths []string) (fs.FS, error) {
			ref, err := solveLocal(ctx, c, LocalContext, paths)
			if err != nil {
				return nil, fmt.Errorf("reading the build context: %w", err)
			}
			return refFS{ctx, ref}, nil
		},
	}
	mirror := opts[OptMirror]
	if mirror == "" {
		mirror = os.Getenv("ROOTFSC_MIRROR")
	}
	// $ROOTFSC_DISTRO_PATH is the rootfsc process's in-process; a frontend image has none.
	plan, err := Prepare(ctx, src, Opts{Mirror: mirror, Locked: true, SourceDateEpoch: epoch, DistroPath: distros.SearchPath()})
	if err != nil {
		return nil, errors.New(strings.TrimRight(rcue.FormatError(err, dir), "\n"))
	}
	if v := opts[OptDownloadTimeout]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("option %s=%q: not a positive duration like 10m", OptDownloadTimeout, v)
		}
		plan.DownloadTimeout = d
	}
	if _, ok := opts[OptNoCache]; ok {
		if opts[OptNoCache] != "" {
			return nil, fmt.Errorf("option %s=%q: rootfsc bypasses the cache of every step or none (no-cache= with no value)", OptNoCache, opts[OptNoCache])
		}
		plan.NoCache = true
	}
	if plan.Disks, err = diskRequests(opts); err != nil {
		return nil, err
	}
	helper, err := helperState(c, opts[OptHelper])
	if err != nil {
		return nil, err
	}
	return plan.Solve(ctx, c, helper, labelOpts(opts))
}

// helperState is the in-build helper: a state holding /rootfsc-helper alone, so that every step
// mounting it is keyed by the helper's bytes (BuildKit hashes a read-only mount's content), not
// by the rootfsc that lowered it. In-process ("local") it is the helper local, the folder of the
// rootfsc executable filtered to rootfsc-helper; in gateway mode, rootfsc-helper copied out of
// the frontend's own image.
func helperState(c gwclient.Client, mode string) (bkllb.State, error) {
	if mode == "local" {
		return bkllb.Local(LocalHelper,
			bkllb.IncludePatterns([]string{HelperName}),
			bkllb.SharedKeyHint(LocalHelper),
			// A fixed ID keeps the definition (and its cache keys) identical from run to run.
			bkllb.LocalUniqueID("rootfsc:"+LocalHelper),
			bkllb.WithCustomName("helper "+HelperName),
		), nil
	}
	cf, ok := c.(interface{ CurrentFrontend() (*bkllb.State, error) })
	if !ok {
		return bkllb.State{}, errors.New("the in-build helper: this BuildKit gives the frontend no image of its own")
	}
	st, err := cf.CurrentFrontend()
	if err != nil {
		return bkllb.State{}, fmt.Errorf("the in-build helper: %w", err)
	}
	return bkllb.Scratch().File(bkllb.Copy(*st, "/"+HelperName, "/"+HelperName), bkllb.WithCustomName("helper "+HelperName+" from the frontend image")), nil
}

func labelOpts(opts map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range opts {
		if l, ok := strings.CutPrefix(k, OptLabelPrefix); ok && l != "" {
			out[l] = v
		}
	}
	return out
}

// solveLocal reads the files paths of a local through the gateway.
func solveLocal(ctx context.Context, c gwclient.Client, name string, paths []string) (gwclient.Reference, error) {
	st := bkllb.Local(name,
		bkllb.IncludePatterns(cleanPaths(paths)),
		bkllb.FollowPaths(cleanPaths(paths)),
		bkllb.SessionID(c.BuildOpts().SessionID),
		bkllb.SharedKeyHint(name),
		bkllb.WithCustomName("load "+name+": "+strings.Join(paths, " ")),
	)
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.Solve(ctx, gwclient.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	return res.SingleRef()
}

// Lowered is a lowered plan: the rootfs and its check, and the family's base (nil in overlay
// mode) whose downloads are solved first.
type Lowered struct {
	*rllb.Result
	Base *family.Base
}

// Lower lowers the plan: the family's base, then the Kata layers over it.
func (p *Plan) Lower(ctx context.Context, helper bkllb.State) (*Lowered, error) {
	return p.lower(ctx, helper, 1)
}

// lower lowers the plan for a download attempt (see [family.LowerOpts.Attempt]).
func (p *Plan) lower(ctx context.Context, helper bkllb.State, attempt int) (*Lowered, error) {
	src := p.sourceMap()
	in := rllb.Input{
		Manifest: p.Manifest.Manifest, Epoch: p.Epoch,
		BuiltinPolicy: p.builtinPolicy, Source: src,
	}
	if p.Family != nil {
		opts := familyLowerOpts(src, p, helper)
		opts.Attempt = attempt
		base, err := p.Family.Lower(p.Request, p.Lock, opts)
		if err != nil {
			return nil, err
		}
		in.Base = base
		in.DefaultPackages = p.Manifest.Release.DefaultPackages
	}
	res, err := rllb.Lower(ctx, in, rllb.Opts{Helper: helper, Context: LocalContext, BuilderVersion: Version})
	if err != nil {
		return nil, err
	}
	return &Lowered{Result: res, Base: in.Base}, nil
}

// Platform is the platform of the rootfs.
func (p *Plan) Platform() ocispecs.Platform {
	if p.Family != nil && p.Lock != nil {
		return p.Family.Platform(p.Lock.Arch)
	}
	return ocispecs.Platform{OS: "linux", Architecture: p.Manifest.Manifest.Arch}
}

// Solve lowers the plan, solves the check and returns the rootfs as the result, with the image
// config and the epoch the exporters use.
func (p *Plan) Solve(ctx context.Context, c gwclient.Client, helper bkllb.State, labels map[string]string) (*gwclient.Result, error) {
	platform := p.Platform()
	imports, err := cacheImports(c.BuildOpts().Opts)
	if err != nil {
		return nil, err
	}
	// The downloads first, retried and bounded; then the check: a rootfs that fails it is never
	// exported.
	lowered, err := p.download(ctx, c, helper, platform, imports)
	if err != nil {
		return nil, err
	}
	if _, err := solveState(ctx, c, lowered.Check, platform, true, imports, p.cacheOpts()...); err != nil {
		return nil, p.told(ctx, err)
	}
	ref, err := solveState(ctx, c, lowered.Rootfs, platform, false, imports, p.cacheOpts()...)
	if err != nil {
		return nil, p.told(ctx, err)
	}
	disks, err := p.solveDisks(ctx, c, lowered, helper, platform, imports)
	if err != nil {
		return nil, p.told(ctx, err)
	}
	if d, ok := disks[""]; ok {
		// target=disk: the folder with the image and its verity parameters is the result.
		res := gwclient.NewResult()
		res.SetRef(d)
		return res, nil
	}
	res, err := imageResult(ref, p.ImageConfig(labels), p.Epoch)
	if err != nil {
		return nil, err
	}
	var licenses map[string][]string
	if lowered.Base != nil {
		if licenses, err = p.readLicenses(ctx, c, lowered.Base.State, helper, platform); err != nil {
			return nil, p.told(ctx, err)
		}
	}
	doc, err := p.SBOM(ctx, licenses)
	if err != nil {
		return nil, err
	}
	if err := addSBOM(ctx, c, res, doc.JSON, platform, p.Epoch, p.cacheOpts()); err != nil {
		return nil, err
	}
	// In-process, the engine writes each disk output from its reference and takes it out of
	// the result before the exporters see it.
	for k, d := range disks {
		res.AddRef(k, d)
	}
	return res, nil
}

// told is the family's explanation of a failed solve as the doors show it. BuildKit sends a
// build function's error back as the gRPC status of the solve error it wraps, which would drop
// the explanation's words; an error that was explained keeps only its words.
func (p *Plan) told(ctx context.Context, err error) error {
	return flat(err, p.explain(ctx, err))
}

// flat is ex with only its words when it explains err, else err.
func flat(err, ex error) error {
	if ex == err {
		return err
	}
	return errors.New(ex.Error())
}

// cacheOpts are the marshal options of the plan's solves: every op ignores the cache when the
// plan says NoCache.
func (p *Plan) cacheOpts() []bkllb.ConstraintsOpt {
	if p.NoCache {
		return []bkllb.ConstraintsOpt{bkllb.IgnoreCache}
	}
	return nil
}

// solveState marshals st for platform and solves it (evaluated, when asked, even if nothing
// reads its result).
func solveState(ctx context.Context, c gwclient.Client, st bkllb.State, platform ocispecs.Platform, evaluate bool, imports []gwclient.CacheOptionsEntry, marshal ...bkllb.ConstraintsOpt) (gwclient.Reference, error) {
	def, err := st.Marshal(ctx, append([]bkllb.ConstraintsOpt{bkllb.Platform(platform)}, marshal...)...)
	if err != nil {
		return nil, err
	}
	r, err := c.Solve(ctx, gwclient.SolveRequest{Definition: def.ToPB(), Evaluate: evaluate, CacheImports: imports})
	if err != nil {
		return nil, err
	}
	return r.SingleRef()
}

// imageResult is ref as the build's result, with the image config and the epoch every exporter
// uses.
func imageResult(ref gwclient.Reference, img ocispecs.Image, epoch int64) (*gwclient.Result, error) {
	cfg, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	res := gwclient.NewResult()
	res.SetRef(ref)
	res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
	res.AddMeta(commonexptypes.ExporterEpochKey, []byte(strconv.FormatInt(epoch, 10)))
	return res, nil
}

// Label names of the image config.
const (
	LabelDistro       = "io.katacontainers.rootfs.distro"
	LabelRelease      = "io.katacontainers.rootfs.release"
	LabelAgentInit    = "io.katacontainers.rootfs.agent-init"
	LabelPolicy       = "io.katacontainers.rootfs.policy"
	LabelPolicyEngine = "io.katacontainers.rootfs.policy-engine"
)

// ImageConfig is the OCI image config of the rootfs: os/arch, created at the epoch, the
// org.opencontainers.image.* annotations as labels and the Kata ones; labels given win.
func (p *Plan) ImageConfig(labels map[string]string) ocispecs.Image {
	m := p.Manifest.Manifest
	created := time.Unix(p.Epoch, 0).UTC()
	l := map[string]string{
		ocispecs.AnnotationCreated: created.Format(time.RFC3339),
		ocispecs.AnnotationTitle:   strings.TrimSuffix(path.Base(p.Manifest.Name), ".cue"),
		ocispecs.AnnotationVersion: "rootfsc " + Version,
	}
	if p.Lock != nil {
		// The lock's input digest names exactly what was pinned.
		l[ocispecs.AnnotationRevision] = p.Lock.InputDigest
		l[LabelDistro], l[LabelRelease] = m.Distro, m.Release
	}
	if m.Agent != nil {
		l[LabelAgentInit] = m.Agent.Init
		if m.Agent.Version != "" {
			l[ocispecs.AnnotationVersion] = m.Agent.Version
		}
	}
	if pol := m.Policy; pol != nil {
		l[LabelPolicy] = pol.Builtin
		if pol.File != "" {
			l[LabelPolicy] = strings.TrimSuffix(path.Base(pol.File), ".rego")
		}
		l[LabelPolicyEngine] = pol.Engine
	}
	for k, v := range labels {
		l[k] = v
	}
	init := "/sbin/init"
	return ocispecs.Image{
		Created:  &created,
		Platform: p.Platform(),
		Config: ocispecs.ImageConfig{
			Labels: l,
			Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:    []string{init},
		},
		RootFS: ocispecs.RootFS{Type: "layers"},
	}
}

// cacheImports are the caches the client imports (rootfsc --cache-from, buildctl
// --import-cache): BuildKit hands them to the frontend as the cache-imports option, and only the
// frontend's own solves can use them.
func cacheImports(opts map[string]string) ([]gwclient.CacheOptionsEntry, error) {
	var out []gwclient.CacheOptionsEntry
	if s := opts["cache-imports"]; s != "" {
		var in []struct {
			Type  string
			Attrs map[string]string
		}
		if err := json.Unmarshal([]byte(s), &in); err != nil {
			return nil, fmt.Errorf("cache-imports %q: %w", s, err)
		}
		for _, e := range in {
			out = append(out, gwclient.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs})
		}
	}
	return out, nil
}
