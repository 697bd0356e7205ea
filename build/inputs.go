package build

// What the pipeline checks and gathers before anything is lowered: local inputs that must be
// inside the build context and exist, the agent policy (parsed and compiled), and where the
// manifest's fields are written (source maps).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	bkllb "github.com/moby/buildkit/client/llb"

	"github.com/rootfsc/rootfsc/distros/family"
	rllb "github.com/rootfsc/rootfsc/llb"
	"github.com/rootfsc/rootfsc/policies"
)

// localInput is one file or folder of the build context the manifest names, with its field path.
type localInput struct {
	field   []string
	path    *string // the manifest's field, cleaned in place once checked
	done    func()  // stores a changed *path back (files entries are map values)
	dir     bool    // must be a folder; otherwise a file (or, with any, either)
	any     bool
	archive bool // must be a tar archive, plain or compressed
}

func (p *Plan) localInputs() []localInput {
	m := p.Manifest.Manifest
	var in []localInput
	if a := m.Agent; a != nil {
		if a.File != "" {
			in = append(in, localInput{field: []string{"agent", "file"}, path: &a.File})
		}
		if a.Tarball != nil && a.Tarball.Path != "" {
			in = append(in, localInput{field: []string{"agent", "tarball", "path"}, path: &a.Tarball.Path, archive: true})
		}
	}
	if pol := m.Policy; pol != nil {
		if pol.File != "" {
			in = append(in, localInput{field: []string{"policy", "file"}, path: &pol.File})
		}
		if pol.OPA != nil && pol.OPA.File != "" {
			in = append(in, localInput{field: []string{"policy", "opa", "file"}, path: &pol.OPA.File})
		}
	}
	if m.Modules != nil && m.Modules.Dir != "" {
		in = append(in, localInput{field: []string{"modules", "dir"}, path: &m.Modules.Dir, dir: true})
	}
	var paths []string
	for p := range m.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, fp := range paths {
		f := m.Files[fp]
		store := func() { m.Files[fp] = f }
		if f.Source != "" {
			in = append(in, localInput{field: []string{"files", fp, "source"}, path: &f.Source, any: true, done: store})
		}
		if f.Tarball != nil && f.Tarball.Path != "" {
			in = append(in, localInput{field: []string{"files", fp, "tarball", "path"}, path: &f.Tarball.Path, archive: true})
		}
	}
	return in
}

// ContextPaths are the paths of the build context the manifest reads, cleaned.
func (p *Plan) ContextPaths() []string {
	var out []string
	for _, in := range p.localInputs() {
		out = append(out, path.Clean(*in.path))
	}
	return out
}

// checkInputs fails, at the manifest field, for a local input that leaves the build context, is
// missing or is of the wrong kind, and checks the agent policy.
func (p *Plan) checkInputs(ctx context.Context) error {
	ins := p.localInputs()
	var paths []string
	for _, in := range ins {
		clean := path.Clean(*in.path)
		if path.IsAbs(*in.path) || !fs.ValidPath(clean) || clean == "." {
			return p.Manifest.Errorf(in.field, "%s leaves the build context (paths are relative to the context folder; see --context)", *in.path)
		}
		*in.path = clean
		if in.done != nil {
			in.done()
		}
		paths = append(paths, clean)
	}
	if len(ins) > 0 || (p.Manifest.Manifest.Policy != nil && p.Manifest.Manifest.Policy.File != "") {
		cfs, err := p.source.Context(ctx, paths)
		if err != nil {
			return err
		}
		p.contextFS = cfs
	}
	for _, in := range ins {
		fi, err := fs.Stat(p.contextFS, *in.path)
		switch {
		case err != nil:
			return p.Manifest.Errorf(in.field, "%s: %v", p.display(*in.path), pathErr(err))
		case in.dir && !fi.IsDir():
			return p.Manifest.Errorf(in.field, "%s is not a folder", *in.path)
		case !in.dir && !in.any && !fi.Mode().IsRegular():
			return p.Manifest.Errorf(in.field, "%s is not a regular file", *in.path)
		case in.archive:
			// BuildKit copies a file it cannot unpack as it is; say so here instead.
			if kind, err := archiveKind(p.contextFS, *in.path); err != nil {
				return p.Manifest.Errorf(in.field, "%v", err)
			} else if kind == "" {
				return p.Manifest.Errorf(in.field, "%s is not a tar archive (plain, gzip, bzip2, xz or zstd)", *in.path)
			}
		}
	}
	pol := p.Manifest.Manifest.Policy
	if pol == nil {
		return nil
	}
	if pol.Builtin != "" {
		text, ok := policies.Builtin(pol.Builtin)
		if !ok {
			return p.Manifest.Errorf([]string{"policy", "builtin"}, "unknown built-in policy %q", pol.Builtin)
		}
		p.builtinPolicy = text
		return nil
	}
	// The policy's own file:line:col positions say where the problem is.
	name := p.display(pol.File)
	res, err := policies.Check(ctx, []string{name}, policies.Opts{ReadFile: func(string) ([]byte, error) {
		return fs.ReadFile(p.contextFS, pol.File)
	}})
	if err != nil {
		return err
	}
	if res.Files[0].RegoVersion == "v0" && pol.Engine == "opa-service" {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s is Rego v0: OPA 1.x loads it only with --v0-compatible, "+
			"which kata-opa.service does not pass; use an OPA 0.x binary or rewrite the policy in Rego v1 (rules with `if`)", pol.File))
	}
	return nil
}

// pathErr drops the *PathError's own path: the message names the input already.
func pathErr(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// display is a context path as a user reads it: relative to the working directory when the
// context is on this machine and under it.
func (p *Plan) display(rel string) string {
	if p.source.ContextDir == "" {
		return rel
	}
	return displayPath(filepath.Join(p.source.ContextDir, filepath.FromSlash(rel)))
}

// displayPath is p relative to the working directory when it lies under it, as error positions are.
func displayPath(p string) string {
	cwd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(cwd, p); err == nil && filepath.IsLocal(r) {
		return r
	}
	return p
}

// archiveKind names the compression of a tar archive by its first bytes ("tar" when plain), or ""
// when the file is not an archive BuildKit unpacks.
func archiveKind(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	for _, m := range []struct {
		kind  string
		magic []byte
	}{
		{"gzip", []byte{0x1f, 0x8b}},
		{"bzip2", []byte("BZh")},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}},
	} {
		if bytes.HasPrefix(head, m.magic) {
			return m.kind, nil
		}
	}
	if len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")) {
		return "tar", nil
	}
	return "", nil
}

// sourceMap gives the lowering the manifest's text and where its top-level fields are written, so
// that a failed build step is reported at the field that asked for it. File names are relative
// to the manifest's folder, the same through every door.
func (p *Plan) sourceMap() *rllb.Source {
	src := &rllb.Source{Files: map[string][]byte{}, Fields: map[string]rllb.Location{}}
	for _, field := range []string{"release", "agent", "modules", "policy", "files", "slim"} {
		file, line, col, ok := p.Manifest.Pos(field)
		if !ok {
			continue
		}
		data, ok := p.Manifest.Files[file]
		if !ok {
			continue
		}
		name := file
		if r, err := filepath.Rel(p.source.Dir, file); err == nil && filepath.IsLocal(r) {
			name = filepath.ToSlash(r)
		}
		src.Files[name] = data
		src.Fields[field] = rllb.Location{File: name, Line: line, Col: col}
	}
	return src
}

// familyLowerOpts gives the family the helper and the base's and kernel's source locations.
func familyLowerOpts(src *rllb.Source, p *Plan, helper bkllb.State) family.LowerOpts {
	return family.LowerOpts{
		Helper: helper,
		Base:   rllb.BaseProgress(src, p.Request.Distro, p.Request.Release),
		Kernel: rllb.ModulesProgress(src),
		Tools:  len(p.Disks) > 0,
	}
}
