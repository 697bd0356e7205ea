package cli

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/rootfsc/rootfsc/build"
	rcue "github.com/rootfsc/rootfsc/cue"
	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/engine"
)

// formatError renders CUE errors with positions relative to the working directory.
func formatError(err error) string {
	cwd, _ := os.Getwd()
	return rcue.FormatError(err, cwd)
}

func cacheDir() string {
	if d := os.Getenv("ROOTFSC_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rootfsc")
	}
	return filepath.Join(os.TempDir(), "rootfsc-cache")
}

// pipelineFlags are the flags every command over a manifest has.
type pipelineFlags struct {
	context, mirror string
	locked          bool
	allowDowngrade  bool
}

func (f *pipelineFlags) add(fs *pflag.FlagSet, resolve bool) {
	fs.StringVar(&f.context, "context", "", "the build context: local inputs are relative to it (default: the manifest's folder)")
	if resolve {
		fs.StringVar(&f.mirror, "mirror", "", "Debian mirror URL (default: the manifest's, $ROOTFSC_MIRROR, the host's apt sources)")
		fs.BoolVar(&f.allowDowngrade, "allow-downgrade", false, "accept a Release older than the one the current lock was made from")
	}
}

// source and opts turn the flags and the manifest argument into the pipeline's inputs.
func (f *pipelineFlags) source(manifest string) (build.Source, error) {
	return build.DirSource(manifest, f.context)
}

func (f *pipelineFlags) opts() (build.Opts, error) {
	mirror := f.mirror
	if mirror == "" {
		mirror = os.Getenv("ROOTFSC_MIRROR")
	}
	epoch, err := build.ParseEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return build.Opts{}, err
	}
	return build.Opts{
		Mirror: mirror, Locked: f.locked, AllowDowngrade: f.allowDowngrade, SourceDateEpoch: epoch,
		Client: http.DefaultClient, CacheDir: filepath.Join(cacheDir(), "index"), DistroPath: distros.SearchPath(),
	}, nil
}

// request is the build of manifest that the flags ask for, writing a lock resolved again.
func (f *pipelineFlags) request(e *env, ef *engineFlags, manifest string) (build.Request, error) {
	src, err := f.source(manifest)
	if err != nil {
		return build.Request{}, err
	}
	opts, err := f.opts()
	if err != nil {
		return build.Request{}, err
	}
	opts.WriteLock = true
	return build.Request{Source: src, Opts: opts, Engine: ef.opts(e)}, nil
}

func printWarnings(e *env, p *build.Plan) {
	for _, w := range p.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
}

func runLock(e *env, args []string) error {
	fs := flags("lock")
	var pf pipelineFlags
	pf.add(fs, true)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	src, err := pf.source(pos[0])
	if err != nil {
		return err
	}
	opts, err := pf.opts()
	if err != nil {
		return err
	}
	p, err := build.Lock(e.ctx, src, opts)
	if err != nil {
		return err
	}
	printWarnings(e, p)
	fmt.Fprintf(e.stdout, "wrote %s: %d packages, %s %s\n", p.LockPath(), len(p.Lock.Packages), p.Lock.Distro, p.Lock.Release)
	return nil
}

func runVet(e *env, args []string) error {
	fs := flags("vet")
	var pf pipelineFlags
	pf.add(fs, false)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	src, err := pf.source(pos[0])
	if err != nil {
		return err
	}
	opts, err := pf.opts()
	if err != nil {
		return err
	}
	res, err := build.Vet(e.ctx, src, opts)
	if err != nil {
		return err
	}
	printWarnings(e, res.Plan)
	switch {
	case res.Overlay:
		fmt.Fprintf(e.stdout, "%s: ok (overlay, no distro)\n", pos[0])
	case res.NoLock:
		fmt.Fprintf(e.stdout, "%s: ok; no lock yet (rootfsc lock writes %s)\n", pos[0], res.Plan.LockPath())
	default:
		fmt.Fprintf(e.stdout, "%s: ok; lock is current (%d packages)\n", pos[0], len(res.Plan.Lock.Packages))
	}
	return nil
}

func runLLB(e *env, args []string) error {
	fs := flags("llb")
	var pf pipelineFlags
	pf.add(fs, true)
	fs.BoolVar(&pf.locked, "locked", false, "refuse a missing or stale lock")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	src, err := pf.source(pos[0])
	if err != nil {
		return err
	}
	opts, err := pf.opts()
	if err != nil {
		return err
	}
	p, err := build.Prepare(e.ctx, src, opts)
	if err != nil {
		return err
	}
	printWarnings(e, p)
	d, err := build.WriteDefinition(e.ctx, p, e.stdout)
	if err != nil {
		return err
	}
	// buildctl needs every local the definition reads, and the epoch rootfsc's own exports use.
	var locals []string
	for name, dir := range d.Locals {
		locals = append(locals, "--local "+name+"="+dir)
	}
	sort.Strings(locals)
	fmt.Fprintf(e.stderr, "buildctl build %s --output type=tar,dest=ROOTFS.tar,source-date-epoch=%d\n", strings.Join(locals, " "), d.Epoch)
	return nil
}

// engineFlags are the flags of the commands that reach BuildKit, with buildctl's names.
type engineFlags struct {
	outputs, cacheTo, cacheFrom []string
	progress                    string
	force                       bool
	conn                        func() engine.ConnectOpts
}

func (f *engineFlags) add(fs *pflag.FlagSet, outputHelp string) {
	fs.StringArrayVarP(&f.outputs, "output", "o", nil, outputHelp)
	fs.StringVar(&f.progress, "progress", "auto", "progress output: auto, plain, tty, rawjson or quiet")
	fs.BoolVar(&f.force, "force", false, "let an output replace a folder or file rootfsc did not write (never /)")
	f.conn = connectFlags(fs)
	fs.StringArrayVar(&f.cacheTo, "cache-to", nil, "export the build cache, buildctl's syntax (type=local,dest=DIR,mode=max | type=registry,ref=REF | type=inline)")
	fs.StringArrayVar(&f.cacheFrom, "cache-from", nil, "import a build cache, buildctl's syntax (type=local,src=DIR | type=registry,ref=REF)")
}

func (f *engineFlags) opts(e *env) engine.Opts {
	return engine.Opts{
		ConnectOpts: f.conn(), Force: f.force, Progress: f.progress, ProgressOut: e.stderr,
		CacheTo: f.cacheTo, CacheFrom: f.cacheFrom,
	}
}

func runBuild(e *env, args []string) error {
	fs := flags("build")
	var pf pipelineFlags
	pf.add(fs, true)
	fs.BoolVar(&pf.locked, "locked", false, "refuse to build with a missing or stale lock")
	var ef engineFlags
	ef.add(fs, "output as type=dir|tar|initrd|sbom|oci|docker,dest=PATH or type=image,name=REF[,push=true] (repeatable; default: the manifest's outputs)")
	labels := fs.StringToString("label", nil, "an image label KEY=VALUE (repeatable)")
	check := fs.Bool("check", false, "build again with every step run again, ignoring the cache, and fail listing what differs (as nix build --check)")
	downloadTimeout := fs.Duration("download-timeout", 0, "bound one attempt at the package downloads; a mirror slower than that is stalled (default: 2m plus 256 KiB/s of the packages' size)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	outputs, err := build.ParseOutputs(ef.outputs)
	if err != nil {
		return usageError{err.Error()}
	}
	req, err := pf.request(e, &ef, pos[0])
	if err != nil {
		return err
	}
	req.Outputs, req.Labels, req.DownloadTimeout, req.Check = outputs, *labels, *downloadTimeout, *check
	res, err := build.Build(e.ctx, req)
	if res != nil {
		printWarnings(e, res.Plan)
	}
	if err != nil {
		return err
	}
	if res.Plan.Resolved != "" {
		fmt.Fprintf(e.stderr, "wrote %s: %d packages (%s)\n", res.Plan.LockPath(), len(res.Plan.Lock.Packages), res.Plan.Resolved)
	}
	printOutputs(e, res.Outputs, res.Engine)
	if *check {
		fmt.Fprintln(e.stderr, "check: the build without the cache gave the same rootfs and outputs")
	}
	return nil
}

func runBoot(e *env, args []string) error {
	fs := flags("boot")
	var pf pipelineFlags
	pf.add(fs, true)
	fs.BoolVar(&pf.locked, "locked", false, "refuse to build with a missing or stale lock")
	var ef engineFlags
	ef.add(fs, "")
	image := fs.String("image", "initrd", "what to boot of the manifest: initrd, or disk (the manifest's first disk output, else ext4 with dm-verity and the DAX header) attached as virtio-blk")
	kernel := fs.String("kernel", "", "the kernel to boot (default: the image of the lock's kernel package)")
	attach := fs.String("attach", "virtio-blk", "how a disk image is attached: virtio-blk, or nvdimm (read-only, with DAX through the image's header, as Kata on x86)")
	modules := fs.String("modules", "", "the modules tree (lib/modules/RELEASE) of a modular --kernel, loaded by a boot shim in front of a disk image (default with the lock's kernel: its package's)")
	appendArgs := fs.String("append", "", "more kernel command line (after Kata's systemd.unit=kata-containers.target for a systemd guest)")
	expect := fs.String("expect", "", "succeed, and stop the VM, once a console line matches this regular expression")
	timeout := fs.Duration("timeout", 5*time.Minute, "fail when the guest has not powered off (or matched --expect) by then")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if len(ef.outputs) > 0 {
		return usageError{"boot builds an image of its own: no -o"}
	}
	if *image != "initrd" && *image != "disk" {
		return usageError{fmt.Sprintf("--image %s: want initrd or disk", *image)}
	}
	if *attach != "virtio-blk" && *attach != "nvdimm" {
		return usageError{fmt.Sprintf("--attach %s: want virtio-blk or nvdimm", *attach)}
	}
	req := build.BootRequest{Kind: *image, NVDIMM: *attach == "nvdimm", Kernel: *kernel, Modules: *modules, Append: *appendArgs, Timeout: *timeout, Console: e.stdout,
		KernelCache: filepath.Join(cacheDir(), "kernels")}
	if *expect != "" {
		if req.Expect, err = regexp.Compile(*expect); err != nil {
			return usageError{fmt.Sprintf("--expect: %v", err)}
		}
	}
	if strings.HasSuffix(pos[0], ".cue") {
		if req.Build, err = pf.request(e, &ef, pos[0]); err != nil {
			return err
		}
	} else {
		req.Image = pos[0]
	}
	res, err := build.Boot(e.ctx, req)
	if res != nil && res.Plan != nil {
		printWarnings(e, res.Plan)
	}
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	if res.Accel.Reason != "" {
		fmt.Fprintf(e.stderr, "boot: ran with %s: %s\n", res.Accel.Name, res.Accel.Reason)
	}
	if res.Matched != "" {
		fmt.Fprintf(e.stderr, "boot: the console showed %q\n", res.Matched)
	}
	return nil
}

func printOutputs(e *env, outputs []engine.Output, res *engine.Result) {
	for i, o := range outputs {
		if i < len(res.UpToDate) && res.UpToDate[i] {
			fmt.Fprintf(e.stdout, "%s: %s (up to date: it holds this result, not exported again)\n", o.Type, o.Dest)
			continue
		}
		if i < len(res.Files) && res.Files[i].Reused > 0 {
			fmt.Fprintf(e.stdout, "%s: %s (%d files kept from the previous output, %d written)\n", o.Type, o.Dest, res.Files[i].Reused, res.Files[i].Written)
			continue
		}
		if d := res.Digests[i]; d != "" {
			fmt.Fprintf(e.stdout, "%s: %s %s\n", o.Type, o.Dest, d)
		} else {
			fmt.Fprintf(e.stdout, "%s: %s\n", o.Type, o.Dest)
		}
	}
}

func runFrontend(e *env, args []string) error {
	if _, err := parse(flags("frontend"), args, 0); err != nil {
		return err
	}
	return build.RunFrontend(e.ctx)
}

func runFrontendImage(e *env, args []string) error {
	fs := flags("frontend-image")
	var ef engineFlags
	ef.add(fs, "output as type=oci|docker,dest=FILE or type=image,name=REF[,push=true] (repeatable)")
	pos, err := parse(fs, args, 0)
	if err != nil {
		return err
	}
	_ = pos
	outputs, err := build.ParseOutputs(ef.outputs)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(outputs) == 0 {
		return usageError{"at least one -o is required"}
	}
	epoch, err := build.ParseEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	helper, err := build.HelperDir()
	if err != nil {
		return err
	}
	req := build.FrontendImageRequest{Outputs: outputs, Engine: ef.opts(e), HelperDir: helper}
	if epoch != nil {
		req.Epoch = *epoch
	}
	for _, d := range distros.List() {
		for _, k := range d.Keyrings {
			if _, err := os.Stat(k); err == nil && !contains(req.Keyrings, k) {
				req.Keyrings = append(req.Keyrings, k)
			}
		}
	}
	res, err := build.FrontendImage(e.ctx, req)
	if err != nil {
		return err
	}
	printOutputs(e, outputs, res)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func runDistros(e *env, args []string) error {
	pos, err := parse(flags("distros"), args, -1)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{fmt.Sprintf("want at most 1 argument, got %d", len(pos))}
	}
	dir := "."
	if len(pos) == 1 {
		dir = pos[0]
	}
	infos, err := distros.ListIn(dir, distros.SearchPath())
	if err != nil {
		return err
	}
	for _, d := range infos {
		fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Family, strings.Join(d.Releases, " "), d.Origin, d.Verified)
	}
	return nil
}

func runDistro(e *env, args []string) error {
	fs := flags("distro")
	family := fs.String("family", "deb", "the package family: deb or apk")
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	if pos[0] != "new" {
		return usageError{fmt.Sprintf("unknown distro subcommand %q (want new)", pos[0])}
	}
	file, err := distros.New(".", pos[1], *family)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s\n", file)
	return nil
}
