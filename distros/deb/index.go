package deb

import (
	"bytes"
	"fmt"
	"strings"

	"pault.ag/go/debian/version"
)

// pkg is one stanza of a Packages index, with only the fields the resolver needs.
type pkg struct {
	Name, Version, Architecture, Filename, SHA256 string
	Size                                          int64
	Suite                                         string
	Essential                                     bool
	Priority                                      string
	Depends, PreDepends, Conflicts, Breaks        string
	Provides                                      string

	ver    version.Version
	parsed bool
}

func (p *pkg) version() version.Version {
	if !p.parsed {
		p.ver, _ = version.Parse(p.Version)
		p.parsed = true
	}
	return p.ver
}

// parsePackages scans a decompressed Packages index. Only stanzas whose Architecture is arch or "all" are kept.
func parsePackages(b []byte, suite, arch string, emit func(*pkg)) error {
	for len(b) > 0 {
		var st []byte
		st, b = nextStanza(b)
		p := &pkg{Suite: suite}
		var cur *string
		for len(st) > 0 {
			var line []byte
			if i := bytes.IndexByte(st, '\n'); i >= 0 {
				line, st = st[:i], st[i+1:]
			} else {
				line, st = st, nil
			}
			if len(line) == 0 {
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				if cur != nil {
					*cur += " " + string(bytes.TrimSpace(line))
				}
				continue
			}
			cur = nil
			i := bytes.IndexByte(line, ':')
			if i < 0 {
				continue
			}
			v := string(bytes.TrimSpace(line[i+1:]))
			switch string(line[:i]) {
			case "Package":
				p.Name = v
			case "Version":
				p.Version = v
			case "Architecture":
				p.Architecture = v
			case "Filename":
				p.Filename = v
			case "SHA256":
				p.SHA256 = v
			case "Size":
				n, err := parseSize(v)
				if err != nil {
					return fmt.Errorf("package %s: bad Size %q", p.Name, v)
				}
				p.Size = n
			case "Essential":
				p.Essential = v == "yes"
			case "Priority":
				p.Priority = v
			case "Depends":
				p.Depends, cur = v, &p.Depends
			case "Pre-Depends":
				p.PreDepends, cur = v, &p.PreDepends
			case "Conflicts":
				p.Conflicts, cur = v, &p.Conflicts
			case "Breaks":
				p.Breaks, cur = v, &p.Breaks
			case "Provides":
				p.Provides, cur = v, &p.Provides
			}
		}
		if p.Name == "" {
			continue
		}
		if p.Architecture != arch && p.Architecture != "all" {
			continue
		}
		emit(p)
	}
	return nil
}

// rel is one package relation: a name with an optional version constraint.
type rel struct {
	Name, Op, Version string
}

func (r rel) String() string {
	if r.Op == "" {
		return r.Name
	}
	return fmt.Sprintf("%s (%s %s)", r.Name, r.Op, r.Version)
}

// parseRelations parses a relation field ("a (>= 1) | b, c:any") into and-of-or groups.
func parseRelations(s string) ([][]rel, error) {
	var out [][]rel
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, group := range strings.Split(s, ",") {
		var alts []rel
		for _, a := range strings.Split(group, "|") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			// Drop architecture restrictions and build profiles, which binary indexes rarely carry.
			if i := strings.IndexAny(a, "[<"); i >= 0 && !strings.Contains(a[:i], "(") {
				a = strings.TrimSpace(a[:i])
			}
			var r rel
			name := a
			if i := strings.IndexByte(a, '('); i >= 0 {
				j := strings.IndexByte(a, ')')
				if j < i {
					return nil, fmt.Errorf("bad relation %q", a)
				}
				name = strings.TrimSpace(a[:i])
				c := strings.TrimSpace(a[i+1 : j])
				k := 0
				for k < len(c) && strings.IndexByte("<>=", c[k]) >= 0 {
					k++
				}
				r.Op, r.Version = c[:k], strings.TrimSpace(c[k:])
				if r.Op == "" || r.Version == "" {
					return nil, fmt.Errorf("bad relation %q", a)
				}
			}
			if i := strings.IndexByte(name, ':'); i >= 0 { // name:any, name:native, name:amd64
				name = name[:i]
			}
			r.Name = name
			alts = append(alts, r)
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out, nil
}

// satisfies reports whether version v meets the constraint op want.
func satisfies(v version.Version, op, want string) bool {
	if op == "" {
		return true
	}
	w, err := version.Parse(want)
	if err != nil {
		return false
	}
	c := version.Compare(v, w)
	switch op {
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case "<=", "<": // the deprecated "<" means "<="
		return c <= 0
	case ">>":
		return c > 0
	case "<<":
		return c < 0
	case ">": // the deprecated ">" means ">="
		return c >= 0
	}
	return false
}
