// Package llbdump renders an LLB definition as stable text for golden files: protojson output is
// deliberately unstable across builds, so tests decode the ops and print them themselves.
package llbdump

import (
	"fmt"
	"sort"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// Dump renders def as stable text: ops in a depth-first order from the terminal, each with its
// inputs by number, and every field a reviewer of the graph reads.
func Dump(def *bkllb.Definition) (string, error) {
	ops := map[digest.Digest]*pb.Op{}
	var terminal *pb.Op
	for i, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			return "", err
		}
		ops[digest.FromBytes(dt)] = &op
		if i == len(def.Def)-1 {
			terminal = &op
		}
	}
	if terminal == nil {
		return "", fmt.Errorf("empty definition")
	}
	index := map[digest.Digest]int{}
	var order []digest.Digest
	var missing error
	var visit func(d digest.Digest)
	visit = func(d digest.Digest) {
		if _, ok := index[d]; ok {
			return
		}
		op, ok := ops[d]
		if !ok {
			missing = fmt.Errorf("input %s not in definition", d)
			return
		}
		for _, in := range op.Inputs {
			visit(digest.Digest(in.Digest))
		}
		index[d] = len(order)
		order = append(order, d)
	}
	for _, in := range terminal.Inputs {
		visit(digest.Digest(in.Digest))
	}
	if missing != nil {
		return "", missing
	}
	if len(order) != len(ops)-1 {
		return "", fmt.Errorf("%d ops reachable from the terminal, %d in the definition", len(order), len(ops)-1)
	}

	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...); b.WriteByte('\n') }
	ref := func(in *pb.Input) string {
		return fmt.Sprintf("#%d.%d", index[digest.Digest(in.Digest)], in.Index)
	}
	for i, d := range order {
		op := ops[d]
		var inputs []string
		for _, in := range op.Inputs {
			inputs = append(inputs, ref(in))
		}
		switch o := op.Op.(type) {
		case *pb.Op_Source:
			p("#%d source %s", i, o.Source.Identifier)
			for _, k := range sortedKeys(o.Source.Attrs) {
				p("  attr %s=%q", k, o.Source.Attrs[k])
			}
		case *pb.Op_Merge:
			p("#%d merge %s", i, strings.Join(inputs, " "))
		case *pb.Op_Exec:
			e := o.Exec
			p("#%d exec inputs=[%s] platform=%s", i, strings.Join(inputs, " "), platformString(op.Platform))
			for _, a := range e.Meta.Args {
				for _, line := range strings.Split(strings.TrimSuffix(a, "\n"), "\n") {
					p("  arg %s", line)
				}
			}
			for _, env := range e.Meta.Env {
				p("  env %s", env)
			}
			p("  cwd %q user %q network %s security %s", e.Meta.Cwd, e.Meta.User, e.Network, e.Security)
			for _, m := range e.Mounts {
				src := "scratch"
				if m.Input >= 0 {
					src = inputs[m.Input]
				}
				out := "none"
				if m.Output >= 0 {
					out = fmt.Sprint(m.Output)
				}
				p("  mount %s from %s selector=%q readonly=%t output=%s type=%s", m.Dest, src, m.Selector, m.Readonly, out, m.MountType)
			}
		case *pb.Op_File:
			// input and src are indexes into inputs, or (from len(inputs) on)
			// the output of an earlier action; -1 is scratch.
			p("#%d file inputs=[%s]", i, strings.Join(inputs, " "))
			for _, a := range o.File.Actions {
				switch act := a.Action.(type) {
				case *pb.FileAction_Rm:
					p("  rm %s input=%d output=%d allowNotFound=%t allowWildcard=%t", act.Rm.Path, a.Input, a.Output, act.Rm.AllowNotFound, act.Rm.AllowWildcard)
				case *pb.FileAction_Mkdir:
					m := act.Mkdir
					p("  mkdir %s mode=%04o parents=%t owner=%s time=%s input=%d output=%d", m.Path, m.Mode, m.MakeParents, ownerString(m.Owner), Stamp(m.Timestamp), a.Input, a.Output)
				case *pb.FileAction_Mkfile:
					m := act.Mkfile
					p("  mkfile %s mode=%04o owner=%s time=%s size=%d input=%d output=%d", m.Path, m.Mode, ownerString(m.Owner), Stamp(m.Timestamp), len(m.Data), a.Input, a.Output)
					// The content in full: unit texts and osbuilder.yaml are what a reviewer reads.
					if len(m.Data) > 0 {
						for _, line := range strings.Split(strings.TrimSuffix(string(m.Data), "\n"), "\n") {
							p("    | %s", line)
						}
						if !strings.HasSuffix(string(m.Data), "\n") {
							p("    (no newline at end)")
						}
					}
				case *pb.FileAction_Symlink:
					s := act.Symlink
					p("  symlink %s -> %s owner=%s time=%s input=%d output=%d", s.Newpath, s.Oldpath, ownerString(s.Owner), Stamp(s.Timestamp), a.Input, a.Output)
				case *pb.FileAction_Copy:
					c := act.Copy
					mode := "keep"
					if c.ModeStr != "" {
						mode = c.ModeStr
					} else if c.Mode >= 0 {
						mode = fmt.Sprintf("%04o", c.Mode)
					}
					p("  copy %s -> %s mode=%s owner=%s time=%s input=%d src=%d output=%d", c.Src, c.Dest, mode, ownerString(c.Owner), Stamp(c.Timestamp), a.Input, a.SecondaryInput, a.Output)
					p("    follow=%t contents=%t unpack=%t createDest=%t wildcard=%t replace=%t include=%q exclude=%q",
						c.FollowSymlink, c.DirCopyContents, c.AttemptUnpackDockerCompatibility, c.CreateDestPath, c.AllowWildcard, c.AlwaysReplaceExistingDestPaths, c.IncludePatterns, c.ExcludePatterns)
				default:
					p("  %T", act)
				}
			}
		case *pb.Op_Diff:
			side := func(idx int64) string {
				if idx < 0 {
					return "scratch"
				}
				return inputs[idx]
			}
			p("#%d diff lower=%s upper=%s", i, side(o.Diff.Lower.Input), side(o.Diff.Upper.Input))
		default:
			p("#%d %T", i, o)
		}
		md := def.Metadata[d]
		if name, ok := md.Description["llb.customname"]; ok {
			p("  name %q", name)
		}
		if g := md.ProgressGroup; g != nil {
			p("  progress %s %q weak=%t", g.Id, g.Name, g.Weak)
		}
		var caps []string
		for c := range md.Caps {
			caps = append(caps, string(c))
		}
		sort.Strings(caps)
		if len(caps) > 0 {
			p("  caps %s", strings.Join(caps, " "))
		}
	}
	p("output %s", ref(terminal.Inputs[0]))
	return b.String(), nil
}

// ownerString renders a chown option as uid:gid, a name as name@input (the
// input whose /etc/passwd resolves it), or "none" when unset.
func ownerString(c *pb.ChownOpt) string {
	if c == nil {
		return "none"
	}
	one := func(u *pb.UserOpt) string {
		switch v := u.GetUser().(type) {
		case *pb.UserOpt_ByID:
			return fmt.Sprint(v.ByID)
		case *pb.UserOpt_ByName:
			return fmt.Sprintf("%s@%d", v.ByName.Name, v.ByName.Input)
		}
		return "unset"
	}
	return one(c.User) + ":" + one(c.Group)
}

// stampString renders a file action's created time; -1 means the file keeps
// its own (BuildKit's marshalling of a nil time).
// Stamp renders a file action's created time; -1 (a nil time) means the file keeps its own.
func Stamp(ns int64) string {
	if ns == -1 {
		return "keep"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func platformString(p *pb.Platform) string {
	if p == nil {
		return "none"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
