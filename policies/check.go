package policies

// Check: the static checks rootfsc runs on a policy before installing it, so a
// typo fails the build instead of silently denying a request in the guest.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// PackageName is the Rego package the agent queries.
const PackageName = "agent_policy"

// Opts configures [Check] and [Eval].
type Opts struct {
	// ReadFile, when set, reads the policy files [Check] is given (by the names it prints in
	// positions) instead of the disk: the build pipeline reads them from its build context.
	ReadFile func(name string) ([]byte, error)
}

// CheckResult is what [Check] found in each file, in argument order.
type CheckResult struct {
	Files []FileResult
}

// FileResult describes one checked policy.
type FileResult struct {
	// Path is the file as given (a path or a built-in name).
	Path string
	// RegoVersion is "v1" when the policy parses as Rego v1, else "v0".
	RegoVersion string
	// Rules are the policy's top-level rule names, sorted and unique.
	Rules []string
}

// CheckError collects every problem found by [Check], each formatted
// "file:line:col: message".
type CheckError struct {
	Errors []string
}

func (e *CheckError) Error() string { return strings.Join(e.Errors, "\n") }

// policy is a parsed policy file.
type policy struct {
	path    string
	module  *ast.Module
	version ast.RegoVersion
}

// load reads a policy from a path or, when no such file exists, a built-in name.
func load(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err == nil {
		return string(b), nil
	}
	if errors.Is(err, os.ErrNotExist) {
		if b, ok := Builtin(name); ok {
			return string(b), nil
		}
	}
	return "", err
}

// parse parses text as Rego v1, falling back to v0. When neither parses, the
// errors reported are those of the parser that got further into the file: a
// v1 policy with a typo should not be blamed on v0 syntax, nor the reverse.
func parse(path, text string) (*policy, ast.Errors) {
	m1, err1 := ast.ParseModuleWithOpts(path, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err1 == nil {
		return &policy{path: path, module: m1, version: ast.RegoV1}, nil
	}
	m0, err0 := ast.ParseModuleWithOpts(path, text, ast.ParserOptions{RegoVersion: ast.RegoV0})
	if err0 == nil {
		return &policy{path: path, module: m0, version: ast.RegoV0}, nil
	}
	e1, e0 := astErrors(path, err1), astErrors(path, err0)
	if firstRow(e0) > firstRow(e1) {
		return nil, e0
	}
	return nil, e1
}

// astErrors returns err as ast.Errors; OPA reports a few problems, such as an
// empty module, as a plain error with the position baked into the text.
func astErrors(path string, err error) ast.Errors {
	var errs ast.Errors
	if errors.As(err, &errs) {
		return errs
	}
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, "rego_parse_error: "); ok {
		msg = after
	}
	return ast.Errors{ast.NewError(ast.ParseErr, &ast.Location{File: path, Row: 1, Col: 1}, "%s", msg)}
}

func firstRow(errs ast.Errors) int {
	if len(errs) == 0 || errs[0].Location == nil {
		return 0
	}
	return errs[0].Location.Row
}

func versionName(v ast.RegoVersion) string {
	if v == ast.RegoV0 {
		return "v0"
	}
	return "v1"
}

// Check parses, compiles and lints each policy in files (paths or built-in
// names). It returns what it learnt about every file that parsed and, when
// anything is wrong, a [*CheckError] listing all problems.
func Check(ctx context.Context, files []string, opts Opts) (*CheckResult, error) {
	res := &CheckResult{}
	var msgs []string
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var text string
		var err error
		if opts.ReadFile != nil {
			var b []byte
			b, err = opts.ReadFile(f)
			text = string(b)
		} else {
			text, err = load(f)
		}
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		p, errs := parse(f, text)
		if errs != nil {
			msgs = append(msgs, formatAST(f, errs)...)
			continue
		}
		fr := FileResult{Path: f, RegoVersion: versionName(p.version)}
		for _, r := range p.module.Rules {
			fr.Rules = append(fr.Rules, ruleName(r))
		}
		slices.Sort(fr.Rules)
		fr.Rules = slices.Compact(fr.Rules)
		res.Files = append(res.Files, fr)
		msgs = append(msgs, lint(p)...)
		c := ast.NewCompiler()
		c.Compile(map[string]*ast.Module{f: p.module})
		if c.Failed() {
			msgs = append(msgs, formatAST(f, c.Errors)...)
		}
	}
	if len(msgs) > 0 {
		return res, &CheckError{Errors: msgs}
	}
	return res, nil
}

func formatAST(file string, errs ast.Errors) []string {
	var out []string
	for _, e := range errs {
		row, col := 1, 1
		if e.Location != nil {
			row, col = e.Location.Row, e.Location.Col
			if e.Location.File != "" {
				file = e.Location.File
			}
		}
		out = append(out, fmt.Sprintf("%s:%d:%d: %s", file, row, col, e.Message))
	}
	return out
}

func at(file string, loc *ast.Location, format string, args ...any) string {
	row, col := 1, 1
	if loc != nil {
		row, col = loc.Row, loc.Col
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, row, col, fmt.Sprintf(format, args...))
}

// ruleName is the first segment of a rule's head: "ExecProcessRequest" for
// both "ExecProcessRequest if …" and "ExecProcessRequest.x := …".
func ruleName(r *ast.Rule) string {
	ref := r.Head.Ref()
	if len(ref) == 0 {
		return r.Head.Name.String()
	}
	return ref[0].Value.String()
}

// lint reports the mistakes OPA accepts but the agent would trip over.
func lint(p *policy) []string {
	var msgs []string
	pkg := p.module.Package
	if got := strings.TrimPrefix(pkg.Path.String(), "data."); got != PackageName {
		msgs = append(msgs, at(p.path, pkg.Location, "package must be %s, found %s", PackageName, got))
	}
	for _, r := range p.module.Rules {
		name := ruleName(r)
		if _, ok := slices.BinarySearch(RequestNames, name); !ok &&
			!strings.HasSuffix(name, "Request") && suggest(name) == "" {
			continue // a helper rule
		}
		loc := r.Head.Location
		if loc == nil {
			loc = r.Location
		}
		if _, ok := slices.BinarySearch(RequestNames, name); !ok {
			msg := fmt.Sprintf("unknown agent request %q", name)
			if s := suggest(name); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			msgs = append(msgs, at(p.path, loc, "%s", msg))
			continue
		}
		if len(r.Head.Ref()) > 1 || r.Head.Key != nil {
			msgs = append(msgs, at(p.path, loc, "rule %s must be boolean", name))
			continue
		}
		if v := r.Head.Value; v != nil && v.IsGround() {
			if _, ok := v.Value.(ast.Boolean); !ok {
				msgs = append(msgs, at(p.path, loc, "rule %s must be boolean", name))
			}
		}
	}
	return msgs
}

// suggest returns the closest request name within edit distance 3, or "".
func suggest(name string) string {
	best, bestD := "", 4
	for _, n := range RequestNames {
		if d := levenshtein(strings.ToLower(name), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
