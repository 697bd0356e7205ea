package distros

import (
	"cmp"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"

	"github.com/rootfsc/rootfsc/distros/apk"
	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/family"
)

// FS holds <distro>/distro.cue for every distro rootfsc knows.
//
//go:embed */distro.cue
var FS embed.FS

// DistroInfo summarises one distro for `rootfsc distros`.
type DistroInfo struct {
	Name     string
	Family   string
	Releases []string // sorted
	// Keyrings are the keyring files the releases name, sorted and unique.
	Keyrings []string
}

// List returns the distros in [FS], sorted by name. It panics if an embedded
// definition does not compile, which the package tests rule out.
func List() []DistroInfo {
	files, err := fs.Glob(FS, "*/distro.cue")
	if err != nil {
		panic(err)
	}
	ctx := cuecontext.New()
	var out []DistroInfo
	for _, f := range files {
		src, err := FS.ReadFile(f)
		if err != nil {
			panic(err)
		}
		v := ctx.CompileBytes(src, cue.Filename(path.Join("distros", f)))
		var d struct {
			Name     string `json:"name"`
			Family   string `json:"family"`
			Releases map[string]struct {
				Keyring string `json:"keyring"`
			} `json:"releases"`
		}
		if err := v.Decode(&d); err != nil {
			panic(fmt.Sprintf("distros: %s: %v", f, err))
		}
		info := DistroInfo{Name: d.Name, Family: d.Family}
		for r, rel := range d.Releases {
			info.Releases = append(info.Releases, r)
			if rel.Keyring != "" && !slices.Contains(info.Keyrings, rel.Keyring) {
				info.Keyrings = append(info.Keyrings, rel.Keyring)
			}
		}
		slices.Sort(info.Releases)
		slices.Sort(info.Keyrings)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b DistroInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Family returns the Go code of the package family a distro definition names in its family
// field; adding a family is a case here and a folder under distros/.
func Family(name string) (family.Family, error) {
	switch name {
	case "deb":
		return deb.Family{}, nil
	case "apk":
		return apk.Family{}, nil
	}
	return nil, fmt.Errorf("package family %q is not implemented (known: apk, deb)", name)
}
