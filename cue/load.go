package cue

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/token"

	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/schema"
)

// Opts configures [Load].
type Opts struct {
	// Dir is the absolute folder the manifest's files are named under in positions and
	// [Result.Dir] (the manifest's folder on disk for the CLI, a fixed name in the frontend).
	// Default "/".
	Dir string
	// DistroPath are folders holding user-defined distros as NAME/distro.cue
	// ($ROOTFSC_DISTRO_PATH, [distros.SearchPath]); distros/NAME/distro.cue beside the manifest
	// comes first, the built-in ones last.
	DistroPath []string
}

// Result is a loaded, validated manifest.
type Result struct {
	// Manifest is the decoded manifest with the schema's defaults applied.
	Manifest *schema.Manifest
	// Release is the manifest's distro release; nil without a distro
	// (overlay mode).
	Release *schema.Release
	// Family is the distro's package family ("deb"); "" without a distro.
	Family string
	// Dir is [Opts.Dir]: the absolute folder of the manifest.
	Dir string
	// Path is the absolute path of the manifest file or folder under Dir.
	Path string
	// Name is the manifest as given to [Load], relative to its file system.
	Name string
	// Files holds the text of every manifest file read, by absolute path.
	Files map[string][]byte
	// Value is the unified, validated CUE value.
	Value cuelang.Value

	raw cuelang.Value // the manifest alone, for positions in the user's files
}

// LoadFile is [Load] of a manifest file or folder on disk.
func LoadFile(ctx context.Context, path string, opts Opts) (*Result, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("loading manifest: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("loading manifest: %w", err)
	}
	dir, name := filepath.Dir(abs), filepath.Base(abs)
	if fi.IsDir() {
		dir, name = abs, "."
	}
	opts.Dir = dir
	return Load(ctx, os.DirFS(dir), name, opts)
}

// Load reads the manifest name from fsys (a .cue file, or a folder whose .cue files form one
// manifest), unifies it with #Manifest and its distro definition, checks that it is concrete and
// decodes it. Every load has a [cuelang.Context] of its own, so a long-lived process (the
// gateway frontend) does not accumulate values. Errors are CUE errors carrying file:line:col;
// print them with [FormatError].
func Load(ctx context.Context, fsys fs.FS, name string, opts Opts) (*Result, error) {
	dir := opts.Dir
	if dir == "" {
		dir = "/"
	}
	if !fs.ValidPath(name) {
		return nil, fmt.Errorf("loading manifest: %q is not a path inside the manifest's folder", name)
	}
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("loading manifest: %w", err)
	}
	names := []string{name}
	if fi.IsDir() {
		names, err = fs.Glob(fsys, path.Join(name, "*.cue"))
		if err != nil {
			return nil, fmt.Errorf("loading manifest: %w", err)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("loading manifest: no .cue files in %s", name)
		}
	}
	res := &Result{Dir: dir, Path: filepath.Join(dir, filepath.FromSlash(name)), Name: name, Files: map[string][]byte{}}
	overlay := map[string]load.Source{}
	var files []string
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("loading manifest: %w", err)
		}
		abs := filepath.Join(dir, filepath.FromSlash(n))
		res.Files[abs] = data
		overlay[abs] = load.FromBytes(data)
		files = append(files, abs)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	cctx := cuecontext.New()
	sch := schema.CompileIn(cctx)
	insts := load.Instances(files, &load.Config{Dir: filepath.Dir(files[0]), Overlay: overlay})
	inst := insts[0]
	if inst.Err != nil {
		return nil, cueerrors.Wrapf(inst.Err, token.NoPos, "loading manifest")
	}
	v := cctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		return nil, cueerrors.Wrapf(err, token.NoPos, "loading manifest")
	}
	res.raw = v
	v = sch.LookupPath(cuelang.ParsePath("#Manifest")).Unify(v)

	var distro cuelang.Value
	var distroName string
	if d := res.raw.LookupPath(cuelang.ParsePath("distro")); d.Exists() {
		manifestDir := path.Dir(name)
		if fi.IsDir() {
			manifestDir = name
		}
		finder := distros.Finder{FS: fsys, Dir: manifestDir, Abs: filepath.Join(dir, filepath.FromSlash(manifestDir)), Path: opts.DistroPath}
		distro, distroName, res.Family, err = distroDef(sch, finder, d)
		if err != nil {
			return nil, err
		}
		// The schema checks the release against the definition, as `cue vet` does with
		// schema/distros.cue.
		v = v.FillPath(cuelang.MakePath(cuelang.Def("#distros"), cuelang.Str(distroName)), distro)
	}

	if err := v.Validate(cuelang.Concrete(true)); err != nil {
		return nil, userErrors(releaseErrors(err, res.raw, distro), res.raw)
	}
	if distro.Exists() {
		if name, err := v.LookupPath(cuelang.ParsePath("release")).String(); err == nil {
			rv := v.LookupPath(cuelang.MakePath(cuelang.Def("#distros"), cuelang.Str(distroName), cuelang.Str("releases"), cuelang.Str(name)))
			res.Release = new(schema.Release)
			if err := rv.Decode(res.Release); err != nil {
				return nil, cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "decoding release %s", name)
			}
		}
	}
	res.Manifest = new(schema.Manifest)
	if err := v.Decode(res.Manifest); err != nil {
		return nil, cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "decoding manifest")
	}
	res.Value = v
	return res, nil
}

// distroDef finds the definition of the distro named by d (beside the manifest, on the distro
// path or built in) and checks it against #Distro, with positions in its file; it returns the
// definition, the distro's name and its family.
func distroDef(sch cuelang.Value, finder distros.Finder, d cuelang.Value) (cuelang.Value, string, string, error) {
	name, err := d.String()
	if err != nil {
		return cuelang.Value{}, "", "", cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "distro")
	}
	def, err := finder.Find(name)
	if err != nil {
		return cuelang.Value{}, "", "", err
	}
	if def == nil {
		known, err := finder.Names()
		if err != nil {
			return cuelang.Value{}, "", "", err
		}
		return cuelang.Value{}, "", "", unknown(d, "distro", name, known)
	}
	src, file := def.Src, def.File
	dv := sch.Context().CompileBytes(src, cuelang.Filename(file))
	if err := dv.Err(); err != nil {
		return cuelang.Value{}, "", "", cueerrors.Wrapf(err, token.NoPos, "distro %s", name)
	}
	// The folder names the distro: a definition must say the same name.
	checked := sch.LookupPath(cuelang.ParsePath("#Distro")).Unify(dv).FillPath(cuelang.ParsePath("name"), name)
	if err := checked.Validate(cuelang.Concrete(true)); err != nil {
		return cuelang.Value{}, "", "", defErrors(err)
	}
	family, err := dv.LookupPath(cuelang.ParsePath("family")).String()
	if err != nil {
		return cuelang.Value{}, "", "", cueerrors.Wrapf(cueerrors.Promote(err, ""), token.NoPos, "distro %s", name)
	}
	return dv, name, family, nil
}

// releaseErrors replaces the schema's errors about a release the distro does not have (one per
// release it has, from the disjunction) by one that names them, at the position CUE gives for
// the manifest's value, as `cue vet` does.
func releaseErrors(err error, raw, distro cuelang.Value) error {
	rel := raw.LookupPath(cuelang.ParsePath("release"))
	name, serr := rel.String()
	if !distro.Exists() || serr != nil {
		return err
	}
	known := fieldNames(distro.LookupPath(cuelang.ParsePath("releases")))
	if slices.Contains(known, name) {
		return err
	}
	// CUE names the value among the conflict's positions (after the struct that holds it, for
	// a manifest written as one struct literal); that is where `cue vet` points too.
	var value token.Pos
	if f, ok := rel.Source().(*ast.Field); ok {
		value = f.Value.Pos()
	}
	var out cueerrors.Error
	var pos token.Pos
	for _, e := range cueerrors.Errors(err) {
		if p := cueerrors.Path(e); len(p) > 0 && p[len(p)-1] == "release" && (len(p) == 1 || len(p) == 2 && p[0] == "#Manifest") {
			for _, ep := range cueerrors.Positions(e) {
				if ep == value || !pos.IsValid() && !inSchema(ep) {
					pos = ep
				}
			}
			continue
		}
		out = cueerrors.Append(out, e)
	}
	if !pos.IsValid() {
		pos = rel.Pos()
	}
	msg := fmt.Sprintf("unknown release %q (known: %s)", name, strings.Join(known, ", "))
	return cueerrors.Append(&posError{pos: pos, path: []string{"release"}, msg: msg}, out)
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
