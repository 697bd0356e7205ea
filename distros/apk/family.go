package apk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Family is the apk package family behind [family.Family]: Alpine-style repositories
// (APKINDEX.tar.gz signed with RSA keys), .apk packages, apk's database.
type Family struct{}

var _ family.Family = Family{}

// Arch is apk's name for a manifest's architecture.
func Arch(arch string) string {
	switch arch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return arch
}

// request is the resolver's request for a manifest's: the release's one branch (suites) and
// its repositories (components).
func request(r family.Request) (Request, error) {
	if r.Def == nil {
		return Request{}, fmt.Errorf("%s %s: no release definition", r.Distro, r.Release)
	}
	if len(r.Def.Suites) != 1 {
		return Request{}, fmt.Errorf("%s %s: an apk release has one branch in suites, not %d", r.Distro, r.Release, len(r.Def.Suites))
	}
	if len(r.Def.Keys) == 0 {
		return Request{}, fmt.Errorf("%s %s: the definition holds no keys to check the indexes with", r.Distro, r.Release)
	}
	return Request{
		Distro: r.Distro, Release: r.Release, Arch: Arch(r.Arch),
		Branch: r.Def.Suites[0], Repos: r.Def.Components, Mirror: r.Mirror,
		Keys: r.Def.Keys, Packages: r.Packages,
	}, nil
}

// InputDigest implements [family.Family] with [InputDigest].
func (Family) InputDigest(r family.Request) string {
	req, err := request(r)
	if err != nil {
		return ""
	}
	return InputDigest(req)
}

// StaleReason implements [family.Family]: the release, the packages the lock does not hold, and
// the pins and conflicts it does not meet.
func (Family) StaleReason(r family.Request, lk *lock.Lock) string {
	req, err := request(r)
	if err != nil {
		return err.Error()
	}
	var why []string
	if req.Distro != lk.Distro || req.Release != lk.Release || req.Arch != lk.Arch {
		why = append(why, fmt.Sprintf("the manifest asks for %s %s/%s, the lock holds %s %s/%s",
			req.Distro, req.Release, req.Arch, lk.Distro, lk.Release, lk.Arch))
	}
	have := map[string]string{} // name -> locked version
	for _, p := range lk.Packages {
		have[p.Name] = p.Version
	}
	var missing, changed []string
	for _, p := range req.Packages {
		d, err := parseDep(p)
		if err != nil {
			continue
		}
		v, ok := have[d.name]
		switch {
		case d.conflict:
			if ok && d.matches(v) {
				changed = append(changed, fmt.Sprintf("%s is forbidden, the lock holds %s", d.name, v))
			}
		case !ok:
			// A provided name (so:, cmd:) is not a locked package's: the digest says more.
			if !strings.Contains(d.name, ":") && !strings.HasPrefix(d.name, "/") && !slices.Contains(missing, d.name) {
				missing = append(missing, d.name)
			}
		case d.op == "=" && !d.matches(v):
			changed = append(changed, fmt.Sprintf("%s is pinned to %s, the lock holds %s", d.name, d.version, v))
		case !d.matches(v):
			changed = append(changed, fmt.Sprintf("%s asks for %s%s, the lock holds %s", d.name, d.op, d.version, v))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		why = append(why, "requested but not in the lock: "+strings.Join(missing, ", "))
	}
	slices.Sort(changed)
	why = append(why, changed...)
	for _, repo := range req.Repos {
		if !slices.ContainsFunc(lk.Suites, func(s lock.Suite) bool { return s.Name == repo && s.Archive == req.Branch }) {
			why = append(why, "repository "+req.Branch+"/"+repo+" is not in the lock")
		}
	}
	return strings.Join(why, "; ")
}

// Resolve implements [family.Family] with [Resolve].
func (Family) Resolve(ctx context.Context, r family.Request, opts family.ResolveOpts) (*lock.Lock, error) {
	if r.Kernel != "" {
		return nil, fmt.Errorf("%s: kernel packages are not supported by the apk family yet (give modules: dir)", r.Distro)
	}
	req, err := request(r)
	if err != nil {
		return nil, err
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	return Resolve(ctx, req, Opts{Client: client, Previous: opts.Previous, AllowDowngrade: opts.AllowDowngrade})
}

// Platform implements [family.Family]: a manifest's architecture as an OCI platform.
func (Family) Platform(arch string) ocispecs.Platform {
	switch arch {
	case "arm64", "aarch64":
		return ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	}
	return ocispecs.Platform{OS: "linux", Architecture: "amd64"}
}

// Explain implements [family.Family]: BuildKit's "digest mismatch sha256:…" for a package
// whose bytes are not the lock's names the package. BuildKit reports a 404 the same way (it
// hashes the body of any answer), so the mirror is asked once more whether it has the file.
func (Family) Explain(ctx context.Context, r family.Request, lk *lock.Lock, err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "digest mismatch") {
		return err
	}
	for _, p := range lk.Packages {
		if !strings.Contains(msg, "sha256:"+p.SHA256) {
			continue
		}
		if r.Mirror != "" {
			u := strings.TrimSuffix(r.Mirror, "/") + "/" + p.Filename
			switch status := probe(ctx, u); {
			case status == http.StatusNotFound || status == http.StatusGone:
				return fmt.Errorf("package %s %s: the mirror has no such file: %s (%d %s): %w",
					p.Name, p.Version, u, status, http.StatusText(status), err)
			case status >= 500 || status == http.StatusTooManyRequests:
				// BuildKit hashed an error page: worth another attempt.
				return fmt.Errorf("package %s %s: GET %s: %d %s: %w (%w)",
					p.Name, p.Version, u, status, http.StatusText(status), family.ErrMirrorFault, err)
			}
		}
		return fmt.Errorf("package %s %s (%s): the mirror's bytes do not match the lock's sha256 %s: %w",
			p.Name, p.Version, p.Filename, p.SHA256, err)
	}
	return err
}

// probe asks the mirror for u and returns the status of its answer (0 for none).
func probe(ctx context.Context, u string) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// KernelImage implements [family.Family]; the apk family pins no kernel package.
func (Family) KernelImage(context.Context, family.Request, *lock.Lock, string) (string, error) {
	return "", errors.New("the apk family pins no kernel package (give --kernel)")
}
