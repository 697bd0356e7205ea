package apk

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rootfsc/rootfsc/distros/family"
)

// dep is one dependency as apk writes it: [!]NAME[@TAG][OP VERSION], OP one of = < > <= >= ~
// (fuzzy: the version starts with VERSION's components) and their combinations with ~.
type dep struct {
	conflict bool
	name     string
	op       string
	version  string
}

func (d dep) String() string {
	s := d.name + d.op + d.version
	if d.conflict {
		s = "!" + s
	}
	return s
}

func parseDep(s string) (dep, error) {
	var d dep
	if strings.HasPrefix(s, "!") {
		d.conflict, s = true, s[1:]
	}
	i := strings.IndexAny(s, "<>=~")
	if i < 0 {
		d.name = s
	} else {
		d.name = s[:i]
		j := i
		for j < len(s) && strings.IndexByte("<>=~", s[j]) >= 0 {
			j++
		}
		d.op, d.version = s[i:j], s[j:]
		switch d.op {
		case "=", "<", ">", "<=", ">=", "~", "=~", ">~", "<~":
		default:
			return dep{}, fmt.Errorf("dependency %q: unknown operator %q", s, d.op)
		}
		if d.version == "" {
			return dep{}, fmt.Errorf("dependency %q: no version after %q", s, d.op)
		}
	}
	if at := strings.IndexByte(d.name, '@'); at >= 0 {
		d.name = d.name[:at] // a repository tag: every configured repository is searched
	}
	if d.name == "" {
		return dep{}, fmt.Errorf("dependency %q: no name", s)
	}
	return d, nil
}

// matches reports whether version v (of a package, or a versioned provide) satisfies d's
// constraint; an unversioned provide (v == "") satisfies only a dependency without one.
func (d dep) matches(v string) bool {
	if d.op == "" {
		return true
	}
	if v == "" {
		return false
	}
	c := compareVersions(v, d.version)
	switch d.op {
	case "=":
		return c == 0
	case "<":
		return c < 0
	case ">":
		return c > 0
	case "<=":
		return c <= 0
	case ">=":
		return c >= 0
	case "~", "=~":
		return fuzzyMatch(v, d.version)
	case ">~":
		return c > 0 || fuzzyMatch(v, d.version)
	case "<~":
		return c < 0 || fuzzyMatch(v, d.version)
	}
	return false
}

// provide is one name a package satisfies: its own, or one of its p: entries.
type provide struct {
	pkg       *Pkg
	version   string // "" for an unversioned provide
	own       bool
	priority  int
	fromField string
}

// db is the merged indexes of a release's repositories.
type db struct {
	byName    map[string][]*Pkg // every version, highest first
	providers map[string][]provide
}

func newDB(pkgs []*Pkg) *db {
	d := &db{byName: map[string][]*Pkg{}, providers: map[string][]provide{}}
	for _, p := range pkgs {
		d.byName[p.Name] = append(d.byName[p.Name], p)
		for _, pr := range p.Provides {
			name, ver, _ := strings.Cut(pr, "=")
			d.providers[name] = append(d.providers[name], provide{pkg: p, version: ver, priority: p.ProviderPriority, fromField: pr})
		}
	}
	for _, ps := range d.byName {
		// Highest version first; between repositories with the same version, the first listed.
		slices.SortStableFunc(ps, func(a, b *Pkg) int { return -compareVersions(a.Version, b.Version) })
	}
	return d
}

// UnknownError is a name nothing in the indexes is or provides (with the constraint, nothing
// satisfies).
type UnknownError struct {
	Dep string
	// RequiredBy is the package whose dependency it is; "" for a requested package.
	RequiredBy string
	// Requested is the package as requested ("iptables=1.8.10-r3") when RequiredBy is "".
	Requested string
	// Versions are the versions of a package by that name, when only the constraint failed.
	Versions []string
}

func (e *UnknownError) Error() string {
	what := fmt.Sprintf("no package provides %q", e.Dep)
	if len(e.Versions) > 0 {
		what = fmt.Sprintf("no version of %q satisfies %q (the indexes have %s)", strings.SplitN(strings.TrimLeft(e.Dep, "!"), "=", 2)[0], e.Dep, strings.Join(e.Versions, ", "))
	}
	if e.RequiredBy != "" {
		return what + " (required by " + e.RequiredBy + ")"
	}
	return what
}

// ErrConflict is wrapped by the errors for two chosen packages one of which forbids the other.
var ErrConflict = errors.New("conflict")

// candidates returns what can satisfy d, best first: packages of that name (highest version
// first); else the providers, by provider_priority, then provided version, then name.
func (x *db) candidates(d dep) []provide {
	var out []provide
	for _, p := range x.byName[d.name] {
		if d.matches(p.Version) {
			out = append(out, provide{pkg: p, version: p.Version, own: true})
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, pr := range x.providers[d.name] {
		if d.matches(pr.version) {
			out = append(out, pr)
		}
	}
	slices.SortStableFunc(out, func(a, b provide) int {
		if c := cmp.Compare(b.priority, a.priority); c != 0 {
			return c
		}
		if c := compareVersions(b.version, a.version); c != 0 {
			return c
		}
		if c := cmp.Compare(a.pkg.Name, b.pkg.Name); c != 0 {
			return c
		}
		return compareVersions(b.pkg.Version, a.pkg.Version)
	})
	return out
}

// satisfiedBy reports whether the chosen package p satisfies d.
func satisfiedBy(d dep, p *Pkg) bool {
	if p.Name == d.name && d.matches(p.Version) {
		return true
	}
	for _, pr := range p.Provides {
		name, ver, _ := strings.Cut(pr, "=")
		if name == d.name && d.matches(ver) {
			return true
		}
	}
	return false
}

// solve computes the closure of the requested packages: each dependency is met by a package
// already chosen if one satisfies it, else by the best candidate; then the packages whose
// install_if conditions the set meets are added; finally no chosen package may be one another
// forbids (!NAME). At most one version of a name is chosen. The result is sorted by name.
func solve(x *db, want []string) ([]*Pkg, error) {
	type item struct {
		d  dep
		by string
		// req is the package as requested, for an item of want.
		req string
	}
	chosen := map[string]*Pkg{}
	var order []*Pkg
	var queue []item
	var conflicts []item
	for _, w := range want {
		d, err := parseDep(w)
		if err != nil {
			return nil, &family.PackageError{Package: w, Msg: err.Error()}
		}
		queue = append(queue, item{d, "", w})
	}
	// A requested package with a version constraint (a pin) is chosen before the unconstrained
	// requests, so that "busybox" in the default set is met by the manifest's "busybox=1.36.1-r5"
	// rather than by the highest version, which the pin would then contradict.
	slices.SortStableFunc(queue, func(a, b item) int {
		return cmp.Compare(min(len(b.d.op), 1), min(len(a.d.op), 1))
	})
	choose := func(p *Pkg) error {
		chosen[p.Name] = p
		order = append(order, p)
		for _, s := range p.Depends {
			d, err := parseDep(s)
			if err != nil {
				return fmt.Errorf("%s %s: %w", p.Name, p.Version, err)
			}
			queue = append(queue, item{d, p.Name, ""})
		}
		return nil
	}
	drain := func() error {
		for len(queue) > 0 {
			it := queue[0]
			queue = queue[1:]
			if it.d.conflict {
				conflicts = append(conflicts, it)
				continue
			}
			if p, ok := chosen[it.d.name]; ok && !satisfiedBy(it.d, p) {
				return &VersionError{Dep: it.d.String(), RequiredBy: it.by, Requested: it.req, Chosen: p.Name + "-" + p.Version}
			}
			if slices.ContainsFunc(order, func(p *Pkg) bool { return satisfiedBy(it.d, p) }) {
				continue
			}
			c := x.candidates(it.d)
			if len(c) == 0 {
				e := &UnknownError{Dep: it.d.String(), RequiredBy: it.by, Requested: it.req}
				for _, p := range x.byName[it.d.name] {
					e.Versions = append(e.Versions, p.Version)
				}
				return e
			}
			best := c[0]
			if !best.own && len(c) > 1 {
				next := c[1]
				if next.pkg.Name != best.pkg.Name && next.priority == best.priority && best.version == "" && next.version == "" {
					return fmt.Errorf("%q is provided by %s and %s, neither with a higher provider_priority: name one in packages", it.d.name, best.pkg.Name, next.pkg.Name)
				}
			}
			if p, ok := chosen[best.pkg.Name]; ok && p != best.pkg {
				return &VersionError{Dep: it.d.String(), RequiredBy: it.by, Requested: it.req, Chosen: p.Name + "-" + p.Version}
			}
			if err := choose(best.pkg); err != nil {
				return err
			}
		}
		return nil
	}
	if err := drain(); err != nil {
		return nil, err
	}
	// install_if: a package whose every condition the chosen set meets comes too (apk's
	// automatic subpackages, like a -openrc with openrc installed).
	names := slices.Sorted(maps.Keys(x.byName))
	for added := true; added; {
		added = false
		for _, n := range names {
			p := x.byName[n][0]
			if _, ok := chosen[n]; ok || len(p.InstallIf) == 0 {
				continue
			}
			all := true
			for _, cond := range p.InstallIf {
				d, err := parseDep(cond)
				if err != nil {
					return nil, fmt.Errorf("%s %s: install_if: %w", p.Name, p.Version, err)
				}
				if !slices.ContainsFunc(order, func(q *Pkg) bool { return satisfiedBy(d, q) }) {
					all = false
					break
				}
			}
			if all {
				if err := choose(p); err != nil {
					return nil, err
				}
				if err := drain(); err != nil {
					return nil, err
				}
				added = true
			}
		}
	}
	for _, c := range conflicts {
		for _, p := range order {
			if p.Name != c.by && satisfiedBy(dep{name: c.d.name, op: c.d.op, version: c.d.version}, p) {
				by := c.by
				if by == "" {
					by = "the request"
				}
				return nil, fmt.Errorf("%s forbids %s, which %s-%s is: %w", by, c.d, p.Name, p.Version, ErrConflict)
			}
		}
	}
	slices.SortFunc(order, func(a, b *Pkg) int { return cmp.Compare(a.Name, b.Name) })
	return order, nil
}

// VersionError is a dependency the chosen version of a package does not satisfy.
type VersionError struct {
	Dep, RequiredBy, Chosen string
	// Requested is the package as requested when RequiredBy is "".
	Requested string
}

func (e *VersionError) Error() string {
	by := e.RequiredBy
	if by == "" {
		by = "the request"
	}
	return fmt.Sprintf("%s needs %s, but %s is chosen", by, e.Dep, e.Chosen)
}

// packageError turns the solver's error about a requested package (not a dependency) into the
// [family.PackageError] the pipeline places in the manifest: an unknown name with the closest one
// the indexes have, or a pin ("name=version", apk's syntax as apt's) with the versions they have.
// Other errors come back as they are.
func packageError(err error, x *db, release string) error {
	var ue *UnknownError
	var ve *VersionError
	switch {
	case errors.As(err, &ue) && ue.RequiredBy == "" && ue.Requested != "":
		d, _ := parseDep(ue.Requested)
		if len(ue.Versions) == 0 && len(x.providers[d.name]) == 0 {
			msg := fmt.Sprintf("unknown package %q in %s", d.name, release)
			if s := family.Suggest(d.name, maps.Keys(x.byName)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return &family.PackageError{Package: ue.Requested, Msg: msg}
		}
		have := ue.Versions
		if len(have) == 0 {
			for _, pr := range x.providers[d.name] {
				if pr.version != "" {
					have = append(have, pr.version)
				}
			}
		}
		have = slices.Clone(have)
		slices.SortFunc(have, compareVersions)
		have = slices.Compact(have)
		if d.op == "=" && len(ue.Versions) > 0 {
			return &family.PackageError{Package: ue.Requested, Msg: fmt.Sprintf("%s: package %q has no version %q in %s (the index has %s)",
				ue.Requested, d.name, d.version, release, strings.Join(have, ", "))}
		}
		msg := fmt.Sprintf("%s: nothing in %s satisfies %q", ue.Requested, release, d.String())
		if len(have) > 0 {
			msg += fmt.Sprintf(" (the index has %s %s)", d.name, strings.Join(have, ", "))
		}
		return &family.PackageError{Package: ue.Requested, Msg: msg}
	case errors.As(err, &ve) && ve.RequiredBy == "" && ve.Requested != "":
		return &family.PackageError{Package: ve.Requested, Msg: fmt.Sprintf("%s: %s is chosen by another request", ve.Requested, ve.Chosen)}
	}
	return err
}
