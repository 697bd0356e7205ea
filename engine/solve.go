package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildctl/build"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
)

// Output is one export of a build.
type Output struct {
	// Type is dir, tar, initrd (files on this machine, written atomically), oci or docker (an
	// image archive), or image (an image in BuildKit's store, pushed with push=true).
	Type string
	// Dest is the file or folder; for image, the image name.
	Dest string
	// Attrs are BuildKit exporter options (registry.insecure, oci-mediatypes, compression, …).
	Attrs map[string]string
}

// OutputTypes are the output types [Build] knows.
var OutputTypes = []string{"dir", "tar", "initrd", "oci", "docker", "image"}

// Opts configures [Build].
type Opts struct {
	Addr     string // "" -> BUILDKIT_HOST -> embedded daemon
	StateDir string // default ROOTFSC_STATE_DIR or /var/lib/rootfsc ; socket = StateDir/buildkitd.sock
	// TLS for a tcp:// daemon, buildctl's --tlscacert, --tlscert, --tlskey, --tlsservername.
	TLSCACert, TLSCert, TLSKey, TLSServerName string
	Progress                                  string // auto|plain|tty|rawjson|quiet
	ProgressOut                               io.Writer
	// LocalDirs maps the locals the build function reads to folders of this machine.
	LocalDirs map[string]string
	// FrontendAttrs are the build function's options (as buildctl's --opt).
	FrontendAttrs map[string]string
	// CacheTo and CacheFrom are cache exports and imports in buildctl's syntax
	// (type=local,dest=DIR,mode=max; type=registry,ref=REF; type=inline; …).
	CacheTo, CacheFrom []string
	// Epoch is the time of the entries the engine adds itself (an initrd's /init and
	// /dev/console); the build function gives the exporters theirs.
	Epoch int64
}

// Result is what the exporters answered.
type Result struct {
	ExporterResponse map[string]string
	// Digests holds the image digest of each oci, docker and image output, in order ("" for others).
	Digests []string
}

// Build runs fn as the frontend of one solve whose exporters are all the outputs: every output
// comes from the same result, and none is put in place unless every export succeeded (an image
// pushed to a registry is the exception: BuildKit publishes it during the solve).
func Build(ctx context.Context, fn gateway.BuildFunc, outputs []Output, opts Opts) (*Result, error) {
	res, err := buildSolve(ctx, fn, outputs, opts)
	return res, located(err)
}

// pending is an output's file written during the solve, put in place after it.
type pending struct {
	out    Output
	tmp    string       // temporary file or folder next to Dest
	commit func() error // puts tmp in place
	wait   func() error // waits for a streamed unpack (dir)
	abort  func(error)  // stops it
}

func buildSolve(ctx context.Context, fn gateway.BuildFunc, outputs []Output, opts Opts) (*Result, error) {
	for _, o := range outputs {
		if !contains(OutputTypes, o.Type) {
			return nil, fmt.Errorf("engine: unknown output type %q (want %s)", o.Type, strings.Join(OutputTypes, ", "))
		}
		if o.Dest == "" {
			return nil, fmt.Errorf("engine: %s output without a destination", o.Type)
		}
	}
	mode := progressui.DisplayMode(opts.Progress)
	switch mode {
	case "", progressui.AutoMode, progressui.PlainMode, progressui.TtyMode, progressui.RawJSONMode, progressui.QuietMode:
	default:
		return nil, fmt.Errorf("engine: unknown progress mode %q (auto|plain|tty|rawjson|quiet)", opts.Progress)
	}
	mounts := map[string]fsutil.FS{}
	for name, dir := range opts.LocalDirs {
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return nil, fmt.Errorf("engine: local %q (%s): %w", name, dir, err)
		}
		mounts[name] = fs
	}
	cacheTo, err := build.ParseExportCache(opts.CacheTo)
	if err != nil {
		return nil, fmt.Errorf("--cache-to: %w", err)
	}
	cacheFrom, err := build.ParseImportCache(opts.CacheFrom)
	if err != nil {
		return nil, fmt.Errorf("--cache-from: %w", err)
	}

	var pend []*pending
	defer func() {
		for _, p := range pend {
			if p.tmp != "" {
				os.RemoveAll(p.tmp)
			}
		}
	}()
	var exports []client.ExportEntry
	for _, o := range outputs {
		e, p, err := exportFor(o, opts.Epoch)
		if err != nil {
			return nil, err
		}
		exports = append(exports, e)
		pend = append(pend, p)
	}

	c, err := Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer c.Close()

	resp, err := buildOne(ctx, c, fn, client.SolveOpt{
		Exports:       exports,
		LocalMounts:   mounts,
		FrontendAttrs: opts.FrontendAttrs,
		CacheExports:  cacheTo,
		CacheImports:  cacheFrom,
		Session: []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
			AuthConfigProvider: authprovider.LoadAuthConfig(config.LoadDefaultConfigFile(io.Discard)),
		})},
	}, opts)
	for _, p := range pend {
		if p.wait == nil {
			continue
		}
		if err != nil {
			p.abort(err)
		}
		if werr := p.wait(); werr != nil && err == nil {
			err = fmt.Errorf("engine: %s output %s: %w", p.out.Type, p.out.Dest, werr)
		}
	}
	if err != nil {
		return nil, err
	}
	res := &Result{ExporterResponse: map[string]string{}}
	if resp != nil {
		maps.Copy(res.ExporterResponse, resp.ExporterResponse)
	}
	for _, p := range pend {
		if p.commit != nil {
			if err := p.commit(); err != nil {
				return nil, fmt.Errorf("engine: %s output %s: %w", p.out.Type, p.out.Dest, err)
			}
			p.tmp = ""
		}
	}
	for _, o := range outputs {
		d := ""
		if o.Type == "oci" || o.Type == "docker" || o.Type == "image" {
			d = res.ExporterResponse["containerimage.digest"]
		}
		res.Digests = append(res.Digests, d)
	}
	return res, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// exportFor is the exporter of one output and what to do with its file after the solve.
func exportFor(o Output, epoch int64) (client.ExportEntry, *pending, error) {
	p := &pending{out: o}
	attrs := maps.Clone(o.Attrs)
	if attrs == nil {
		attrs = map[string]string{}
	}
	switch o.Type {
	case "tar", "initrd", "oci", "docker":
		typ := map[string]string{"tar": client.ExporterTar, "initrd": client.ExporterTar,
			"oci": client.ExporterOCI, "docker": client.ExporterDocker}[o.Type]
		if o.Type == "oci" || o.Type == "docker" {
			imageAttrs(attrs)
			if o.Type == "docker" && attrs["name"] == "" {
				attrs["name"] = "rootfsc/rootfs:latest"
			}
		}
		dest := o.Dest
		if o.Type == "initrd" {
			dest = o.Dest + ".tar"
		}
		f, err := tempFile(dest)
		if err != nil {
			return client.ExportEntry{}, nil, err
		}
		p.tmp = f.Name()
		e := client.ExportEntry{Type: typ, Attrs: attrs, Output: func(map[string]string) (io.WriteCloser, error) {
			return syncCloser{f}, nil
		}}
		p.commit = func() error {
			if o.Type == "initrd" {
				defer os.Remove(f.Name())
				return toInitrd(f.Name(), o.Dest, epoch)
			}
			return commitFile(f.Name(), o.Dest)
		}
		return e, p, nil
	case "dir":
		pr, pw := io.Pipe()
		type unpacked struct {
			tmp string
			err error
		}
		done := make(chan unpacked, 1)
		started := false
		e := client.ExportEntry{Type: client.ExporterTar, Attrs: attrs, Output: func(map[string]string) (io.WriteCloser, error) {
			started = true
			go func() {
				tmp, err := unpackTemp(pr, o.Dest)
				// Make later writes fail instead of blocking.
				pr.CloseWithError(errOr(err, io.ErrClosedPipe))
				done <- unpacked{tmp, err}
			}()
			return pw, nil
		}}
		p.abort = func(err error) { pw.CloseWithError(err) }
		p.wait = func() error {
			if !started {
				return errors.New("the exporter wrote nothing")
			}
			pw.Close()
			u := <-done
			p.tmp = u.tmp
			if u.err != nil {
				return fmt.Errorf("unpacking: %w", u.err)
			}
			return nil
		}
		p.commit = func() error { return replace(p.tmp, o.Dest) }
		return e, p, nil
	case "image":
		imageAttrs(attrs)
		attrs["name"] = o.Dest
		return client.ExportEntry{Type: client.ExporterImage, Attrs: attrs}, p, nil
	}
	return client.ExportEntry{}, nil, fmt.Errorf("engine: unknown output type %q", o.Type)
}

// imageAttrs sets what makes an image reproducible: every file's time rewritten to the epoch the
// build function gives (unless the caller chose otherwise).
func imageAttrs(attrs map[string]string) {
	if _, ok := attrs["rewrite-timestamp"]; !ok {
		attrs["rewrite-timestamp"] = "true"
	}
}

// buildOne runs one client.Build and shows its progress.
func buildOne(ctx context.Context, c *client.Client, fn gateway.BuildFunc, opt client.SolveOpt, opts Opts) (*client.SolveResponse, error) {
	out := opts.ProgressOut
	if out == nil {
		out = os.Stderr
	}
	mode := progressui.DisplayMode(opts.Progress)
	if mode == "" {
		mode = progressui.AutoMode
	}
	disp, err := progressui.NewDisplay(out, mode)
	if err != nil {
		return nil, err
	}
	ch := make(chan *client.SolveStatus)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Display errors are cosmetic; the solve error is what matters.
		disp.UpdateFrom(context.WithoutCancel(ctx), ch)
	}()
	resp, err := c.Build(ctx, opt, "rootfsc", fn, ch)
	<-done
	return resp, err
}

// located prefixes a failed step's error with the manifest positions its op carries
// ("m.cue:4:1: "), which the lowering records as source maps.
func located(err error) error {
	if err == nil {
		return nil
	}
	var where []string
	for _, src := range errdefs.Sources(err) {
		if src.Info == nil || len(src.Ranges) == 0 || src.Ranges[0].Start == nil {
			continue
		}
		p := src.Ranges[0].Start
		where = append(where, fmt.Sprintf("%s:%d:%d", src.Info.Filename, p.Line, p.Character+1))
	}
	if len(where) == 0 {
		return err
	}
	return fmt.Errorf("%s: %w", strings.Join(where, ", "), err)
}

type syncCloser struct{ *os.File }

func (f syncCloser) Close() error {
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		return err
	}
	return f.File.Close()
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// tempFile is a new file next to dest, removed unless it is committed.
func tempFile(dest string) (*os.File, error) {
	parent, base := filepath.Dir(dest), filepath.Base(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(parent, base+".tmp-*")
}

// commitFile puts a finished temporary file in place.
func commitFile(tmp, dest string) error {
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}
