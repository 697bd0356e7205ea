package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/docker/cli/cli/config"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildctl/build"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// Output is one export of a build.
type Output struct {
	// Type is dir, tar, initrd, sbom (files on this machine, written atomically), oci or docker
	// (an image archive), image (an image in BuildKit's store, pushed with push=true), or disk (a
	// file the build function makes as a reference of its own: see [RefKey]).
	Type string
	// Dest is the file or folder; for image, the image name.
	Dest string
	// Attrs are BuildKit exporter options (registry.insecure, oci-mediatypes, compression, …).
	Attrs map[string]string
}

// OutputTypes are the output types [Build] knows.
var OutputTypes = []string{"dir", "tar", "initrd", "sbom", "oci", "docker", "image", "disk"}

// SBOMKey is the metadata of a build function's result that holds the build's SBOM, the bytes an
// sbom output writes. It is not an exporter: the document is the build function's, and a solve
// whose only outputs are SBOMs exports nothing.
const SBOMKey = "rootfsc.sbom"

// Opts configures [Build].
type Opts struct {
	// ConnectOpts says which daemon: Addr ("" -> BUILDKIT_HOST -> the embedded daemon of
	// StateDir), with TLS for a tcp:// one.
	ConnectOpts
	// Force lets an output replace what rootfsc did not write (see [DestOpts]).
	Force       bool
	Progress    string // auto|plain|tty|rawjson|quiet
	ProgressOut io.Writer
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
	// Fingerprint is a digest of everything the build function's result depends on: its
	// definition and the content of every local it reads. A dir output whose destination holds
	// the result of the same fingerprint, untouched since, is not exported again; when no output
	// is left to export (and no cache to export), nothing is solved. "" exports every time.
	Fingerprint string
}

// Result is what the exporters answered.
type Result struct {
	ExporterResponse map[string]string
	// Digests holds the image digest of each oci, docker and image output, in order ("" for others).
	Digests []string
	// UpToDate says, in order, which outputs already held this result and were left untouched.
	UpToDate []bool
	// Files counts, in order, the regular files of each dir output taken from the previous
	// output by hard link and those written.
	Files []FileStats
}

// FileStats counts the regular files of a dir output: kept from the previous output, written.
type FileStats struct{ Reused, Written int }

// Build runs fn as the frontend of one solve whose exporters are all the outputs: every output
// comes from the same result, and none is put in place unless every export succeeded (an image
// pushed to a registry is the exception: BuildKit publishes it during the solve).
func Build(ctx context.Context, fn gateway.BuildFunc, outputs []Output, opts Opts) (*Result, error) {
	res, err := buildSolve(ctx, fn, outputs, opts)
	return res, located(err)
}

// pending is an output's file written during the solve, put in place after it.
type pending struct {
	out     Output
	tmp     *Temp                      // temporary file or folder next to Dest
	files   FileStats                  // a dir's regular files, reused and written
	prepare func() error               // writes tmp after the solve (sbom)
	commit  func() error               // puts tmp in place
	wait    func(solveErr error) error // waits for a streamed unpack (dir)
	abort   func(error)                // stops it
	w       *errWriter                 // the file the exporter writes, for the cause of a broken stream
}

func buildSolve(ctx context.Context, fn gateway.BuildFunc, outputs []Output, opts Opts) (*Result, error) {
	for _, o := range outputs {
		if !contains(OutputTypes, o.Type) {
			return nil, fmt.Errorf("engine: unknown output type %q (want %s)", o.Type, strings.Join(OutputTypes, ", "))
		}
		if o.Dest == "" {
			return nil, fmt.Errorf("engine: %s output without a destination", o.Type)
		}
		if o.Type == "image" {
			continue
		}
		if err := checkDest(o.Dest, destOpts(opts, o.Type == "dir")); err != nil {
			return nil, fmt.Errorf("engine: %s output: %w", o.Type, err)
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

	// The dir outputs that already hold this result are not exported (see result.go).
	upToDateOut := make([]bool, len(outputs))
	var toExport []Output
	var index []int // of each exported output in outputs
	for i, o := range outputs {
		if o.Type == "dir" && upToDate(o.Dest, outputKey(opts.Fingerprint, o)) == nil {
			upToDateOut[i] = true
			// What killed runs left is removed all the same, as an export would.
			parent, base := filepath.Split(filepath.Clean(o.Dest))
			removeStale(cmp.Or(parent, "."), base)
			continue
		}
		toExport = append(toExport, o)
		index = append(index, i)
	}
	if len(outputs) > 0 && len(toExport) == 0 && len(opts.CacheTo) == 0 {
		return &Result{ExporterResponse: map[string]string{}, Digests: make([]string, len(outputs)), UpToDate: upToDateOut, Files: make([]FileStats, len(outputs))}, nil
	}

	var pend []*pending
	var refs []*refFiles
	defer func() {
		for _, p := range pend {
			p.tmp.Remove()
		}
		for _, r := range refs {
			r.remove()
		}
	}()
	var exports []client.ExportEntry
	refOut := map[string]Output{} // by result key
	var sbomDoc []byte
	for i, o := range toExport {
		if o.Type == "sbom" {
			pend = append(pend, sbomPending(o, opts, &sbomDoc))
			continue
		}
		if contains(refOutputTypes, o.Type) {
			refOut[RefKey(strconv.Itoa(index[i]))] = o
			continue
		}
		e, p, err := exportFor(o, opts)
		if err != nil {
			return nil, err
		}
		exports = append(exports, e)
		pend = append(pend, p)
	}

	c, err := Connect(ctx, opts.ConnectOpts)
	if err != nil {
		return nil, err
	}
	defer c.Close()

	// The build function runs in this process: its result's SBOM is taken as it returns, and
	// the references of the disk outputs are read and taken out of the result.
	build := func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		res, err := fn(ctx, c)
		if err != nil || res == nil {
			return res, err
		}
		sbomDoc = res.Metadata[SBOMKey]
		for key, o := range refOut {
			ref, ok := res.Refs[key]
			if !ok {
				return nil, outputErr(o, errors.New("the build function made no reference for it"))
			}
			rf, err := readRef(ctx, ref, o)
			refs = append(refs, rf)
			if err != nil {
				return nil, outputErr(o, err)
			}
			delete(res.Refs, key)
		}
		if len(res.Refs) == 0 {
			res.Refs = nil
		}
		return res, nil
	}
	resp, err := buildOne(ctx, c, build, client.SolveOpt{
		Exports:       exports,
		LocalMounts:   mounts,
		FrontendAttrs: opts.FrontendAttrs,
		CacheExports:  cacheTo,
		CacheImports:  cacheFrom,
		Session: []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
			AuthConfigProvider: authprovider.LoadAuthConfig(config.LoadDefaultConfigFile(io.Discard)),
		})},
	}, opts)
	// A failure on this side (a write or an unpack) is the cause of the broken stream BuildKit
	// reports, so it is the one named.
	var local error
	for _, p := range pend {
		if p.wait != nil {
			if err != nil {
				p.abort(err)
			}
			if werr := p.wait(err); werr != nil && local == nil {
				local = outputErr(p.out, werr)
			}
		}
		if p.w != nil && p.w.err != nil && local == nil {
			local = outputErr(p.out, fmt.Errorf("writing %s: %w", p.tmp.Path, p.w.err))
		}
	}
	switch {
	case local != nil && (err != nil || errors.Is(local, syscall.ENOSPC)):
		return nil, local
	case err != nil:
		if lost := daemonLost(err, opts.ConnectOpts); lost != err {
			return nil, fmt.Errorf("engine: %s: %w", outputNames(toExport), lost)
		}
		return nil, err
	case local != nil:
		return nil, local
	}
	res := &Result{ExporterResponse: map[string]string{}, UpToDate: upToDateOut, Files: make([]FileStats, len(outputs))}
	if resp != nil {
		maps.Copy(res.ExporterResponse, resp.ExporterResponse)
	}
	// The SBOMs are written before anything is put in place, so a failed write leaves every
	// previous output.
	for _, p := range pend {
		if p.prepare != nil {
			if err := p.prepare(); err != nil {
				return nil, outputErr(p.out, err)
			}
		}
	}
	for i, p := range pend {
		if p.commit != nil {
			if err := p.commit(); err != nil {
				return nil, outputErr(p.out, err)
			}
		}
		res.Files[index[i]] = p.files
	}
	for _, r := range refs {
		if err := r.commit(destOpts(opts, false)); err != nil {
			return nil, outputErr(r.out, err)
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
func exportFor(o Output, opts Opts) (client.ExportEntry, *pending, error) {
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
		t, f, err := tempFile(o.Dest)
		if err != nil {
			return client.ExportEntry{}, nil, err
		}
		p.tmp, p.w = t, &errWriter{WriteCloser: syncCloser{f}}
		e := client.ExportEntry{Type: typ, Attrs: attrs, Output: func(map[string]string) (io.WriteCloser, error) {
			return p.w, nil
		}}
		p.commit = func() error {
			if o.Type == "initrd" {
				return commitInitrd(t, o.Dest, opts)
			}
			return commitFile(t, o.Dest, destOpts(opts, false))
		}
		return e, p, nil
	case "dir":
		pr, pw := io.Pipe()
		type unpacked struct {
			tmp   *Temp
			stats rootfs.UntarStats
			err   error
		}
		done := make(chan unpacked, 1)
		started := false
		e := client.ExportEntry{Type: client.ExporterTar, Attrs: attrs, Output: func(map[string]string) (io.WriteCloser, error) {
			started = true
			go func() {
				tmp, stats, err := unpackTemp(pr, o.Dest)
				// Make later writes fail instead of blocking.
				pr.CloseWithError(errOr(err, io.ErrClosedPipe))
				done <- unpacked{tmp, stats, err}
			}()
			return pw, nil
		}}
		p.abort = func(err error) { pw.CloseWithError(err) }
		p.wait = func(solveErr error) error {
			if !started {
				if solveErr != nil {
					return nil // the solve's error says why
				}
				return errors.New("the exporter wrote nothing")
			}
			pw.Close()
			u := <-done
			p.tmp, p.files = u.tmp, FileStats{u.stats.Reused, u.stats.Written}
			if u.err != nil {
				return fmt.Errorf("unpacking: %w", u.err)
			}
			return nil
		}
		p.commit = func() error { return commitDir(p.tmp, o.Dest, destOpts(opts, true), outputKey(opts.Fingerprint, o)) }
		return e, p, nil
	case "image":
		imageAttrs(attrs)
		attrs["name"] = o.Dest
		return client.ExportEntry{Type: client.ExporterImage, Attrs: attrs}, p, nil
	}
	return client.ExportEntry{}, nil, fmt.Errorf("engine: unknown output type %q", o.Type)
}

// sbomPending writes the SBOM the build function gave (*doc, set during the solve) into a
// temporary file next to o.Dest, then puts it in place.
func sbomPending(o Output, opts Opts, doc *[]byte) *pending {
	p := &pending{out: o}
	p.prepare = func() error {
		if len(*doc) == 0 {
			return errors.New("the build gave no SBOM")
		}
		t, f, err := tempFile(o.Dest)
		if err != nil {
			return err
		}
		p.tmp = t
		_, err = f.Write(*doc)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", t.Path, err)
		}
		return nil
	}
	p.commit = func() error { return commitFile(p.tmp, o.Dest, destOpts(opts, false)) }
	return p
}

// commitInitrd converts the exported tar in tarTmp into the initrd at dest, through a temporary
// file of its own; every time in it is the tar's, the entries it adds carry opts.Epoch.
func commitInitrd(tarTmp *Temp, dest string, opts Opts) error {
	defer tarTmp.Remove()
	tmp, f, err := tempFile(dest)
	if err != nil {
		return err
	}
	err = writeInitrd(tarTmp.Path, f, opts.Epoch)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = commitFile(tmp, dest, destOpts(opts, false))
	}
	if err != nil {
		tmp.Remove()
		return fmt.Errorf("writing the initrd: %w", err)
	}
	return nil
}

// destOpts are the rules for the destination of an output of opts.
func destOpts(opts Opts, dir bool) DestOpts {
	return DestOpts{Dir: dir, Force: opts.Force, StateDir: opts.StateDir}
}

// outputErr is an error of one output, naming it; a full disk is said in words, since the
// previous output is what a user wants to know about.
func outputErr(o Output, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("engine: %s output %s: no space left on its filesystem (ENOSPC), the previous output is untouched: %w", o.Type, display(o.Dest), err)
	}
	return fmt.Errorf("engine: %s output %s: %w", o.Type, display(o.Dest), err)
}

// outputNames lists the outputs of a failed build ("dir output out/rootfs, tar output r.tar").
func outputNames(outputs []Output) string {
	if len(outputs) == 0 {
		return "build"
	}
	var names []string
	for _, o := range outputs {
		names = append(names, o.Type+" output "+display(o.Dest))
	}
	return strings.Join(names, ", ")
}

// display is a destination as a user typed it: relative to the working directory when under it.
func display(dest string) string {
	if cwd, err := os.Getwd(); err == nil && filepath.IsAbs(dest) {
		if r, err := filepath.Rel(cwd, dest); err == nil && filepath.IsLocal(r) {
			return r
		}
	}
	return dest
}

// errWriter remembers the first write error, which BuildKit reports only as a broken stream.
type errWriter struct {
	io.WriteCloser
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.WriteCloser.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// imageAttrs sets what makes an image reproducible: every file's time rewritten to the epoch the
// build function gives (unless the caller chose otherwise); and keeps the build's SBOM
// attestation, which the build function marks inline-only so that the tar exporter leaves it
// out of the rootfs (BuildKit's oci exporter drops inline-only attestations unless asked).
// Docker's own media types cannot carry an attestation: with oci-mediatypes=false there is none.
func imageAttrs(attrs map[string]string) {
	if _, ok := attrs["rewrite-timestamp"]; !ok {
		attrs["rewrite-timestamp"] = "true"
	}
	if _, ok := attrs["attestation-inline"]; !ok && attrs["oci-mediatypes"] != "false" {
		attrs["attestation-inline"] = "true"
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
