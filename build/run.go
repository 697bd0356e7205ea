package build

// The doors: Build (the CLI's build command, in-process through the engine), RunFrontend (the
// image frontend inside buildkitd), FrontendImage (the image that frontend runs from) and
// WriteDefinition (the LLB for buildctl).

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/engine"
)

// Request is one `rootfsc build`.
type Request struct {
	Source Source
	Opts   Opts
	// Outputs are the exports (none: the manifest's outputs, relative to its folder).
	Outputs []engine.Output
	// Engine says how to reach BuildKit, show progress and share a cache.
	Engine engine.Opts
	// Labels are added to the image config (label:KEY=VALUE of the frontend).
	Labels map[string]string
	// HelperDir is the folder of rootfsc-helper, the static binary that runs inside the build;
	// empty: the folder of the rootfsc executable ([HelperDir]), looked up once the plan is
	// prepared, so that a bad manifest or policy is reported first.
	HelperDir string
	// DownloadTimeout bounds one attempt at the base's downloads (0: the default of their size).
	DownloadTimeout time.Duration
	// Check builds a second time with every step run again, ignoring the cache, and compares
	// the rootfs and every file output: a difference is a [*CheckError].
	Check bool
}

// Result is what a build wrote.
type Result struct {
	Plan    *Plan
	Outputs []engine.Output
	Engine  *engine.Result
}

// Build prepares the manifest (lock, inputs, policy: before any daemon is reached), then runs
// [Frontend] in-process with the manifest's folder as the dockerfile local and the build context
// as the context local, exactly the inputs buildctl gives the image frontend, and exports every
// output from that one solve.
func Build(ctx context.Context, req Request) (*Result, error) {
	p, err := Prepare(ctx, req.Source, req.Opts)
	if err != nil {
		return nil, err
	}
	outputs := req.Outputs
	if len(outputs) == 0 {
		for _, o := range p.Manifest.Manifest.Outputs {
			dest := o.Dest
			if o.Type != "image" && !filepath.IsAbs(dest) {
				dest = filepath.Join(p.OutputDir(), dest)
			}
			attrs := map[string]string{}
			for k, v := range o.Options {
				attrs[k] = v
			}
			if o.Push {
				attrs["push"] = "true"
			}
			if o.Type == "disk" {
				maps.Copy(attrs, diskOutputAttrs(o))
			}
			outputs = append(outputs, engine.Output{Type: o.Type, Dest: dest, Attrs: attrs})
		}
	}
	attrs := map[string]string{
		OptFilename: req.Source.Name,
		OptHelper:   "local",
		OptMirror:   req.Opts.Mirror,
	}
	if req.Opts.SourceDateEpoch != nil {
		attrs[OptEpoch] = strconv.FormatInt(*req.Opts.SourceDateEpoch, 10)
	}
	if req.DownloadTimeout > 0 {
		attrs[OptDownloadTimeout] = req.DownloadTimeout.String()
	}
	for k, v := range req.Labels {
		attrs[OptLabelPrefix+k] = v
	}
	if err := diskAttrs(outputs, attrs); err != nil {
		return nil, err
	}
	if req.HelperDir == "" {
		if req.HelperDir, err = HelperDir(); err != nil {
			return nil, err
		}
	}
	eo := req.Engine
	eo.FrontendAttrs = attrs
	eo.Epoch = p.Epoch
	eo.LocalDirs = map[string]string{
		LocalManifest: req.Source.Dir,
		LocalContext:  req.Source.ContextDir,
		LocalHelper:   req.HelperDir,
	}
	// A dir output that already holds this result is left as it is; --check builds again
	// whatever the outputs hold.
	if !req.Check {
		if eo.Fingerprint, err = p.fingerprint(ctx, attrs, map[string]localFiles{
			LocalManifest: {req.Source.Dir, []string{req.Source.Name, p.LockName}},
			LocalContext:  {req.Source.ContextDir, p.ContextPaths()},
			LocalHelper:   {req.HelperDir, []string{HelperName}},
		}); err != nil {
			return nil, err
		}
	}
	// Frontend explains a failed step itself (both doors name the package).
	exports := outputs
	var checkDir, first string
	if req.Check {
		if checkDir, err = os.MkdirTemp("", "rootfsc-check-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(checkDir)
		first = filepath.Join(checkDir, "first.tar")
		exports = append(slices.Clone(outputs), engine.Output{Type: "tar", Dest: first})
	}
	res, err := engine.Build(ctx, Frontend, exports, eo)
	if err != nil {
		return nil, err
	}
	out := &Result{Plan: p, Outputs: outputs, Engine: res}
	if req.Check {
		return out, checkBuild(ctx, eo, outputs, first, checkDir)
	}
	return out, nil
}

// explain asks the family what a failed build's error says about a locked package.
func (p *Plan) explain(ctx context.Context, err error) error {
	if p.Family == nil || p.Lock == nil {
		return err
	}
	return p.Family.Explain(ctx, p.Request, p.Lock, err)
}

// RunFrontend serves [Frontend] to the buildkitd that started this process as an image frontend.
func RunFrontend(ctx context.Context) error {
	return grpcclient.RunFromEnvironment(ctx, Frontend)
}

// Definition is what `rootfsc llb` prints: the plan's rootfs behind its check, as one LLB
// definition, with the locals buildctl must be given.
type Definition struct {
	Locals map[string]string // local name -> folder
	Epoch  int64
}

// WriteDefinition lowers the plan with the helper as the rootfsc-helper local and writes the
// marshalled definition to w.
func WriteDefinition(ctx context.Context, p *Plan, w io.Writer) (*Definition, error) {
	helper, err := helperState(nil, "local")
	if err != nil {
		return nil, err
	}
	lowered, err := p.Lower(ctx, helper)
	if err != nil {
		return nil, err
	}
	def, err := lowered.Checked.Marshal(ctx, bkllb.Platform(p.Platform()))
	if err != nil {
		return nil, err
	}
	if err := bkllb.WriteTo(def, w); err != nil {
		return nil, err
	}
	d := &Definition{Locals: map[string]string{LocalHelper: "DIR_OF_STATIC_ROOTFSC"}, Epoch: p.Epoch}
	if len(p.ContextPaths()) > 0 {
		d.Locals[LocalContext] = p.source.ContextDir
	}
	return d, nil
}

// FrontendImageRequest is one `rootfsc frontend-image`.
type FrontendImageRequest struct {
	Outputs []engine.Output
	Engine  engine.Opts
	// HelperDir holds the static rootfsc and rootfsc-helper binaries the image carries.
	HelperDir string
	// Keyrings is a folder of distro keyrings to carry under /usr/share/keyrings ("" for none).
	Keyrings []string
	// Epoch is the image's time (default 0).
	Epoch int64
}

// FrontendImage builds rootfsc's frontend image with BuildKit: the static binary at /rootfsc
// (the entrypoint `rootfsc frontend`, and the in-build helper the frontend mounts from its own
// image) and the distro keyrings, every time the epoch, so two builds give the same digest.
func FrontendImage(ctx context.Context, req FrontendImageRequest) (*engine.Result, error) {
	epoch := time.Unix(req.Epoch, 0).UTC()
	if _, err := os.Stat(filepath.Join(req.HelperDir, "rootfsc")); err != nil {
		return nil, fmt.Errorf("the frontend image's entrypoint: %w", err)
	}
	dirs := map[string]string{LocalHelper: req.HelperDir}
	fn := func(ctx context.Context, c gwclient.Client) (*gwclient.Result, error) {
		bins := bkllb.Local(LocalHelper, bkllb.IncludePatterns([]string{"rootfsc", HelperName}),
			bkllb.SharedKeyHint(LocalHelper), bkllb.LocalUniqueID("rootfsc:"+LocalHelper+":image"))
		root := bkllb.WithUIDGID(0, 0)
		exe := func() *bkllb.CopyInfo {
			return &bkllb.CopyInfo{
				Mode: &bkllb.ChmodOpt{Mode: 0o755}, ChownOpt: &bkllb.ChownOpt{User: &bkllb.UserOpt{UID: 0}, Group: &bkllb.UserOpt{UID: 0}},
				CreatedTime: &epoch,
			}
		}
		// The image holds rootfsc (the entrypoint) and rootfsc-helper, which the frontend copies
		// out for the steps that run it (helperState).
		fa := bkllb.Copy(bins, "/rootfsc", "/rootfsc", exe()).
			Copy(bins, "/"+HelperName, "/"+HelperName, exe())
		for i, k := range req.Keyrings {
			name := fmt.Sprintf("keyring%d", i)
			src := bkllb.Local(name, bkllb.IncludePatterns([]string{filepath.Base(k)}), bkllb.SharedKeyHint(name),
				bkllb.LocalUniqueID("rootfsc:"+name))
			fa = fa.Mkdir("/usr/share/keyrings", 0o755, bkllb.WithParents(true), root, bkllb.WithCreatedTime(epoch)).
				Copy(src, "/"+filepath.Base(k), "/usr/share/keyrings/"+filepath.Base(k), &bkllb.CopyInfo{
					Mode: &bkllb.ChmodOpt{Mode: 0o644}, CreatedTime: &epoch,
				})
		}
		st := bkllb.Scratch().File(fa, bkllb.WithCustomName("rootfsc frontend image"))
		ref, err := solveState(ctx, c, st, ocispecs.Platform{OS: "linux", Architecture: "amd64"}, false, nil)
		if err != nil {
			return nil, err
		}
		img := ocispecs.Image{
			Created:  &epoch,
			Platform: ocispecs.Platform{OS: "linux", Architecture: "amd64"},
			Config: ocispecs.ImageConfig{
				Entrypoint: []string{"/rootfsc", "frontend"},
				Labels: map[string]string{
					"moby.buildkit.frontend.network.none": "true",
					ocispecs.AnnotationTitle:              "rootfsc frontend",
					ocispecs.AnnotationVersion:            Version,
					ocispecs.AnnotationCreated:            epoch.Format(time.RFC3339),
				},
			},
			RootFS: ocispecs.RootFS{Type: "layers"},
		}
		return imageResult(ref, img, req.Epoch)
	}
	for i, k := range req.Keyrings {
		dirs[fmt.Sprintf("keyring%d", i)] = filepath.Dir(k)
	}
	eo := req.Engine
	eo.LocalDirs = dirs
	return engine.Build(ctx, fn, req.Outputs, eo)
}

// ParseOutputs reads buildctl-style output specs: type=TYPE,dest=PATH[,KEY=VALUE…] (for type
// image, name=REF and push=true as buildctl has them); other keys are exporter options.
func ParseOutputs(specs []string) ([]engine.Output, error) {
	var out []engine.Output
	for _, s := range specs {
		fields, err := csv.NewReader(strings.NewReader(s)).Read()
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", s, err)
		}
		o := engine.Output{Attrs: map[string]string{}}
		for _, kv := range fields {
			k, v, ok := strings.Cut(kv, "=")
			switch {
			case !ok:
				return nil, fmt.Errorf("output %q: %q is not key=value", s, kv)
			case k == "type":
				o.Type = v
			case k == "dest":
				o.Dest = v
			case k == "name" && o.Type == "image":
				o.Dest = v
			default:
				o.Attrs[k] = v
			}
		}
		if o.Type == "image" && o.Dest == "" {
			o.Dest = o.Attrs["name"]
			delete(o.Attrs, "name")
		}
		known := false
		for _, t := range engine.OutputTypes {
			known = known || t == o.Type
		}
		if !known {
			return nil, fmt.Errorf("output %q: type must be one of %s", s, strings.Join(engine.OutputTypes, ", "))
		}
		if o.Dest == "" {
			if o.Type == "image" {
				return nil, fmt.Errorf("output %q: name is required", s)
			}
			return nil, fmt.Errorf("output %q: dest is required", s)
		}
		if o.Type != "image" {
			if o.Dest, err = filepath.Abs(o.Dest); err != nil {
				return nil, err
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// HelperDir is the folder holding this rootfsc executable and, beside it, rootfsc-helper, the
// static binary that runs inside the build (make builds both into bin/).
func HelperDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(exe)
	fi, err := os.Stat(filepath.Join(dir, HelperName))
	if err != nil {
		return "", fmt.Errorf("the in-build helper: %w (rootfsc-helper, built from cmd/rootfsc-helper, must sit beside rootfsc; make builds both into bin/)", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("the in-build helper: %s is not an executable file", filepath.Join(dir, HelperName))
	}
	return dir, nil
}
