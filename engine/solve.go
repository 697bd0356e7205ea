package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/buildkit/client"
	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
)

// Output is one export of the solved state.
type Output struct {
	Type string // "dir"|"tar"
	Dest string
}

// Opts configures Connect and Solve.
type Opts struct {
	Addr        string // "" -> BUILDKIT_HOST -> embedded daemon
	StateDir    string // default ROOTFSC_STATE_DIR or /var/lib/rootfsc ; socket = StateDir/buildkitd.sock
	Progress    string // auto|plain|tty|rawjson|quiet
	ProgressOut io.Writer
	LocalDirs   map[string]string // llb.Local name -> host dir
	// SourceDateEpoch, when set, is the modification time the exporter gives every file, so that
	// two builds of one lock write the same bytes whatever the clock said during the build.
	SourceDateEpoch *int64
	// Force lets an output replace what rootfsc did not write (see [DestOpts]).
	Force bool
}

// destOpts are the rules for the destination of an output of opts.
func destOpts(opts Opts, dir bool) DestOpts {
	return DestOpts{Dir: dir, Force: opts.Force, StateDir: opts.StateDir}
}

// Result carries the exporter response of the (last) solve.
type Result struct {
	ExporterResponse map[string]string
}

// Solve builds def and writes each output. Each output is its own solve;
// BuildKit's cache makes the repeats cheap.
func Solve(ctx context.Context, def *bkllb.Definition, outputs []Output, opts Opts) (*Result, error) {
	res, err := solve(ctx, def, outputs, opts)
	return res, located(err)
}

func solve(ctx context.Context, def *bkllb.Definition, outputs []Output, opts Opts) (*Result, error) {
	if def == nil {
		return nil, errors.New("engine: nil definition")
	}
	for _, o := range outputs {
		if o.Type != "dir" && o.Type != "tar" && o.Type != "initrd" {
			return nil, fmt.Errorf("engine: unknown output type %q (want dir, tar or initrd)", o.Type)
		}
		if o.Dest == "" {
			return nil, fmt.Errorf("engine: %s output without a destination", o.Type)
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

	c, err := Connect(ctx, opts.connectOpts())
	if err != nil {
		return nil, err
	}
	defer c.Close()

	res := &Result{ExporterResponse: map[string]string{}}
	if len(outputs) == 0 {
		resp, err := solveOne(ctx, c, def, nil, mounts, opts)
		if err != nil {
			return nil, err
		}
		merge(res, resp)
		return res, nil
	}
	for _, o := range outputs {
		var resp *client.SolveResponse
		switch o.Type {
		case "tar":
			resp, err = solveTar(ctx, c, def, o.Dest, mounts, opts)
		case "dir":
			resp, err = solveDir(ctx, c, def, o.Dest, mounts, opts)
		case "initrd":
			resp, err = solveInitrd(ctx, c, def, o.Dest, mounts, opts)
		default:
			err = errors.New("unknown output type")
		}
		if errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("engine: %s output %s: no space left on its filesystem (ENOSPC), the previous output is untouched: %w", o.Type, o.Dest, err)
		}
		if err != nil {
			return nil, fmt.Errorf("engine: %s output %s: %w", o.Type, o.Dest, daemonLost(err, opts.connectOpts()))
		}
		merge(res, resp)
	}
	return res, nil
}

func merge(res *Result, resp *client.SolveResponse) {
	if resp == nil {
		return
	}
	for k, v := range resp.ExporterResponse {
		res.ExporterResponse[k] = v
	}
}

// solveOne runs a single solve with the given exports and shows progress.
func solveOne(ctx context.Context, c *client.Client, def *bkllb.Definition, exports []client.ExportEntry, mounts map[string]fsutil.FS, opts Opts) (*client.SolveResponse, error) {
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
	resp, err := c.Solve(ctx, def, client.SolveOpt{
		Exports:     exports,
		LocalMounts: mounts,
	}, ch)
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

func solveTar(ctx context.Context, c *client.Client, def *bkllb.Definition, dest string, mounts map[string]fsutil.FS, opts Opts) (*client.SolveResponse, error) {
	resp, tmp, err := exportTar(ctx, c, def, dest, mounts, opts)
	if err != nil {
		return nil, err
	}
	if err := commitFile(tmp, dest, destOpts(opts, false)); err != nil {
		tmp.Remove()
		return nil, err
	}
	return resp, nil
}

// exportTar writes the tar exporter's stream into a temporary file of dest.
func exportTar(ctx context.Context, c *client.Client, def *bkllb.Definition, dest string, mounts map[string]fsutil.FS, opts Opts) (*client.SolveResponse, *Temp, error) {
	var tmp *Temp
	var w *errWriter
	resp, err := solveOne(ctx, c, def, []client.ExportEntry{{
		Type:  client.ExporterTar,
		Attrs: exportAttrs(opts),
		Output: func(map[string]string) (io.WriteCloser, error) {
			t, f, err := tempFile(dest)
			if err != nil {
				return nil, err
			}
			tmp, w = t, &errWriter{WriteCloser: syncCloser{f}}
			return w, nil
		},
	}}, mounts, opts)
	if err != nil {
		tmp.Remove()
		if w != nil && w.err != nil {
			return nil, nil, fmt.Errorf("writing %s: %w", tmp.Path, w.err)
		}
		return nil, nil, err
	}
	if tmp == nil {
		return nil, nil, errors.New("tar exporter produced no output")
	}
	return resp, tmp, nil
}

// solveDir streams the tar exporter through a pipe into unpackTemp, so
// owners, devices and xattrs survive (the local exporter rewrites owners).
func solveDir(ctx context.Context, c *client.Client, def *bkllb.Definition, dest string, mounts map[string]fsutil.FS, opts Opts) (*client.SolveResponse, error) {
	var pw *io.PipeWriter
	type unpackResult struct {
		tmp *Temp
		err error
	}
	unpacked := make(chan unpackResult, 1)
	resp, err := solveOne(ctx, c, def, []client.ExportEntry{{
		Type:  client.ExporterTar,
		Attrs: exportAttrs(opts),
		Output: func(map[string]string) (io.WriteCloser, error) {
			pr, w := io.Pipe()
			pw = w
			go func() {
				tmp, err := unpackTemp(pr, dest)
				// Make later writes fail instead of blocking.
				pr.CloseWithError(errOr(err, io.ErrClosedPipe))
				unpacked <- unpackResult{tmp, err}
			}()
			return w, nil
		},
	}}, mounts, opts)
	if pw == nil {
		if err != nil {
			return nil, err
		}
		return nil, errors.New("tar exporter produced no output")
	}
	if err != nil {
		pw.CloseWithError(err)
		u := <-unpacked
		if u.err == nil {
			u.tmp.Remove()
			return nil, err
		}
		return nil, errors.Join(err, fmt.Errorf("unpacking: %w", u.err))
	}
	pw.Close()
	u := <-unpacked
	if u.err != nil {
		return nil, fmt.Errorf("unpacking: %w", u.err)
	}
	if err := commitDir(u.tmp, dest, destOpts(opts, true)); err != nil {
		u.tmp.Remove()
		return nil, err
	}
	return resp, nil
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// exportAttrs are the tar exporter's options: the epoch every file's time is set to.
func exportAttrs(opts Opts) map[string]string {
	if opts.SourceDateEpoch == nil {
		return nil
	}
	return map[string]string{"source-date-epoch": strconv.FormatInt(*opts.SourceDateEpoch, 10)}
}

// solveInitrd exports the rootfs as a temporary tar next to dest, then converts it to a cpio initrd.
func solveInitrd(ctx context.Context, c *client.Client, def *bkllb.Definition, dest string, mounts map[string]fsutil.FS, opts Opts) (*client.SolveResponse, error) {
	resp, tarTmp, err := exportTar(ctx, c, def, dest, mounts, opts)
	if err != nil {
		return nil, err
	}
	defer tarTmp.Remove()
	var epoch int64
	if opts.SourceDateEpoch != nil {
		epoch = *opts.SourceDateEpoch
	}
	tmp, f, err := tempFile(dest)
	if err != nil {
		return nil, err
	}
	err = writeInitrd(tarTmp.Path, f, epoch)
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
		return nil, fmt.Errorf("writing the initrd: %w", err)
	}
	return resp, nil
}
