package apk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/rootfsc/rootfsc/distros/apk/unpack"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Request is what the apk resolver needs: a release's branch on a mirror (Alpine's "v3.20"),
// its repositories, the keys that sign their indexes, and the packages.
type Request struct {
	Distro, Release string
	// Arch is apk's architecture name (x86_64, aarch64).
	Arch string
	// Branch is the release's folder on a mirror; Repos are folders under it.
	Branch string
	Repos  []string
	// Mirror is the mirror's base URL (MIRROR/BRANCH/REPO/ARCH/APKINDEX.tar.gz).
	Mirror string
	// Keys are PEM public keys by name.
	Keys     map[string]string
	Packages []string
}

// Opts are the resolver's knobs that do not change its result.
type Opts struct {
	Client *http.Client
	// Previous is the lock being replaced: an index whose newest package is older than the one
	// the lock recorded for that repository is refused unless AllowDowngrade.
	Previous       *lock.Lock
	AllowDowngrade bool
}

// ErrDowngrade is wrapped by the error for an index older than the one the lock was made from
// (a mirror that went back in time).
var ErrDowngrade = errors.New("index is older than the lock's")

// maxPackage bounds a downloaded .apk (Alpine's largest are a few hundred MB).
const maxPackage = 2 << 30

// InputDigest is the digest of what a lock is resolved from; the mirror is transport, not part
// of it.
func InputDigest(req Request) string {
	keys := make([]string, 0, len(req.Keys))
	for name, pem := range req.Keys {
		s := sha256.Sum256([]byte(pem))
		keys = append(keys, name+"="+hex.EncodeToString(s[:]))
	}
	slices.Sort(keys)
	pkgs := slices.Clone(req.Packages)
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	if pkgs == nil {
		pkgs = []string{}
	}
	in := struct {
		Family, Distro, Release, Arch, Branch string
		Repos, Keys, Packages                 []string
	}{"apk", req.Distro, req.Release, req.Arch, req.Branch, req.Repos, keys, pkgs}
	b, _ := json.Marshal(in)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Resolve fetches each repository's APKINDEX.tar.gz, checks its signature, computes the closure
// of the requested packages, and downloads each package to record its sha256 after checking its
// control member against the index's checksum.
func Resolve(ctx context.Context, req Request, opts Opts) (*lock.Lock, error) {
	if req.Mirror == "" {
		return nil, errors.New("no mirror for " + req.Distro + ": name one in the manifest (mirror:), with --mirror or with ROOTFSC_MIRROR")
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	keys, err := ParseKeys(req.Keys)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Distro, req.Release, err)
	}
	base := strings.TrimSuffix(req.Mirror, "/")
	lk := &lock.Lock{Version: lock.CurrentVersion, InputDigest: InputDigest(req), Distro: req.Distro, Release: req.Release, Arch: req.Arch}
	var all []*Pkg
	for _, repo := range req.Repos {
		u := base + "/" + path.Join(req.Branch, repo, req.Arch, "APKINDEX.tar.gz")
		data, err := get(ctx, client, u, maxIndex)
		if err != nil {
			return nil, err
		}
		text, err := VerifyIndex(data, keys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		pkgs, err := ParseIndex(text, repo)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		var newest int64
		for _, p := range pkgs {
			newest = max(newest, p.BuildDate)
		}
		sum := sha256.Sum256(data)
		suite := lock.Suite{
			Name: repo, Archive: req.Branch,
			Date:          time.Unix(newest, 0).UTC().Format(time.RFC3339),
			ReleaseSHA256: hex.EncodeToString(sum[:]),
		}
		if prev := opts.Previous; prev != nil && !opts.AllowDowngrade {
			for _, ps := range prev.Suites {
				if was, err := time.Parse(time.RFC3339, ps.Date); err == nil && ps.Name == repo && ps.Archive == req.Branch && was.Unix() > newest {
					return nil, fmt.Errorf("%s: %w: its newest package is from %s, the lock's index had one from %s (rootfsc lock --allow-downgrade accepts it)",
						u, ErrDowngrade, suite.Date, ps.Date)
				}
			}
		}
		lk.Suites = append(lk.Suites, suite)
		lk.SourceDateEpoch = max(lk.SourceDateEpoch, newest)
		all = append(all, pkgs...)
	}
	x := newDB(all)
	chosen, err := solve(x, req.Packages)
	if err != nil {
		if pe := packageError(err, x, req.Release); pe != err {
			return nil, pe
		}
		return nil, fmt.Errorf("%s %s: %w", req.Distro, req.Release, err)
	}
	for _, p := range chosen {
		if !safeName(p.Name) || !safeName(p.Version) {
			return nil, fmt.Errorf("%s: bad package name or version %q %q in the index", p.Repo, p.Name, p.Version)
		}
		file := path.Join(req.Branch, p.Repo, req.Arch, p.Name+"-"+p.Version+".apk")
		u := base + "/" + file
		size, sum, cs, err := fetchPackage(ctx, client, u)
		if err != nil {
			return nil, fmt.Errorf("package %s %s: %w", p.Name, p.Version, err)
		}
		if cs != p.Checksum {
			return nil, fmt.Errorf("package %s %s: %s: control member %s does not match the signed index's %s: %w", p.Name, p.Version, u, cs, p.Checksum, unpack.ErrChecksum)
		}
		if p.Size > 0 && size != p.Size {
			return nil, fmt.Errorf("package %s %s: %s: %d bytes, the signed index says %d: %w", p.Name, p.Version, u, size, p.Size, unpack.ErrChecksum)
		}
		lk.Packages = append(lk.Packages, lock.Package{
			Name: p.Name, Version: p.Version, Architecture: p.Arch, Filename: file,
			Size: size, SHA256: sum, Suite: p.Repo, Checksum: p.Checksum,
		})
	}
	lk.Sort()
	return lk, nil
}

// get fetches u, at most limit bytes.
func get(ctx context.Context, client *http.Client, u string, limit int64) ([]byte, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, limit)
	}
	return b, nil
}

// safeName reports whether s is a package name or version apk would make: it becomes a file
// name and a path in the build.
func safeName(s string) bool {
	if s == "" || s == "." || s == ".." || strings.HasPrefix(s, "-") {
		return false
	}
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.ContainsRune("+._-", c):
		default:
			return false
		}
	}
	return true
}

// fetchPackage streams the .apk at u (at most maxPackage bytes) and returns its size, its hex
// sha256 and its control member's checksum.
func fetchPackage(ctx context.Context, client *http.Client, u string) (int64, string, string, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", "", err
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return 0, "", "", fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	h := sha256.New()
	var n counter
	body := io.TeeReader(io.LimitReader(resp.Body, maxPackage+1), io.MultiWriter(h, &n))
	cs, err := unpack.ControlChecksum(body)
	if err != nil {
		return 0, "", "", fmt.Errorf("%s: %w", u, err)
	}
	// ControlChecksum read ahead of the control member into its buffer; the tee saw those bytes.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return 0, "", "", fmt.Errorf("GET %s: %w", u, err)
	}
	if n > maxPackage {
		return 0, "", "", fmt.Errorf("GET %s: larger than %d bytes", u, int64(maxPackage))
	}
	return int64(n), hex.EncodeToString(h.Sum(nil)), cs, nil
}

// counter counts the bytes written to it.
type counter int64

func (c *counter) Write(p []byte) (int, error) {
	*c += counter(len(p))
	return len(p), nil
}
