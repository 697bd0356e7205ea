package deb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
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
	return scanPackages(bytes.NewReader(b), suite, arch, emit)
}

// maxIndexLine bounds one line of a Packages index: the longest in Debian (a Provides of a Rust
// library) are tens of KiB. The buffer grows only as far as the longest line needs.
const maxIndexLine = 16 << 20

// scanPackages is [parsePackages] over a stream, so that a 50 MB index is never held whole: a
// stanza ends at an empty line, and only the fields of [pkg] are kept.
func scanPackages(rd io.Reader, suite, arch string, emit func(*pkg)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), maxIndexLine)
	sc.Split(splitLF)
	p := &pkg{Suite: suite}
	var cur *string
	flush := func() {
		if p.Name != "" && (p.Architecture == arch || p.Architecture == "all") {
			emit(p)
		}
		p, cur = &pkg{Suite: suite}, nil
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			flush()
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
		var field *string
		switch string(line[:i]) {
		case "Package":
			field = &p.Name
		case "Version":
			field = &p.Version
		case "Architecture":
			field = &p.Architecture
		case "Filename":
			field = &p.Filename
		case "SHA256":
			field = &p.SHA256
		case "Priority":
			field = &p.Priority
		case "Depends":
			field, cur = &p.Depends, &p.Depends
		case "Pre-Depends":
			field, cur = &p.PreDepends, &p.PreDepends
		case "Conflicts":
			field, cur = &p.Conflicts, &p.Conflicts
		case "Breaks":
			field, cur = &p.Breaks, &p.Breaks
		case "Provides":
			field, cur = &p.Provides, &p.Provides
		case "Size":
			v := string(bytes.TrimSpace(line[i+1:]))
			n, err := parseSize(v)
			if err != nil {
				return fmt.Errorf("package %s: bad Size %q", p.Name, v)
			}
			p.Size = n
		case "Essential":
			p.Essential = string(bytes.TrimSpace(line[i+1:])) == "yes"
		}
		if field != nil {
			*field = string(bytes.TrimSpace(line[i+1:]))
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("a line of the index is longer than %d bytes", maxIndexLine)
		}
		return err
	}
	flush()
	return nil
}

// splitLF splits at '\n' alone: bufio.ScanLines would also drop a '\r', and a line holding only
// "\r" would then end a stanza where dpkg does not.
func splitLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
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
