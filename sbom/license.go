package sbom

import (
	"maps"
	"regexp"
	"strings"
)

// Debian's copyright files name licenses with DEP-5's short names (GPL-2+, Expat, BSD-3-clause);
// the ones with an SPDX identifier are converted, every other name becomes a LicenseRef of the
// document (LicenseRef-public-domain), so the expression is always valid SPDX and never claims
// more than the package said.

var spdxNames = map[string]string{
	"apache-2":         "Apache-2.0",
	"apache-2.0":       "Apache-2.0",
	"artistic-2.0":     "Artistic-2.0",
	"bsd-2-clause":     "BSD-2-Clause",
	"bsd-3-clause":     "BSD-3-Clause",
	"bsd-4-clause":     "BSD-4-Clause",
	"bsl-1.0":          "BSL-1.0",
	"cc0-1.0":          "CC0-1.0",
	"curl":             "curl",
	"expat":            "MIT",
	"isc":              "ISC",
	"mit":              "MIT",
	"mpl-1.1":          "MPL-1.1",
	"mpl-2.0":          "MPL-2.0",
	"openssl":          "OpenSSL",
	"unicode-dfs-2016": "Unicode-DFS-2016",
	"x11":              "X11",
	"zlib":             "Zlib",
}

// gnu matches the GNU licenses by DEP-5's scheme: name-version, "+" for "or any later version".
var gnu = regexp.MustCompile(`^(gpl|lgpl|agpl|gfdl)-([0-9]+(?:\.[0-9]+)?)(\+?)$`)

var gnuVersions = map[string]map[string]string{
	"gpl":  {"1": "GPL-1.0", "1.0": "GPL-1.0", "2": "GPL-2.0", "2.0": "GPL-2.0", "3": "GPL-3.0", "3.0": "GPL-3.0"},
	"lgpl": {"2": "LGPL-2.0", "2.0": "LGPL-2.0", "2.1": "LGPL-2.1", "3": "LGPL-3.0", "3.0": "LGPL-3.0"},
	"agpl": {"3": "AGPL-3.0", "3.0": "AGPL-3.0"},
	"gfdl": {"1.1": "GFDL-1.1", "1.2": "GFDL-1.2", "1.3": "GFDL-1.3"},
}

// licenseID is one DEP-5 short name as an SPDX id, and whether it is a LicenseRef.
func licenseID(name string) (string, bool) {
	l := strings.ToLower(name)
	if id, ok := spdxNames[l]; ok {
		return id, false
	}
	if m := gnu.FindStringSubmatch(l); m != nil {
		if id, ok := gnuVersions[m[1]][m[2]]; ok {
			if m[3] == "+" {
				return id + "-or-later", false
			}
			return id + "-only", false
		}
	}
	return "LicenseRef-" + idSafe(name), true
}

// declared is the SPDX expression of a package's DEP-5 License lines (all of them: AND) and the
// names of the LicenseRefs it uses, by id.
func declared(lines []string) (string, map[string]string) {
	refs := map[string]string{}
	var parts []string
	for _, line := range lines {
		expr, compound := lineExpr(line, refs)
		if compound && len(lines) > 1 {
			expr = "(" + expr + ")"
		}
		parts = append(parts, expr)
	}
	return strings.Join(parts, " AND "), refs
}

// lineExpr converts one License line: names joined by "or" or by "and"; "A, and B" as DEP-5
// writes (A) AND (B); a line it cannot read ("GPL-2 with OpenSSL exception", parentheses, "or"
// and "and" mixed without commas) is one LicenseRef named by the whole line.
func lineExpr(line string, refs map[string]string) (string, bool) {
	whole := func() (string, bool) {
		id, _ := licenseID(line)
		refs[id] = line
		return id, false
	}
	if strings.ContainsAny(line, "()") {
		return whole()
	}
	groups := strings.Split(line, ",")
	var out []string
	mine := map[string]string{} // kept only if the whole line reads
	for i, g := range groups {
		words := strings.Fields(g)
		if i > 0 && len(words) > 0 && strings.EqualFold(words[0], "and") {
			words = words[1:]
		}
		if len(words) == 0 {
			return whole()
		}
		var op string
		var ids []string
		for j, w := range words {
			if j%2 == 1 {
				lw := strings.ToLower(w)
				if lw != "or" && lw != "and" || op != "" && op != lw {
					return whole()
				}
				op = lw
				continue
			}
			id, ref := licenseID(w)
			if ref {
				mine[id] = w
			}
			ids = append(ids, id)
		}
		if len(words)%2 == 0 {
			return whole()
		}
		e := strings.Join(ids, " "+strings.ToUpper(op)+" ")
		if len(groups) > 1 && len(ids) > 1 {
			e = "(" + e + ")"
		}
		out = append(out, e)
	}
	maps.Copy(refs, mine)
	return strings.Join(out, " AND "), len(out) > 1 || strings.Contains(out[0], " ")
}
