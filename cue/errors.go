package cue

import (
	"fmt"
	"path/filepath"
	"strings"

	cuelang "cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/rootfsc/rootfsc/schema"
)

// posError is a [cueerrors.Error] for checks done in Go, so they print like
// the schema's own errors.
type posError struct {
	pos  token.Pos
	path []string
	msg  string
}

func (e *posError) Position() token.Pos         { return e.pos }
func (e *posError) InputPositions() []token.Pos { return nil }
func (e *posError) Path() []string              { return e.path }
func (e *posError) Msg() (string, []any)        { return "%s", []any{e.msg} }
func (e *posError) Error() string {
	if len(e.path) == 0 {
		return e.msg
	}
	return strings.Join(e.path, ".") + ": " + e.msg
}

// FormatError renders err one problem per line as
// "file:line:col: path: message", with file names relative to cwd when they
// lie under it. Errors without a position print as their message.
func FormatError(err error, cwd string) string {
	var b strings.Builder
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		// Msg is only the outermost message of a wrapped error.
		if inner := cueerrors.Unwrap(e); inner != nil {
			msg += ": " + inner.Error()
		}
		if p := cueerrors.Path(e); len(p) > 0 {
			msg = strings.Join(p, ".") + ": " + msg
		}
		positions := cueerrors.Positions(e)
		if len(positions) == 0 {
			// Wrapped Go errors keep their context in Error().
			if w := e.Error(); !strings.HasSuffix(w, msg) || msg == "" {
				msg = w
			}
			fmt.Fprintln(&b, msg)
			continue
		}
		fmt.Fprintf(&b, "%s: %s", relPos(positions[0], cwd), msg)
		if len(positions) > 1 {
			var also []string
			for _, p := range positions[1:] {
				also = append(also, relPos(p, cwd))
			}
			fmt.Fprintf(&b, " (and %s)", strings.Join(also, ", "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func relPos(p token.Pos, cwd string) string {
	name := p.Filename()
	if cwd != "" && filepath.IsAbs(name) {
		if r, err := filepath.Rel(cwd, name); err == nil && !strings.HasPrefix(r, "..") {
			name = r
		}
	}
	if p.Line() == 0 {
		return name
	}
	return fmt.Sprintf("%s:%d:%d", name, p.Line(), p.Column())
}

// NotImplemented reports, with its position in the manifest, every field of
// r.Manifest that the schema accepts but the builder does not support yet
// (disk outputs), or nil. A Result not made by [Load] gets
// the same errors without positions.
func NotImplemented(r *Result) error {
	return notImplemented(r.Manifest, r.raw)
}

// Errorf returns an error located at the manifest field path (or its closest
// enclosing field the user wrote), printed by [FormatError] as
// "file:line:col: path: message".
func (r *Result) Errorf(path []string, format string, args ...any) error {
	var pos token.Pos
	if r.raw.Exists() {
		pos = closestPos(r.raw, path)
	}
	return &posError{pos: pos, path: path, msg: fmt.Sprintf(format, args...)}
}

// ElemErrorf is [Result.Errorf] for element i of the manifest's list field: it is located at the
// element and printed as "file:line:col: field[i]: message".
func (r *Result) ElemErrorf(field string, i int, format string, args ...any) error {
	var pos token.Pos
	if r.raw.Exists() {
		pos = r.raw.LookupPath(cuelang.MakePath(cuelang.Str(field), cuelang.Index(i))).Pos()
		if !pos.IsValid() {
			pos = closestPos(r.raw, []string{field})
		}
	}
	return &posError{pos: pos, path: []string{fmt.Sprintf("%s[%d]", field, i)}, msg: fmt.Sprintf(format, args...)}
}

func notImplemented(m *schema.Manifest, v cuelang.Value) error {
	var errs cueerrors.Error
	add := func(msg string, path ...cuelang.Selector) {
		var names []string
		for _, s := range path {
			names = append(names, s.String())
		}
		var pos token.Pos
		if v.Exists() {
			pos = v.LookupPath(cuelang.MakePath(path...)).Pos()
		}
		errs = cueerrors.Append(errs, &posError{pos: pos, path: names, msg: msg})
	}
	for i, o := range m.Outputs {
		if o.Type == "disk" && o.FS == "xfs" {
			add("xfs is not supported: mkfs.xfs cannot populate a file system from a folder without mounting it (no loop devices in a build step); use ext4 or erofs",
				cuelang.Str("outputs"), cuelang.Index(i), cuelang.Str("fs"))
		}
	}
	if errs == nil {
		return nil
	}
	return errs
}

// oneOf names the fields of which exactly one must be set, by the last
// element of the path of a failed matchN in the schema.
var oneOf = map[string]string{
	"agent":   "file, tarball",
	"tarball": "path, url",
	"opa":     "file, url",
	"modules": "dir, package",
	"policy":  "file, builtin",
}

// userErrors rewrites the errors of validating the unified manifest so they
// point into the user's files: the "#Manifest" path prefix is dropped, and an
// error located only in the schema (a required field missing, a failed
// matchN) takes the position of the closest enclosing field the user wrote.
func userErrors(err error, raw cuelang.Value) error {
	var out cueerrors.Error
	for _, e := range cueerrors.Errors(err) {
		path := cueerrors.Path(e)
		if len(path) > 0 && path[0] == "#Manifest" {
			path = path[1:]
		}
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if strings.Contains(msg, "does not satisfy matchN") {
			msg = "exactly one of the fields must be set"
			if len(path) > 0 {
				if f, ok := oneOf[path[len(path)-1]]; ok {
					msg = "exactly one of " + f + " must be set"
				} else if len(path) == 2 && path[0] == "files" {
					msg = "exactly one of content, source, tarball must be set"
				}
			}
		}
		var pos token.Pos
		for _, p := range cueerrors.Positions(e) {
			if !inSchema(p) {
				pos = p
				break
			}
		}
		if !pos.IsValid() {
			pos = closestPos(raw, path)
		}
		out = cueerrors.Append(out, &posError{pos: pos, path: path, msg: msg})
	}
	return out
}

// defErrors rewrites the errors of checking a distro definition against #Distro so they point
// into the definition's file with the definition's own paths; an error located only in the
// schema (the summary of a failed disjunction) is left out when another one points at the file.
func defErrors(err error) error {
	var located, rest cueerrors.Error
	for _, e := range cueerrors.Errors(err) {
		path := cueerrors.Path(e)
		if len(path) > 0 && path[0] == "#Distro" {
			path = path[1:]
		}
		format, args := e.Msg()
		var pos token.Pos
		for _, p := range cueerrors.Positions(e) {
			if p.Filename() != "schema/schema.cue" {
				pos = p
				break
			}
		}
		pe := &posError{pos: pos, path: path, msg: fmt.Sprintf(format, args...)}
		if pos.IsValid() {
			located = cueerrors.Append(located, pe)
		} else {
			rest = cueerrors.Append(rest, pe)
		}
	}
	if located != nil {
		return located
	}
	return rest
}

func inSchema(p token.Pos) bool {
	fn := p.Filename()
	return strings.HasPrefix(fn, "schema/") || strings.HasPrefix(fn, "distros/")
}

// closestPos is the position of the longest prefix of path that exists in v.
func closestPos(v cuelang.Value, path []string) token.Pos {
	for n := len(path); n > 0; n-- {
		var sels []cuelang.Selector
		for _, p := range path[:n] {
			sels = append(sels, cuelang.Str(p))
		}
		if f := v.LookupPath(cuelang.MakePath(sels...)); f.Exists() {
			return f.Pos()
		}
	}
	it, err := v.Fields()
	if err == nil && it.Next() {
		return it.Value().Pos()
	}
	return v.Pos()
}

// Pos returns where the manifest field path is written (or its closest enclosing field): the
// file (absolute, as loaded) and the 1-based line and column; ok is false without a position.
func (r *Result) Pos(path ...string) (file string, line, col int, ok bool) {
	if !r.raw.Exists() {
		return "", 0, 0, false
	}
	p := closestPos(r.raw, path)
	if !p.IsValid() || p.Line() == 0 {
		return "", 0, 0, false
	}
	return p.Filename(), p.Line(), p.Column(), true
}
