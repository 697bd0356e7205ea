// Package family is the seam between rootfsc's pipeline and the Go code of one package family
// (deb today; apk and rpm later): what a manifest asks of its distro, and what a family does with
// it — the lock's input digest and stale reason, resolution into a lock, and the base layer's
// lowering. The pipeline (package build) and the Kata layers name no family's concepts.
package family

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/schema"
)

// HelperDir is where the in-build helper (the static rootfsc-helper binary, at [HelperBin]) is
// mounted, read-only, in the exec ops that run it.
const HelperDir = "/.rootfsc"

// HelperBin is the helper binary inside a step: rootfsc-helper, built from cmd/rootfsc-helper.
const HelperBin = HelperDir + "/rootfsc-helper"

// Request is what a manifest asks of its distro.
type Request struct {
	Distro, Release, Arch string
	// Def is the release's definition from distros/<name>/distro.cue.
	Def *schema.Release
	// Packages are the release's default set followed by the manifest's packages.
	Packages []string
	// Kernel names a distro package whose kernel modules the guest gets ("" for none).
	Kernel string
	// Tools are the packages of the tools rootfs that disk images are made with: locked with
	// the rest (a lock can always make a disk image), extracted only when one is built.
	Tools []string
	// Mirror is the archive's base URL: the manifest's, else --mirror, $ROOTFSC_MIRROR or the
	// frontend's mirror option; "" lets the family use the host's configuration.
	Mirror string
}

// ResolveOpts are the knobs of [Family.Resolve] that do not change its result.
type ResolveOpts struct {
	Client   *http.Client // default http.DefaultClient
	CacheDir string       // verified indexes, keyed by hash; "" disables the cache
	// Previous is the lock being replaced, if any: a family refuses an index older than the one
	// it was made from unless AllowDowngrade.
	Previous       *lock.Lock
	AllowDowngrade bool
	// Warn, when set, is told of what did not stop the resolve (a damaged cache entry that was
	// refused and made again); it is called from the goroutine that called Resolve.
	Warn func(msg string)
}

// LowerOpts are what [Family.Lower] needs besides the lock.
type LowerOpts struct {
	// Helper is the state holding the static rootfsc binary at /rootfsc: a local in-process,
	// the frontend's own image in gateway mode.
	Helper bkllb.State
	// Base and Kernel are applied to every op of the base and of the kernel package's modules
	// (progress group and source location).
	Base, Kernel bkllb.ConstraintsOpt
	// Attempt counts the attempts at the downloads from 1. BuildKit merges an op with an earlier
	// failed one of the same cache key for the rest of the build, so a later attempt must fetch
	// each file under another cache key that gives the same files.
	Attempt int
	// Tools lowers the tools rootfs too, its downloads with the base's.
	Tools bool
}

// Base is the lowered distro.
type Base struct {
	State bkllb.State
	// Kernel is set when the request names a kernel package.
	Kernel *Kernel
	// Downloads is every file the base fetches from the mirror, merged, and DownloadBytes
	// their size: the build solves the downloads on their own first, so that a mirror fault
	// is retried and a stalled mirror is bounded before anything else runs.
	Downloads     bkllb.State
	DownloadBytes int64
	// Tools is the tools rootfs (with [LowerOpts.Tools]): the lock's tool packages extracted,
	// not installed, whose programs (mke2fs, mkfs.erofs, veritysetup) make disk images.
	Tools *bkllb.State
}

// Kernel is the base with a kernel package's modules tree added under /usr/lib/modules/Release
// (the package itself is not installed); the Kata modules layer runs depmod over it.
type Kernel struct {
	Tree    bkllb.State
	Release string
}

// Family is one package family.
type Family interface {
	// InputDigest is the digest of the resolver inputs a lock is made from.
	InputDigest(Request) string
	// StaleReason says in words how a stale lock differs from the request ("" if nothing
	// more specific than the digest).
	StaleReason(Request, *lock.Lock) string
	// Resolve computes the closure of the request from the distro's signed index.
	Resolve(context.Context, Request, ResolveOpts) (*lock.Lock, error)
	// Lower turns the locked packages into the base layer.
	Lower(Request, *lock.Lock, LowerOpts) (*Base, error)
	// Platform maps the family's architecture name to an OCI platform.
	Platform(arch string) ocispecs.Platform
	// Explain turns a build error about a locked package's bytes into one that names the
	// package and says what the mirror did (no such file, other bytes); other errors come back
	// as they are.
	Explain(ctx context.Context, req Request, lk *lock.Lock, err error) error
	// KernelImage is the kernel image of the lock's kernel package, which the rootfs does not
	// hold (only its modules): downloaded from the mirror, checked against the lock's sha256
	// and extracted under dir, where a later call finds it again.
	KernelImage(ctx context.Context, req Request, lk *lock.Lock, dir string) (string, error)
}

// Supplier is a family that can say, for an SBOM, who supplies its packages and where the build
// fetched a locked package from. It is a separate interface so that a family without it still
// builds (its SBOM says NOASSERTION).
type Supplier interface {
	// Supplier is the organisation that supplies the packages of req's distro ("Debian").
	Supplier(req Request) string
	// PackageURL is the URL the build fetches pkg from ("" when the mirror cannot be told).
	PackageURL(req Request, pkg *lock.Package) string
}

// ErrMirrorFault is wrapped by a family's explanation of a download the mirror failed to serve
// (a 5xx answer, a refused connection, no answer): worth another attempt, unlike a missing file
// or other bytes.
var ErrMirrorFault = errors.New("the mirror failed to serve a file")

// DownloadError is the base's downloads failing after bounded retries; the family's Explain
// names the file and the mirror.
type DownloadError struct {
	// Attempts is how many were made.
	Attempts int
	// Stalled is the bound the last attempt reached (0 when the mirror failed instead).
	Stalled time.Duration
	// Err is the last attempt's error.
	Err error
}

func (e *DownloadError) Error() string {
	return e.Retries() + ": " + e.Err.Error()
}

// Retries says what the attempts came to: "gave up after 4 attempts", after "the downloads were
// not complete after 10m0s, " for a stalled mirror.
func (e *DownloadError) Retries() string {
	s := fmt.Sprintf("gave up after %d attempts", e.Attempts)
	if e.Stalled > 0 {
		s = fmt.Sprintf("the downloads were not complete after %s, %s", e.Stalled, s)
	}
	return s
}

func (e *DownloadError) Unwrap() error { return e.Err }

// ParsePackage splits a requested package into its name and pinned version: "iptables=1.8.9-2"
// (apt's and apk's pin syntax) is ("iptables", "1.8.9-2"); an unpinned "iptables" has version "".
func ParsePackage(s string) (name, version string) {
	name, version, _ = strings.Cut(s, "=")
	return name, version
}

// PackageError is a requested package that a family cannot give (unknown, or pinned to a version
// the index does not have). It carries the package as requested, so that the caller can point at
// its place in the manifest.
type PackageError struct {
	// Package is as requested: "iptables" or "iptables=1.8.9-2".
	Package string
	// Msg says what is wrong, naming the package.
	Msg string
}

func (e *PackageError) Error() string { return e.Msg }

// Suggest returns the name among names closest to name by edit distance, for a "did you mean"
// after a misspelt package; "" when none is close (more than a third of the name, or one letter of a short one, would change).
func Suggest(name string, names func(yield func(string) bool)) string {
	// bestD is the distance to beat: a third of the name, then the best so far; ties go to
	// the smaller name so the answer does not depend on the order of names.
	best, bestD := "", max(1, len(name)/3)
	for n := range names {
		if n == name || abs(len(n)-len(name)) > bestD {
			continue
		}
		d := editDistance(name, n, bestD+1)
		if d < bestD || (d == bestD && (best == "" || n < best)) {
			best, bestD = n, d
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the Levenshtein distance of a and b, or a value >= limit once it is sure to
// reach limit.
func editDistance(a, b string, limit int) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
