package apk

// Lowering the locked packages into the base layer: every .apk fetched by its sha256; the
// static helper, over scratch, extracts them into the new root with apk's database
// (rootfsc-helper extract-apk); apk's configuration (repositories, keys, arch) is written; the
// result is one layer.

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Paths inside the build containers; part of the contract with the helper.
const (
	// ApksDir is where the .apk files are mounted.
	ApksDir = "/apks"
	// TargetDir is the mount that becomes the new root.
	TargetDir = "/target"
)

// Lower implements [family.Family].
func (Family) Lower(r family.Request, lk *lock.Lock, opts family.LowerOpts) (*family.Base, error) {
	if r.Kernel != "" {
		return nil, fmt.Errorf("%s: kernel packages are not supported by the apk family yet (give modules: dir)", r.Distro)
	}
	req, err := request(r)
	if err != nil {
		return nil, err
	}
	if req.Mirror == "" {
		return nil, errors.New("no mirror for " + req.Distro + ": name one in the manifest (mirror:), with --mirror or with ROOTFSC_MIRROR")
	}
	if len(lk.Packages) == 0 {
		return nil, errors.New("lock has no packages")
	}
	pg := opts.Base
	if pg == nil {
		pg = bkllb.ProgressGroup("base", "base "+lk.Distro+" "+lk.Release, false)
	}
	mirror := strings.TrimSuffix(req.Mirror, "/")
	epoch := time.Unix(lk.SourceDateEpoch, 0).UTC()
	// The manifests of apk distros have the agent as init (a schema rule).
	args := []string{family.HelperBin, "extract-apk", "--root", TargetDir, "--scripts", "--agent-init"}
	for _, p := range req.Packages {
		args = append(args, "--world", p)
	}
	var files []bkllb.State
	var size int64
	seen := map[string]bool{}
	for _, p := range lk.Packages {
		if seen[p.Name] {
			return nil, fmt.Errorf("lock: package %s: listed twice", p.Name)
		}
		seen[p.Name] = true
		if !safeName(p.Name) || !safeName(p.Version) || !isSHA256(p.SHA256) || !strings.HasPrefix(p.Checksum, "Q1") ||
			p.Filename == "" || strings.HasPrefix(p.Filename, "/") || slices.Contains(strings.Split(p.Filename, "/"), "..") {
			return nil, fmt.Errorf("lock: package %q: bad version %q, filename %q, sha256 %q or checksum %q", p.Name, p.Version, p.Filename, p.SHA256, p.Checksum)
		}
		file := p.Name + "-" + p.Version + ".apk"
		files = append(files, bkllb.HTTP(mirror+"/"+p.Filename,
			bkllb.Checksum(digest.Digest("sha256:"+p.SHA256)),
			attemptHeader(opts.Attempt),
			bkllb.Filename(file),
			bkllb.WithCustomName("fetch "+p.Name+" "+p.Version),
			pg,
		))
		args = append(args, ApksDir+"/"+file+"="+p.Checksum)
		size += p.Size
	}
	apks := bkllb.Merge(files, bkllb.WithCustomName(fmt.Sprintf("apks: %d packages", len(files))), pg)
	st := bkllb.Scratch().Run(
		bkllb.Args(args),
		bkllb.AddMount(family.HelperDir, opts.Helper, bkllb.Readonly),
		bkllb.AddMount(ApksDir, apks, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName(fmt.Sprintf("base: extract %d packages", len(files))),
		pg,
	).AddMount(TargetDir, bkllb.Scratch())
	// apk's configuration, so that apk inside the rootfs can check and fetch packages.
	var repos strings.Builder
	for _, repo := range req.Repos {
		fmt.Fprintf(&repos, "%s/%s\n", mirror, path.Join(req.Branch, repo))
	}
	fa := bkllb.Mkdir("/etc/apk/keys", 0o755, bkllb.WithParents(true), bkllb.WithCreatedTime(epoch)).
		Mkfile("/etc/apk/repositories", 0o644, []byte(repos.String()), bkllb.WithCreatedTime(epoch)).
		Mkfile("/etc/apk/arch", 0o644, []byte(req.Arch+"\n"), bkllb.WithCreatedTime(epoch))
	names := make([]string, 0, len(req.Keys))
	for n := range req.Keys {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !safeKeyName(n) {
			return nil, fmt.Errorf("%s %s: bad key name %q", req.Distro, req.Release, n)
		}
		fa = fa.Mkfile("/etc/apk/keys/"+n, 0o644, []byte(req.Keys[n]), bkllb.WithCreatedTime(epoch))
	}
	st = st.File(fa, bkllb.WithCustomName("base: /etc/apk (repositories, keys, arch)"), pg)
	st = bkllb.Scratch().File(bkllb.Copy(st, "/", "/", &bkllb.CopyInfo{CopyDirContentsOnly: true}),
		bkllb.WithCustomName("base: one layer"), pg)
	return &family.Base{State: st, Downloads: apks, DownloadBytes: size}, nil
}

// attemptHeader changes a download's cache key after the first attempt, as the deb family's
// does (BuildKit merges an op with an earlier failed one of the same key for the whole build).
func attemptHeader(attempt int) bkllb.HTTPOption {
	if attempt <= 1 {
		return firstAttempt{}
	}
	return bkllb.Header(bkllb.HTTPHeader{UserAgent: fmt.Sprintf("rootfsc (download attempt %d)", attempt)})
}

type firstAttempt struct{}

func (firstAttempt) SetHTTPOption(*bkllb.HTTPInfo) {}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// safeKeyName is a key's file name in /etc/apk/keys.
func safeKeyName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}
