package distros

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// templates are the starting points of `rootfsc distro new`, one per package family.
//
//go:embed template/*.cue
var templates embed.FS

// BuiltIn is the [Def.Origin] of the definitions embedded in rootfsc ([FS]).
const BuiltIn = "built-in"

// PathEnv names the colon-separated folders that hold user-defined distros, each as
// NAME/distro.cue.
const PathEnv = "ROOTFSC_DISTRO_PATH"

// SearchPath is $ROOTFSC_DISTRO_PATH split at its colons, empty elements left out.
func SearchPath() []string {
	var out []string
	for _, p := range strings.Split(os.Getenv(PathEnv), ":") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// validName is what a distro may be called: a folder name and a CUE label without quoting, so
// that no name can leave the folder it is looked up in.
var validName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Def is one distro definition and where it comes from.
type Def struct {
	Name string
	// Origin is [BuiltIn], or the path of the user's distro.cue.
	Origin string
	// File names the definition in positions: distros/NAME/distro.cue for a built-in one, the
	// absolute path of a user's.
	File string
	Src  []byte
}

// Finder finds distro definitions the way rootfsc looks for them: beside the manifest
// (distros/NAME/distro.cue in the manifest's folder), then in the folders of Path in order, then
// built in. The first found wins, so a folder may replace a built-in distro.
type Finder struct {
	// FS and Dir are the manifest's file system and folder in it ("." for its root); a nil FS
	// skips the manifest's folder.
	FS  fs.FS
	Dir string
	// Abs is the absolute name of Dir, for positions and [Def.Origin].
	Abs string
	// Path are folders holding NAME/distro.cue, as $ROOTFSC_DISTRO_PATH ([SearchPath]).
	Path []string
}

// Find returns the definition of distro name, or nil when there is none.
func (f Finder) Find(name string) (*Def, error) {
	if !validName.MatchString(name) {
		return nil, nil
	}
	if f.FS != nil {
		rel := path.Join(f.Dir, "distros", name, "distro.cue")
		src, err := fs.ReadFile(f.FS, rel)
		switch {
		case err == nil:
			file := filepath.Join(f.Abs, "distros", name, "distro.cue")
			return &Def{Name: name, Origin: file, File: file, Src: src}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading distro %s: %w", name, err)
		}
	}
	for _, dir := range f.Path {
		file, err := filepath.Abs(filepath.Join(dir, name, "distro.cue"))
		if err != nil {
			return nil, err
		}
		src, err := os.ReadFile(file)
		switch {
		case err == nil:
			return &Def{Name: name, Origin: file, File: file, Src: src}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading distro %s: %w", name, err)
		}
	}
	src, err := FS.ReadFile(name + "/distro.cue")
	if err != nil {
		return nil, nil
	}
	return &Def{Name: name, Origin: BuiltIn, File: "distros/" + name + "/distro.cue", Src: src}, nil
}

// Names lists every distro the finder knows, sorted.
func (f Finder) Names() ([]string, error) {
	var names []string
	add := func(fsys fs.FS, dir string) error {
		matches, err := fs.Glob(fsys, path.Join(dir, "*", "distro.cue"))
		if err != nil {
			return err
		}
		for _, m := range matches {
			n := path.Base(path.Dir(m))
			if validName.MatchString(n) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		return nil
	}
	if f.FS != nil {
		if err := add(f.FS, path.Join(f.Dir, "distros")); err != nil {
			return nil, err
		}
	}
	for _, dir := range f.Path {
		if err := add(os.DirFS(dir), "."); err != nil {
			return nil, err
		}
	}
	if err := add(FS, "."); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// Defs returns the definition of every distro the finder knows, sorted by name.
func (f Finder) Defs() ([]Def, error) {
	names, err := f.Names()
	if err != nil {
		return nil, err
	}
	var out []Def
	for _, n := range names {
		d, err := f.Find(n)
		if err != nil {
			return nil, err
		}
		if d != nil {
			out = append(out, *d)
		}
	}
	return out, nil
}

// New scaffolds a user-defined distro of the given package family ("deb" or "apk") as
// DIR/distros/NAME/distro.cue from the family's template, the way osbuilder's template/ starts a
// new rootfs-builder folder, and returns the file's path. An existing definition is left alone.
func New(dir, name, family string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("distro name %q: want lower-case letters, digits and dashes, starting with a letter", name)
	}
	tmpl, err := templates.ReadFile("template/" + family + ".cue")
	if err != nil {
		return "", fmt.Errorf("package family %q has no template (known: deb, apk)", family)
	}
	folder := filepath.Join(dir, "distros", name)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", err
	}
	file := filepath.Join(folder, "distro.cue")
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s already exists", file)
		}
		return "", err
	}
	if _, err := f.Write(bytes.ReplaceAll(tmpl, []byte("@NAME@"), []byte(name))); err != nil {
		f.Close()
		return "", err
	}
	return file, f.Close()
}

// ListIn summarises every distro a manifest in dir sees (dir/distros/NAME/distro.cue, then the
// folders of path, then the built-in ones), for `rootfsc distros`.
func ListIn(dir string, path []string) ([]DistroInfo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	defs, err := Finder{FS: os.DirFS(abs), Dir: ".", Abs: abs, Path: path}.Defs()
	if err != nil {
		return nil, err
	}
	return Infos(defs)
}
