package deb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Family is the deb package family behind [family.Family]: Debian-style archives (InRelease,
// Packages), .deb packages, dpkg.
type Family struct{}

var (
	_ family.Family   = Family{}
	_ family.Supplier = Family{}
)

// request is the resolver's request for a manifest's; with mirrors, each suite gets its URI
// (reading the host's apt sources when no mirror is named).
func request(r family.Request, mirrors bool) (Request, error) {
	if r.Def == nil {
		return Request{}, fmt.Errorf("%s %s: no release definition", r.Distro, r.Release)
	}
	out := Request{
		Distro: r.Distro, Release: r.Release, Arch: r.Arch,
		Packages: r.Packages, Keyring: r.Def.Keyring, Kernel: r.Kernel, Tools: r.Tools,
	}
	if mirrors {
		s, err := suiteSources(r.Mirror, r.Def)
		if err != nil {
			return Request{}, err
		}
		out.Suites = s
		return out, nil
	}
	for _, s := range r.Def.Suites {
		archive := r.Def.Archive[s]
		if archive == "" {
			archive = "debian"
		}
		out.Suites = append(out.Suites, SuiteSource{Name: s, Archive: archive, Components: r.Def.Components})
	}
	return out, nil
}

// InputDigest implements [family.Family] with [InputDigest]; mirrors are not part of it.
func (Family) InputDigest(r family.Request) string {
	req, err := request(r, false)
	if err != nil {
		return ""
	}
	return InputDigest(req)
}

// StaleReason implements [family.Family] with [StaleReason].
func (Family) StaleReason(r family.Request, lk *lock.Lock) string {
	req, err := request(r, false)
	if err != nil {
		return err.Error()
	}
	return StaleReason(req, lk)
}

// Resolve implements [family.Family] with [Resolve].
func (Family) Resolve(ctx context.Context, r family.Request, opts family.ResolveOpts) (*lock.Lock, error) {
	req, err := request(r, true)
	if err != nil {
		return nil, err
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	lk, err := Resolve(ctx, req, Opts{Client: client, CacheDir: opts.CacheDir, Previous: opts.Previous, AllowDowngrade: opts.AllowDowngrade, Warn: opts.Warn})
	if errors.Is(err, ErrDowngrade) {
		return nil, fmt.Errorf("%w (rootfsc lock --allow-downgrade accepts it)", err)
	}
	return lk, err
}

// Supplier implements [family.Supplier]: the distro's name as its project spells it.
func (Family) Supplier(r family.Request) string {
	if r.Distro == "" {
		return ""
	}
	return strings.ToUpper(r.Distro[:1]) + r.Distro[1:]
}

// PackageURL implements [family.Supplier]: the mirror of the package's suite and its Filename.
func (Family) PackageURL(r family.Request, pkg *lock.Package) string {
	return packageURL(r, pkg)
}

// Platform implements [family.Family]: Debian's architecture names as OCI platforms.
func (Family) Platform(arch string) ocispecs.Platform {
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	switch arch {
	case "arm64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v5"
	case "i386":
		p.Architecture = "386"
	case "ppc64el":
		p.Architecture = "ppc64le"
	case "s390x", "riscv64":
		p.Architecture = arch
	case "mips64el":
		p.Architecture = "mips64le"
	}
	return p
}
