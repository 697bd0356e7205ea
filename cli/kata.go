package cli

// What the CLI checks and gathers for the Kata layers before anything is lowered: local inputs
// that must exist, the agent policy (parsed and compiled), and the folders the build reads.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	rllb "github.com/rootfsc/rootfsc/llb"
	"github.com/rootfsc/rootfsc/policies"
)

// localInput is one file or folder the manifest names, with its field path.
type localInput struct {
	field   []string
	path    string
	dir     bool // must be a folder; otherwise a file (or, for files.*.source, either)
	any     bool
	archive bool // must be a tar archive, plain or compressed
}

func (l *loaded) localInputs() []localInput {
	m := l.res.Manifest
	var in []localInput
	if a := m.Agent; a != nil {
		if a.File != "" {
			in = append(in, localInput{field: []string{"agent", "file"}, path: a.File})
		}
		if a.Tarball != nil && a.Tarball.Path != "" {
			in = append(in, localInput{field: []string{"agent", "tarball", "path"}, path: a.Tarball.Path, archive: true})
		}
	}
	if p := m.Policy; p != nil {
		if p.File != "" {
			in = append(in, localInput{field: []string{"policy", "file"}, path: p.File})
		}
		if p.OPA != nil && p.OPA.File != "" {
			in = append(in, localInput{field: []string{"policy", "opa", "file"}, path: p.OPA.File})
		}
	}
	if m.Modules != nil && m.Modules.Dir != "" {
		in = append(in, localInput{field: []string{"modules", "dir"}, path: m.Modules.Dir, dir: true})
	}
	var paths []string
	for p := range m.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := m.Files[p]
		if f.Source != "" {
			in = append(in, localInput{field: []string{"files", p, "source"}, path: f.Source, any: true})
		}
		if f.Tarball != nil && f.Tarball.Path != "" {
			in = append(in, localInput{field: []string{"files", p, "tarball", "path"}, path: f.Tarball.Path, archive: true})
		}
	}
	return in
}

// abs resolves a path the manifest names against the manifest's folder.
func (l *loaded) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.res.Dir, p)
}

// checkInputs fails, at the manifest field, for a local input that is missing or of the wrong kind,
// and checks the agent policy; it returns the text of a built-in policy.
func (l *loaded) checkInputs(ctx context.Context) ([]byte, error) {
	for _, in := range l.localInputs() {
		fi, err := os.Stat(l.abs(in.path))
		switch {
		case err != nil:
			return nil, l.res.Errorf(in.field, "%v", err)
		case in.dir && !fi.IsDir():
			return nil, l.res.Errorf(in.field, "%s is not a folder", in.path)
		case !in.dir && !in.any && !fi.Mode().IsRegular():
			return nil, l.res.Errorf(in.field, "%s is not a regular file", in.path)
		case in.archive:
			// BuildKit copies a file it cannot unpack as it is; say so here instead.
			if kind, err := archiveKind(l.abs(in.path)); err != nil {
				return nil, l.res.Errorf(in.field, "%v", err)
			} else if kind == "" {
				return nil, l.res.Errorf(in.field, "%s is not a tar archive (plain, gzip, bzip2, xz or zstd)", in.path)
			}
		}
	}
	p := l.res.Manifest.Policy
	if p == nil {
		return nil, nil
	}
	if p.Builtin != "" {
		text, ok := policies.Builtin(p.Builtin)
		if !ok {
			return nil, l.res.Errorf([]string{"policy", "builtin"}, "unknown built-in policy %q", p.Builtin)
		}
		return text, nil
	}
	// The policy's own file:line:col positions say where the problem is.
	res, err := policies.Check(ctx, []string{displayPath(l.abs(p.File))}, policies.Opts{})
	if err != nil {
		return nil, err
	}
	if res.Files[0].RegoVersion == "v0" && p.Engine == "opa-service" {
		l.warnings = append(l.warnings, fmt.Sprintf("%s is Rego v0: OPA 1.x loads it only with --v0-compatible, "+
			"which kata-opa.service does not pass; use an OPA 0.x binary or rewrite the policy in Rego v1 (rules with `if`)", p.File))
	}
	return nil, nil
}

// displayPath is p relative to the working directory when it lies under it, as error positions are.
func displayPath(p string) string {
	cwd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(cwd, p); err == nil && !filepath.IsAbs(r) && len(r) > 0 && r[0] != '.' {
		return r
	}
	return p
}

// archiveKind names the compression of a tar archive by its first bytes ("tar" when plain), or ""
// when the file is not an archive BuildKit unpacks.
func archiveKind(p string) (string, error) {
	f, err := os.Open(p)
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

// source gives the lowering the manifest's text and where its top-level fields are written, so
// that a failed build step is reported at the field that asked for it.
func (l *loaded) source() *rllb.Source {
	src := &rllb.Source{Files: map[string][]byte{}, Fields: map[string]rllb.Location{}}
	for _, field := range []string{"release", "agent", "modules", "policy", "files", "slim"} {
		file, line, col, ok := l.res.Pos(field)
		if !ok {
			continue
		}
		name := displayPath(file)
		if _, done := src.Files[name]; !done {
			data, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			src.Files[name] = data
		}
		src.Fields[field] = rllb.Location{File: name, Line: line, Col: col}
	}
	return src
}
