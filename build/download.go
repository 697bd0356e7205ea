package build

// The base's downloads are solved on their own before anything else: BuildKit's HTTP source
// neither retries nor bounds a mirror that stops answering, so the build does both, the way
// resolution does for the index (distros/deb/mirrors.go).

import (
	"context"
	"errors"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/family"
)

// Download attempts: four, with a pause that doubles from one second, as for the index.
const (
	downloadAttempts = 4
	firstPause       = time.Second
)

// DownloadTimeout is the bound on one attempt at the base's downloads when none is given: two
// minutes, plus the time the bytes take at 256 KiB/s (a slower mirror is taken as stalled).
func DownloadTimeout(bytes int64) time.Duration {
	return 2*time.Minute + time.Duration(bytes/(256<<10))*time.Second
}

// errStalled is the cause of an attempt that reached its bound.
var errStalled = errors.New("stalled")

// download lowers the plan and solves the base's downloads, retrying a mirror fault (a refused
// or reset connection, a 5xx answer, an attempt past its bound) with a doubling pause; it
// returns the lowering whose downloads are done. Its error is the family's explanation: of the
// last attempt's [*family.DownloadError] after the retries, else of the failure (a missing or
// tampered file is not retried), with only its words ([flat]).
func (p *Plan) download(ctx context.Context, c gwclient.Client, helper bkllb.State, platform ocispecs.Platform, imports []gwclient.CacheOptionsEntry) (*Lowered, error) {
	pause := firstPause
	for attempt := 1; ; attempt++ {
		lowered, err := p.lower(ctx, helper, attempt)
		if err != nil {
			return nil, err
		}
		base := lowered.Base
		if base == nil || base.Downloads.Output() == nil {
			return lowered, nil
		}
		bound := p.DownloadTimeout
		if bound <= 0 {
			bound = DownloadTimeout(base.DownloadBytes)
		}
		actx, cancel := context.WithTimeoutCause(ctx, bound, errStalled)
		_, err = solveState(actx, c, base.Downloads, platform, true, imports, p.cacheOpts()...)
		stalled := errors.Is(context.Cause(actx), errStalled)
		cancel()
		if err == nil {
			return lowered, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if !stalled && !transient(err) {
			if ex := p.explain(ctx, err); !errors.Is(ex, family.ErrMirrorFault) {
				return nil, flat(err, ex)
			}
		}
		if attempt == downloadAttempts {
			de := &family.DownloadError{Attempts: attempt, Err: err}
			if stalled {
				de.Stalled = bound
			}
			return nil, flat(err, p.explain(ctx, de))
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pause *= 2
	}
}

// transient says whether a failed download is worth another attempt: the network or the
// mirror's server failed, not the bytes (a digest mismatch is a tampered or missing file and is
// never retried).
func transient(err error) bool {
	msg := err.Error()
	if strings.Contains(msg, "digest mismatch") {
		return false
	}
	for _, s := range []string{
		"connection refused", "connection reset", "broken pipe", "EOF", "i/o timeout",
		"TLS handshake timeout", "no route to host", "network is unreachable",
		"server misbehaving", "temporary failure in name resolution",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	// BuildKit's HTTP source: "invalid response status 503".
	if i := strings.Index(msg, "invalid response status "); i >= 0 {
		code := msg[i+len("invalid response status "):]
		return strings.HasPrefix(code, "5") || strings.HasPrefix(code, "429") || strings.HasPrefix(code, "408")
	}
	return false
}
