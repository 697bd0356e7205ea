package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"pault.ag/go/debian/version"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Request describes what to resolve.
type Request struct {
	Distro, Release, Arch string
	// Suites to merge, e.g. bookworm, bookworm-updates, bookworm-security, each with its mirror URI.
	Suites []SuiteSource
	// Packages is the distro default set plus user packages; Priority: required and Essential: yes
	// packages are always added.
	Packages []string
	// Keyring is the path to an OpenPGP keyring (binary or armored); empty means [DefaultKeyring].
	Keyring string
	// Kernel names the package whose kernel modules the guest gets, like "linux-image-amd64"; meta
	// packages are followed to the package that carries the modules (see [lock.Kernel]). It is
	// resolved into [lock.Lock.Kernel], not installed: neither it nor its dependencies join Packages.
	// Empty means no kernel package.
	Kernel string
	// Tools are resolved, with their own closure, into [lock.Lock.Tools]: the tools rootfs of
	// disk images.
	Tools []string
}

// SuiteSource is one suite of one mirror.
type SuiteSource struct {
	Name string
	// URI is the mirror base, like http://HOST/debian; it is transport only and not part of [InputDigest].
	URI string
	// Archive is the last path element of URI ("debian", "debian-security").
	Archive    string
	Components []string
}

// Opts are the knobs of [Resolve] that do not change its result.
type Opts struct {
	Client   *http.Client     // default http.DefaultClient
	CacheDir string           // verified indexes and their parsed forms, keyed by sha256; "" disables the cache
	Now      func() time.Time // default time.Now; checked against Valid-Until and key expiry
	// Warn, when set, is told of what did not stop the resolve: an entry of the cache that was
	// refused (damaged, or writable by another user) and parsed again.
	Warn func(msg string)

	// Previous is the lock the manifest had before this resolve, stale or not; nil when there is
	// none. A suite's Release dated before the one Previous was made from is refused with
	// [ErrDowngrade]: a mirror serving an old, validly signed Release would roll the guest back to
	// packages with known holes.
	Previous *lock.Lock
	// AllowDowngrade accepts a Release older than Previous's (a mirror restored from a backup, a
	// deliberate move to an older snapshot).
	AllowDowngrade bool
}

// preferredAlternatives are chosen over earlier alternatives of the same dependency:
// "usrmerge | usr-is-merged" must resolve to usr-is-merged (merged /usr is made by the builder).
var preferredAlternatives = []string{"usr-is-merged"}

// InputDigest returns the sha256 digest of the canonical resolver inputs: distro, release, arch,
// suite names, archives and components, the sorted, deduplicated packages and the kernel package.
// Mirror URIs and the keyring are transport and are left out. Without a kernel package the digest is
// the one earlier versions computed, so their locks stay current.
func InputDigest(req Request) string {
	type suite struct {
		Name       string   `json:"name"`
		Archive    string   `json:"archive"`
		Components []string `json:"components"`
	}
	in := struct {
		Distro   string   `json:"distro"`
		Release  string   `json:"release"`
		Arch     string   `json:"arch"`
		Suites   []suite  `json:"suites"`
		Packages []string `json:"packages"`
		Kernel   string   `json:"kernel,omitempty"`
		Tools    []string `json:"tools,omitempty"`
	}{Distro: req.Distro, Release: req.Release, Arch: req.Arch, Suites: []suite{}, Packages: []string{}}
	for _, s := range req.Suites {
		c := slices.Clone(s.Components)
		sort.Strings(c)
		if c == nil {
			c = []string{}
		}
		in.Suites = append(in.Suites, suite{s.Name, suiteArchive(s), c})
	}
	sort.Slice(in.Suites, func(i, j int) bool { return in.Suites[i].Name < in.Suites[j].Name })
	in.Packages = append(in.Packages, req.Packages...)
	sort.Strings(in.Packages)
	in.Packages = slices.Compact(in.Packages)
	in.Kernel = req.Kernel
	in.Tools = slices.Compact(slices.Sorted(slices.Values(req.Tools)))
	b, _ := json.Marshal(in)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// suiteArchive returns s.Archive, or the last path element of s.URI when it is empty.
func suiteArchive(s SuiteSource) string {
	if s.Archive != "" {
		return s.Archive
	}
	return archiveOf(s.URI)
}

type suiteResult struct {
	rel      *release
	pkgs     []*pkg
	warnings []string
	err      error
}

// Resolve fetches and verifies the suites' indexes, merges them (highest version wins) and returns
// the lock of the dependency closure of the requested, required and essential packages, and of the
// kernel package when req.Kernel is set.
func Resolve(ctx context.Context, req Request, opts Opts) (*lock.Lock, error) {
	if req.Arch == "" {
		return nil, fmt.Errorf("resolve: no architecture")
	}
	if len(req.Suites) == 0 {
		return nil, fmt.Errorf("resolve: no suites")
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	keyring, err := readKeyring(req.Keyring)
	if err != nil {
		return nil, err
	}
	prev := map[string]time.Time{}
	if opts.Previous != nil && !opts.AllowDowngrade {
		for _, s := range opts.Previous.Suites {
			// A date the lock cannot give is no evidence of a newer Release.
			if t, err := time.Parse(time.RFC3339, s.Date); err == nil {
				prev[s.Name] = t
			}
		}
	}
	suites := slices.Clone(req.Suites)
	sort.SliceStable(suites, func(i, j int) bool { return suites[i].Name < suites[j].Name })

	results := make([]suiteResult, len(suites))
	var wg sync.WaitGroup
	for i, s := range suites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.rel, r.err = fetchRelease(ctx, client, s, keyring, now(), prev[s.Name])
			if r.err != nil {
				return
			}
			comps := s.Components
			if len(comps) == 0 {
				comps = []string{"main"}
			}
			for _, c := range comps {
				pkgs, warn, err := fetchPackages(ctx, client, s, r.rel, c, req.Arch, opts.CacheDir)
				if warn != "" {
					r.warnings = append(r.warnings, fmt.Sprintf("suite %s: %s", s.Name, warn))
				}
				if err != nil {
					r.err = err
					return
				}
				r.pkgs = append(r.pkgs, pkgs...)
			}
		}()
	}
	wg.Wait()

	l := &lock.Lock{
		Version: lock.CurrentVersion, InputDigest: InputDigest(req),
		Distro: req.Distro, Release: req.Release, Arch: req.Arch,
	}
	universe := map[string]*pkg{}
	if opts.Warn != nil {
		for _, r := range results {
			for _, w := range r.warnings {
				opts.Warn(w)
			}
		}
	}
	for i, s := range suites {
		r := results[i]
		if r.err != nil {
			return nil, r.err
		}
		sum := sha256.Sum256(r.rel.raw)
		l.Suites = append(l.Suites, lock.Suite{
			Name: s.Name, Archive: suiteArchive(s),
			Date: r.rel.date.UTC().Format(time.RFC3339), ReleaseSHA256: hex.EncodeToString(sum[:]),
		})
		if e := r.rel.date.Unix(); e > l.SourceDateEpoch {
			l.SourceDateEpoch = e
		}
		for _, p := range r.pkgs {
			if old, ok := universe[p.Name]; !ok || version.Compare(p.version(), old.version()) > 0 {
				universe[p.Name] = p
			}
		}
	}
	suiteNames := make([]string, len(suites))
	for i, s := range suites {
		suiteNames[i] = s.Name
	}
	// Every version of a package, for pins: a scan per pinned name costs less than a map of
	// every version of the 60,000 names.
	versions := func(name string) []*pkg {
		var out []*pkg
		for _, r := range results {
			for _, p := range r.pkgs {
				if p.Name == name {
					out = append(out, p)
				}
			}
		}
		return out
	}
	names, err := pin(universe, versions, req.Packages, req.Release)
	if err != nil {
		return nil, err
	}
	ix := newIndex(universe)
	sel, err := closure(ix, names, req.Release)
	if err != nil {
		return nil, err
	}
	ess, err := essentialSet(ix, sel)
	if err != nil {
		return nil, err
	}
	if req.Kernel != "" {
		if l.Kernel, err = resolveKernel(ix, req.Kernel, strings.Join(suiteNames, ", ")); err != nil {
			return nil, err
		}
	}
	if len(req.Tools) > 0 {
		tools, err := closure(ix, req.Tools, strings.Join(suiteNames, ", "))
		if err != nil {
			return nil, fmt.Errorf("disk image tools: %w", err)
		}
		for _, p := range tools {
			l.Tools = append(l.Tools, lock.Package{
				Name: p.Name, Version: p.Version, Architecture: p.Architecture, Filename: p.Filename,
				Size: p.Size, SHA256: p.SHA256, Suite: p.Suite,
			})
		}
	}
	for _, p := range sel {
		l.Packages = append(l.Packages, lock.Package{
			Name: p.Name, Version: p.Version, Architecture: p.Architecture, Filename: p.Filename,
			Size: p.Size, SHA256: p.SHA256, Suite: p.Suite,
			Essential: ess[p.Name],
		})
	}
	l.Sort()
	return l, nil
}

// pin puts the version each pinned package ("name=version") asks for into universe in place of
// the highest one, so that the closure is computed with it, and returns the requested names
// without their pins. A pin the index cannot satisfy is a [family.PackageError] naming the
// versions it has.
func pin(universe map[string]*pkg, all func(name string) []*pkg, requested []string, release string) ([]string, error) {
	names := make([]string, 0, len(requested))
	pinned := map[string]string{} // name -> the request that pinned it
	for _, r := range requested {
		name, want := family.ParsePackage(r)
		names = append(names, name)
		if want == "" && !strings.Contains(r, "=") {
			continue
		}
		if prev, ok := pinned[name]; ok && prev != r {
			return nil, &family.PackageError{Package: r, Msg: fmt.Sprintf("%s: package %q is pinned twice (also %s)", r, name, prev)}
		}
		pinned[name] = r
		versions := all(name)
		if len(versions) == 0 {
			return nil, unknownPackage(universe, r, name, release)
		}
		wv, werr := version.Parse(want)
		var hit *pkg
		var have []string
		for _, p := range versions {
			if !slices.Contains(have, p.Version) {
				have = append(have, p.Version)
			}
			if p.Version == want || (werr == nil && version.Compare(p.version(), wv) == 0) {
				hit = p
			}
		}
		if hit == nil {
			slices.SortFunc(have, func(a, b string) int {
				va, _ := version.Parse(a)
				vb, _ := version.Parse(b)
				return version.Compare(va, vb)
			})
			return nil, &family.PackageError{Package: r, Msg: fmt.Sprintf("%s: package %q has no version %q in %s (the index has %s)",
				r, name, want, release, strings.Join(have, ", "))}
		}
		universe[name] = hit
	}
	return names, nil
}

// unknownPackage is the error for a requested package (as requested, r) that the index does not
// have, with the closest name it does have.
func unknownPackage(universe map[string]*pkg, r, name, release string) error {
	msg := fmt.Sprintf("unknown package %q in %s", name, release)
	if s := family.Suggest(name, maps.Keys(universe)); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &family.PackageError{Package: r, Msg: msg}
}

type provider struct {
	p       *pkg
	version string // provided version, "" if unversioned
}

type resolver struct {
	pkgs      map[string]*pkg
	provides  map[string][]provider
	selected  map[string]*pkg
	queue     []*pkg
	deferred  []deferredDep
	relations map[*pkg][][]rel
}

type deferredDep struct {
	from *pkg
	alts []rel
}

// index is the merged universe with who provides what, built once per resolve: the closure,
// the essential set, the kernel and the tools all ask it (parsing the Provides of 60,000
// packages was most of a cached resolve's CPU when each built its own).
type index struct {
	pkgs     map[string]*pkg
	provides map[string][]provider
}

func newIndex(universe map[string]*pkg) *index {
	ix := &index{pkgs: universe, provides: make(map[string][]provider, len(universe)/4)}
	for _, p := range universe {
		if p.Provides == "" {
			continue
		}
		groups, err := parseRelations(p.Provides)
		if err != nil {
			continue
		}
		for _, g := range groups {
			for _, a := range g {
				ix.provides[a.Name] = append(ix.provides[a.Name], provider{p, a.Version})
			}
		}
	}
	for _, ps := range ix.provides {
		sort.Slice(ps, func(i, j int) bool { return ps[i].p.Name < ps[j].p.Name })
	}
	return ix
}

func newResolver(ix *index) *resolver {
	return &resolver{pkgs: ix.pkgs, provides: ix.provides, selected: map[string]*pkg{}}
}

// candidates returns the packages that can satisfy d: the real package of that name first, then providers.
func (r *resolver) candidates(d rel) []*pkg {
	var out []*pkg
	if p, ok := r.pkgs[d.Name]; ok && satisfies(p.version(), d.Op, d.Version) {
		out = append(out, p)
	}
	for _, pr := range r.provides[d.Name] {
		if d.Op != "" {
			if pr.version == "" {
				continue
			}
			v, err := version.Parse(pr.version)
			if err != nil || !satisfies(v, d.Op, d.Version) {
				continue
			}
		}
		if !slices.Contains(out, pr.p) {
			out = append(out, pr.p)
		}
	}
	return out
}

func (r *resolver) satisfied(alts []rel) bool {
	for _, a := range alts {
		for _, c := range r.candidates(a) {
			if r.selected[c.Name] == c {
				return true
			}
		}
	}
	return false
}

func (r *resolver) add(p *pkg) {
	if _, ok := r.selected[p.Name]; ok {
		return
	}
	r.selected[p.Name] = p
	r.queue = append(r.queue, p)
}

func formatAlts(alts []rel) string {
	s := make([]string, len(alts))
	for i, a := range alts {
		s[i] = a.String()
	}
	return strings.Join(s, " | ")
}

func pkgNames(ps []*pkg) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Name
	}
	return strings.Join(s, ", ")
}

// choose picks the package for an unsatisfied dependency: a preferred alternative, else the first
// alternative that has a real package or exactly one provider.
func (r *resolver) choose(d deferredDep) (*pkg, error) {
	for _, a := range d.alts {
		if slices.Contains(preferredAlternatives, a.Name) {
			if p, ok := r.pkgs[a.Name]; ok && satisfies(p.version(), a.Op, a.Version) {
				return p, nil
			}
		}
	}
	for _, a := range d.alts {
		c := r.candidates(a)
		switch {
		case len(c) == 0:
			continue
		case c[0].Name == a.Name || len(c) == 1:
			return c[0], nil
		default:
			return nil, fmt.Errorf("%s %s depends on virtual package %q with several providers, none selected: %s (add one to the package list)",
				d.from.Name, d.from.Version, a.Name, pkgNames(c))
		}
	}
	return nil, fmt.Errorf("%s %s depends on %s, which no package in the suites satisfies", d.from.Name, d.from.Version, formatAlts(d.alts))
}

func (r *resolver) deps(p *pkg) ([][]rel, error) {
	pre, err := parseRelations(p.PreDepends)
	if err != nil {
		return nil, fmt.Errorf("%s: Pre-Depends: %w", p.Name, err)
	}
	dep, err := parseRelations(p.Depends)
	if err != nil {
		return nil, fmt.Errorf("%s: Depends: %w", p.Name, err)
	}
	return append(pre, dep...), nil
}

// closure selects the requested, required and essential packages and everything they (pre-)depend on.
// Dependencies with a single obvious candidate are followed first; choices between alternatives or
// providers are made only when nothing else is pending, so that packages already pulled in win.
func closure(ix *index, requested []string, release string) ([]*pkg, error) {
	universe := ix.pkgs
	r := newResolver(ix)
	var roots []string
	for name, p := range universe {
		if p.Essential || p.Priority == "required" {
			roots = append(roots, name)
		}
	}
	sort.Strings(roots)
	for _, n := range roots {
		r.add(universe[n])
	}
	req := slices.Clone(requested)
	sort.Strings(req)
	for _, n := range slices.Compact(req) {
		if p, ok := universe[n]; ok {
			r.add(p)
			continue
		}
		switch c := r.candidates(rel{Name: n}); len(c) {
		case 0:
			return nil, unknownPackage(universe, n, n, release)
		case 1:
			r.add(c[0])
		default:
			return nil, fmt.Errorf("requested package %q is virtual with several providers: %s", n, pkgNames(c))
		}
	}
	for len(r.queue) > 0 || len(r.deferred) > 0 {
		for len(r.queue) > 0 {
			p := r.queue[0]
			r.queue = r.queue[1:]
			groups, err := r.deps(p)
			if err != nil {
				return nil, err
			}
			for _, g := range groups {
				if r.satisfied(g) {
					continue
				}
				if len(g) == 1 {
					if c := r.candidates(g[0]); len(c) == 1 || (len(c) > 1 && c[0].Name == g[0].Name) {
						r.add(c[0])
						continue
					} else if len(c) == 0 {
						return nil, fmt.Errorf("%s %s depends on %s, which no package in the suites satisfies", p.Name, p.Version, g[0])
					}
				}
				r.deferred = append(r.deferred, deferredDep{p, g})
			}
		}
		if len(r.deferred) > 0 {
			d := r.deferred[0]
			r.deferred = r.deferred[1:]
			if r.satisfied(d.alts) {
				continue
			}
			p, err := r.choose(d)
			if err != nil {
				return nil, err
			}
			r.add(p)
		}
	}
	var out []*pkg
	for _, p := range r.selected {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if err := r.checkConflicts(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *resolver) checkConflicts(sel []*pkg) error {
	for _, p := range sel {
		for _, field := range []struct{ name, value string }{{"conflicts with", p.Conflicts}, {"breaks", p.Breaks}} {
			groups, err := parseRelations(field.value)
			if err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			for _, g := range groups {
				for _, a := range g {
					for _, c := range r.candidates(a) {
						if c != p && r.selected[c.Name] == c {
							return fmt.Errorf("%s %s %s %s, but both are selected (%s %s)", p.Name, p.Version, field.name, a, c.Name, c.Version)
						}
					}
				}
			}
		}
	}
	return nil
}

// essentialSet is the set the first install stage lays down: the Essential: yes packages and,
// transitively, the selected packages they (pre-)depend on. Without their libraries (libc6 is not
// Essential itself) not even /bin/sh runs, which is why debootstrap and mmdebstrap extract the same set.
func essentialSet(ix *index, sel []*pkg) (map[string]bool, error) {
	r := newResolver(ix)
	for _, p := range sel {
		r.selected[p.Name] = p
	}
	out := map[string]bool{}
	var queue []*pkg
	for _, p := range sel {
		if p.Essential {
			out[p.Name] = true
			queue = append(queue, p)
		}
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		groups, err := r.deps(p)
		if err != nil {
			return nil, err
		}
		for _, alts := range groups {
			for _, a := range alts {
				var hit *pkg
				for _, c := range r.candidates(a) {
					if r.selected[c.Name] == c {
						hit = c
						break
					}
				}
				if hit == nil {
					continue
				}
				if !out[hit.Name] {
					out[hit.Name] = true
					queue = append(queue, hit)
				}
				break
			}
		}
	}
	return out, nil
}
