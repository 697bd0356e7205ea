package cli

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	rcue "github.com/rootfsc/rootfsc/cue"
	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/schema"
	"github.com/spf13/pflag"
)

// hostAptSources are where the default mirror comes from when neither the manifest nor the
// command line names one.
var hostAptSources = []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d"}

// formatError renders CUE errors with positions relative to the working directory.
func formatError(err error) string {
	cwd, _ := os.Getwd()
	return rcue.FormatError(err, cwd)
}

// loaded is a validated manifest plus what the CLI derived for it.
type loaded struct {
	res      *rcue.Result
	lockPath string
	// builtinPolicy is the text of the manifest's built-in policy, if it names one.
	builtinPolicy []byte
	// warnings are printed on stderr by the command; they do not stop it.
	warnings []string
}

// parseManifest parses a subcommand's flags, which must leave exactly the manifest, and loads it.
func parseManifest(e *env, fs *pflag.FlagSet, args []string) (*loaded, error) {
	pos, err := parse(fs, args, 1)
	if err != nil {
		return nil, err
	}
	return load(e, pos[0])
}

// load loads and checks a manifest and prints its warnings.
func load(e *env, manifest string) (*loaded, error) {
	ctx := e.ctx
	res, err := rcue.LoadFile(ctx, manifest, rcue.Opts{})
	if err != nil {
		return nil, err
	}
	if err := rcue.NotImplemented(res); err != nil {
		return nil, err
	}
	l := &loaded{res: res, lockPath: lock.Path(res.Path)}
	if l.builtinPolicy, err = l.checkInputs(ctx); err != nil {
		return nil, err
	}
	for _, w := range l.warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	return l, nil
}

// request is the resolver input for a manifest; mirror overrides the manifest and host sources.
func (l *loaded) request(mirror string) (deb.Request, error) {
	m, rel := l.res.Manifest, l.res.Release
	if rel == nil {
		return deb.Request{}, fmt.Errorf("%s: no distro: nothing to resolve", l.res.Path)
	}
	suites, err := suiteSources(m.Mirror, mirror, rel)
	if err != nil {
		return deb.Request{}, err
	}
	pkgs := append(append([]string(nil), rel.DefaultPackages...), m.Packages...)
	var kernel string
	if m.Modules != nil {
		kernel = m.Modules.Package
	}
	return deb.Request{
		Kernel:   kernel,
		Distro:   m.Distro,
		Release:  m.Release,
		Arch:     m.Arch,
		Suites:   suites,
		Packages: pkgs,
		Keyring:  rel.Keyring,
	}, nil
}

// suiteSources picks a mirror URI for every suite of the release: the manifest's mirror, else
// --mirror/ROOTFSC_MIRROR, else the host's apt sources. A single mirror URL serves the main archive;
// other archives (debian-security) are its siblings on the same host.
func suiteSources(manifestMirror, flagMirror string, rel *schema.Release) ([]deb.SuiteSource, error) {
	base := manifestMirror
	if base == "" {
		base = flagMirror
	}
	if base == "" {
		base = os.Getenv("ROOTFSC_MIRROR")
	}
	var host []deb.SuiteSource
	if base == "" {
		var files []string
		for _, p := range hostAptSources {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				ents, _ := filepath.Glob(filepath.Join(p, "*"))
				files = append(files, ents...)
			} else if err == nil {
				files = append(files, p)
			}
		}
		var err error
		if host, err = deb.Mirrors(files...); err != nil {
			return nil, fmt.Errorf("reading the host's apt sources: %w", err)
		}
	}
	var out []deb.SuiteSource
	for _, s := range rel.Suites {
		archive := rel.Archive[s]
		if archive == "" {
			archive = "debian"
		}
		src := deb.SuiteSource{Name: s, Archive: archive, Components: rel.Components}
		if base != "" {
			u, err := url.Parse(strings.TrimRight(base, "/"))
			if err != nil || u.Scheme == "" || u.Host == "" {
				return nil, fmt.Errorf("mirror %q: not an http(s) URL", base)
			}
			if path.Base(u.Path) != archive {
				u.Path = path.Join(path.Dir(u.Path), archive)
			}
			src.URI = u.String()
		} else {
			src.URI = pickHost(host, s, archive)
			if src.URI == "" {
				return nil, fmt.Errorf("no mirror for suite %s (archive %s) in the host's apt sources; pass --mirror or set ROOTFSC_MIRROR", s, archive)
			}
		}
		out = append(out, src)
	}
	return out, nil
}

// pickHost prefers a host source carrying the suite itself, then any source of the same archive.
func pickHost(host []deb.SuiteSource, suite, archive string) string {
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

func cacheDir() string {
	if d := os.Getenv("ROOTFSC_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rootfsc")
	}
	return filepath.Join(os.TempDir(), "rootfsc-cache")
}
