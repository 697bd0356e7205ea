package cue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	cuelang "cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/token"

	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/schema"
)

var mu sync.Mutex

// Opts configures [Load]. It is empty for now; it exists so options can be
// added without changing the signature.
type Opts struct{}

// Result is a loaded, validated manifest.
type Result struct {
	// Manifest is the decoded manifest with the schema's defaults applied.
	Manifest *schema.Manifest
	// Release is the manifest's distro release; nil without a distro
	// (overlay mode).
	Release *schema.Release
	// Family is the distro's package family ("deb"); "" without a distro.
	Family string
	// Dir is the absolute directory of the manifest; relative paths in the
	// manifest (agent.file, files.source, …) are relative to it.
	Dir string
	// Path is the absolute path of the manifest file or directory.
	Path string
	// Value is the unified, validated CUE value.
	Value cuelang.Value

	raw cuelang.Value // the manifest alone, for positions in the user's files
}

// Load reads the manifest at path (a .cue file, or a directory whose .cue
// files form one manifest), unifies it with #Manifest and its distro
// definition, checks that it is concrete and decodes it. Errors are CUE
// errors carrying file:line:col; print them with [FormatError].
func Load(ctx context.Context, path string, opts Opts) (*Result, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("loading manifest: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("loading manifest: %w", err)
	}
	dir, files := filepath.Dir(abs), []string{abs}
	if fi.IsDir() {
		dir = abs
		files, err = filepath.Glob(filepath.Join(abs, "*.cue"))
		if err != nil {
			return nil, fmt.Errorf("loading manifest: %w", err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("loading manifest: no .cue files in %s", path)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The schema's cue.Context is shared and not safe for concurrent use.
	mu.Lock()
	defer mu.Unlock()
	insts := load.Instances(files, &load.Config{Dir: dir})
	inst := insts[0]
	if inst.Err != nil {
		return nil, cueerrors.Wrapf(inst.Err, token.NoPos, "loading manifest")
	}
	manifest := schema.Lookup("#Manifest")
	cctx := manifest.Context()
	v := cctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		return nil, cueerrors.Wrapf(err, token.NoPos, "loading manifest")
	}
	res := &Result{Dir: dir, Path: abs, raw: v}
	v = manifest.Unify(v)

	var distro cuelang.Value
	if res.raw.LookupPath(cuelang.ParsePath("distro")).Exists() {
		distro, res.Family, err = distroDef(cctx, res.raw.LookupPath(cuelang.ParsePath("distro")))
		if err != nil {
			return nil, err
		}
		if rel := res.raw.LookupPath(cuelang.ParsePath("release")); rel.Exists() {
			name, err := rel.String()
			if err != nil {
				return nil, cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "release")
			}
			rv := distro.LookupPath(cuelang.MakePath(cuelang.Str("releases"), cuelang.Str(name)))
			if !rv.Exists() {
				return nil, unknown(rel, "release", name, fieldNames(distro.LookupPath(cuelang.ParsePath("releases"))))
			}
			res.Release = new(schema.Release)
			if err := rv.Decode(res.Release); err != nil {
				return nil, cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "decoding release %s", name)
			}
		}
	}

	if err := v.Validate(cuelang.Concrete(true)); err != nil {
		return nil, userErrors(err, res.raw)
	}
	res.Manifest = new(schema.Manifest)
	if err := v.Decode(res.Manifest); err != nil {
		return nil, cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "decoding manifest")
	}
	res.Value = v
	return res, nil
}

// distroDef finds the definition of the distro named by d in [distros.FS] and
// unifies it with #Distro.
func distroDef(cctx *cuelang.Context, d cuelang.Value) (cuelang.Value, string, error) {
	name, err := d.String()
	if err != nil {
		return cuelang.Value{}, "", cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "distro")
	}
	var known []string
	for _, info := range distros.List() {
		known = append(known, info.Name)
	}
	if !slices.Contains(known, name) {
		return cuelang.Value{}, "", unknown(d, "distro", name, known)
	}
	file := name + "/distro.cue"
	src, err := distros.FS.ReadFile(file)
	if err != nil {
		return cuelang.Value{}, "", fmt.Errorf("reading distro %s: %w", name, err)
	}
	dv := cctx.CompileBytes(src, cuelang.Filename("distros/"+file))
	dv = schema.Lookup("#Distro").Unify(dv)
	if err := dv.Validate(cuelang.Concrete(true)); err != nil {
		return cuelang.Value{}, "", cueerrors.Wrapf(err, token.NoPos, "distro %s", name)
	}
	family, err := dv.LookupPath(cuelang.ParsePath("family")).String()
	if err != nil {
		return cuelang.Value{}, "", cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "distro %s", name)
	}
	return dv, family, nil
}

// unknown is the error for a distro or release name that has no definition.
func unknown(v cuelang.Value, field, name string, known []string) error {
	return &posError{
		pos:  v.Pos(),
		path: []string{field},
		msg:  fmt.Sprintf("unknown %s %q (known: %s)", field, name, strings.Join(known, ", ")),
	}
}

func fieldNames(v cuelang.Value) []string {
	var names []string
	it, err := v.Fields()
	if err != nil {
		return nil
	}
	for it.Next() {
		names = append(names, it.Selector().Unquoted())
	}
	slices.Sort(names)
	return names
}
