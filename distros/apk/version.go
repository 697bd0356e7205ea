package apk

import (
	"strconv"
	"strings"
)

// Alpine versions: NUMBER{.NUMBER}[LETTER]{_SUFFIX[NUMBER]}[-rNUMBER], as apk-tools compares
// them. Suffixes before the release sort below it (_alpha < _beta < _pre < _rc), those after
// above it (_cvs < _svn < _git < _hg < _p).
var suffixRank = map[string]int{"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}

type version struct {
	nums     []string
	letter   byte
	suffixes []suffix
	rev      int64
	valid    bool
}

type suffix struct {
	rank int
	num  int64
}

// parseVersion splits an apk version; valid is false when it does not follow the rules above
// (such a version then only equals itself).
func parseVersion(s string) version {
	var v version
	rest := s
	if i := strings.LastIndex(rest, "-r"); i >= 0 {
		n, err := strconv.ParseInt(rest[i+2:], 10, 64)
		if err != nil {
			return version{}
		}
		v.rev, rest = n, rest[:i]
	}
	if i := strings.IndexByte(rest, '_'); i >= 0 {
		for _, part := range strings.Split(rest[i+1:], "_") {
			j := 0
			for j < len(part) && part[j] >= 'a' && part[j] <= 'z' {
				j++
			}
			rank, ok := suffixRank[part[:j]]
			if !ok {
				return version{}
			}
			var n int64
			if j < len(part) {
				var err error
				if n, err = strconv.ParseInt(part[j:], 10, 64); err != nil {
					return version{}
				}
			}
			v.suffixes = append(v.suffixes, suffix{rank, n})
		}
		rest = rest[:i]
	}
	if n := len(rest); n > 0 && rest[n-1] >= 'a' && rest[n-1] <= 'z' {
		v.letter, rest = rest[n-1], rest[:n-1]
	}
	for _, p := range strings.Split(rest, ".") {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return version{}
		}
		v.nums = append(v.nums, p)
	}
	v.valid = true
	return v
}

// compareVersions compares two apk versions: -1, 0 or 1.
func compareVersions(a, b string) int {
	if a == b {
		return 0
	}
	va, vb := parseVersion(a), parseVersion(b)
	if !va.valid || !vb.valid {
		return strings.Compare(a, b)
	}
	for i := 0; i < len(va.nums) && i < len(vb.nums); i++ {
		if c := compareNum(va.nums[i], vb.nums[i], i > 0); c != 0 {
			return c
		}
	}
	if c := cmpInt(int64(len(va.nums)), int64(len(vb.nums))); c != 0 {
		return c
	}
	if c := cmpInt(int64(va.letter), int64(vb.letter)); c != 0 {
		return c
	}
	for i := 0; i < len(va.suffixes) || i < len(vb.suffixes); i++ {
		var sa, sb suffix // rank 0: no suffix, between _rc and _cvs
		if i < len(va.suffixes) {
			sa = va.suffixes[i]
		}
		if i < len(vb.suffixes) {
			sb = vb.suffixes[i]
		}
		if c := cmpInt(int64(sa.rank), int64(sb.rank)); c != 0 {
			return c
		}
		if c := cmpInt(sa.num, sb.num); c != 0 {
			return c
		}
	}
	return cmpInt(va.rev, vb.rev)
}

// compareNum compares version numbers; after the first, one with a leading zero is a fraction
// and compares as a string (1.01 < 1.1), as apk does.
func compareNum(a, b string, fraction bool) int {
	if fraction && (strings.HasPrefix(a, "0") || strings.HasPrefix(b, "0")) {
		return strings.Compare(a, b)
	}
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if c := cmpInt(int64(len(a)), int64(len(b))); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fuzzyMatch is apk's "~": v starts with the constraint's components (1.2 matches 1.2.3 and
// 1.2-r1, not 1.20).
func fuzzyMatch(v, want string) bool {
	if v == want {
		return true
	}
	if !strings.HasPrefix(v, want) {
		return false
	}
	next := v[len(want)]
	return next == '.' || next == '-' || next == '_' || (next >= 'a' && next <= 'z')
}
