package deb

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/rootfsc/rootfsc/schema"
)

// HostAptSources are where the default mirror comes from when neither the manifest nor the
// command line names one.
var HostAptSources = []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d"}

// suiteSources picks a mirror URI for every suite of the release: mirror when set (the
// manifest's, --mirror, $ROOTFSC_MIRROR or the frontend's option), else the host's apt sources.
// A single mirror URL serves the main archive; other archives (debian-security) are its siblings
// on the same host.
func suiteSources(mirror string, rel *schema.Release) ([]SuiteSource, error) {
	var host []SuiteSource
	if mirror == "" {
		var files []string
		for _, p := range HostAptSources {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				ents, _ := filepath.Glob(filepath.Join(p, "*"))
				files = append(files, ents...)
			} else if err == nil {
				files = append(files, p)
			}
		}
		var err error
		if host, err = Mirrors(files...); err != nil {
			return nil, fmt.Errorf("reading the host's apt sources: %w", err)
		}
	}
	var out []SuiteSource
	for _, s := range rel.Suites {
		archive := rel.Archive[s]
		if archive == "" {
			archive = "debian"
		}
		src := SuiteSource{Name: s, Archive: archive, Components: rel.Components}
		if mirror != "" {
			u, err := url.Parse(strings.TrimRight(mirror, "/"))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("mirror %q: not an http(s) URL", mirror)
			}
			if path.Base(u.Path) != archive {
				u.Path = path.Join(path.Dir(u.Path), archive)
			}
			src.URI = u.String()
		} else {
			src.URI = pickHost(host, s, archive)
			if src.URI == "" {
				return nil, fmt.Errorf("no mirror for suite %s (archive %s) in the host's apt sources; "+
					"set mirror in the manifest, pass --mirror or set ROOTFSC_MIRROR (buildctl: --opt mirror=URL)", s, archive)
			}
		}
		out = append(out, src)
	}
	return out, nil
}

// pickHost prefers a host source carrying the suite itself, then any source of the same archive.
func pickHost(host []SuiteSource, suite, archive string) string {
	for _, h := range host {
		if h.Name == suite {
			return h.URI
		}
	}
	for _, h := range host {
		if h.Archive == archive {
			return h.URI
		}
	}
	return ""
}
