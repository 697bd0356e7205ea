package llb

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/lock"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The mirror uses the reserved .invalid TLD: never a real host.
const testMirror = "http://mirror.invalid/debian"

func fakeSHA(c byte) string { return strings.Repeat(string(c), 64) }

func testLock() *lock.Lock {
	return &lock.Lock{
		Version: 1, InputDigest: "sha256:" + fakeSHA('0'), Distro: "debian", Release: "bookworm", Arch: "amd64",
		SourceDateEpoch: 1700000000,
		Suites: []lock.Suite{
			{Name: "bookworm", Archive: "debian", Date: "2023-10-07T10:00:00Z", ReleaseSHA256: fakeSHA('1')},
			{Name: "bookworm-security", Archive: "debian-security", Date: "2023-11-14T22:13:20Z", ReleaseSHA256: fakeSHA('2')},
		},
		Packages: []lock.Package{
			{Name: "base-files", Version: "12.4+deb12u2", Architecture: "amd64", Filename: "pool/main/b/base-files/base-files_12.4+deb12u2_amd64.deb", Size: 70000, SHA256: fakeSHA('a'), Suite: "bookworm", Essential: true},
			{Name: "chrony", Version: "4.3-2+deb12u1", Architecture: "amd64", Filename: "pool/main/c/chrony/chrony_4.3-2+deb12u1_amd64.deb", Size: 290000, SHA256: fakeSHA('b'), Suite: "bookworm"},
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Filename: "pool/updates/main/o/openssl/libssl3_3.0.11-1~deb12u2_amd64.deb", Size: 2000000, SHA256: fakeSHA('c'), Suite: "bookworm-security"},
			{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Filename: "pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb", Size: 90000, SHA256: fakeSHA('d'), Suite: "bookworm", Essential: true},
		},
	}
}

func testInput() Input {
	return Input{
		Lock: testLock(),
		Mirrors: map[string]string{
			"bookworm":          testMirror,
			"bookworm-security": "http://mirror.invalid/debian-security/",
		},
	}
}

func TestLowerGolden(t *testing.T) {
	res, err := Lower(context.Background(), testInput(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	got := dump(t, res.Def)

	// Lowering twice gives the same bytes.
	res2, err := Lower(context.Background(), testInput(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Def.Def, res2.Def.Def); diff != "" {
		t.Errorf("Lower() not deterministic (-first +second):\n%s", diff)
	}

	golden := filepath.Join("testdata", "debian.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./llb -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Lower() mismatch (-want +got):\n%s", diff)
	}
}

func TestLowerErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Input)
		want   string
	}{
		{"missing mirror", func(in *Input) { delete(in.Mirrors, "bookworm-security") }, `package libssl3: no mirror for suite "bookworm-security"`},
		{"no lock", func(in *Input) { in.Lock = nil }, "no lock"},
		{"no packages", func(in *Input) { in.Lock.Packages = nil }, "lock has no packages"},
		{"no essential", func(in *Input) {
			for i := range in.Lock.Packages {
				in.Lock.Packages[i].Essential = false
			}
		}, "lock has no essential packages"},
		{"bad sha256", func(in *Input) { in.Lock.Packages[0].SHA256 = "abc" }, `package base-files: bad sha256 "abc"`},
		{"unsafe version", func(in *Input) { in.Lock.Packages[0].Version = "1;rm -rf /" }, `package "base-files": bad name, version "1;rm -rf /"`},
		{"absolute filename", func(in *Input) { in.Lock.Packages[0].Filename = "/etc/passwd" }, "package base-files: bad filename"},
		{"duplicate", func(in *Input) { in.Lock.Packages[1] = in.Lock.Packages[0] }, "package base-files: listed twice"},
		{"underscore", func(in *Input) { in.Lock.Packages[1].Name = "base-files_12.4" }, `package "base-files_12.4": bad name`},
		{"no arch", func(in *Input) { in.Lock.Packages[1].Architecture = "" }, `package "chrony": bad name, version "4.3-2+deb12u1" or architecture ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.modify(&in)
			_, err := Lower(context.Background(), in, Opts{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Lower() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLowerExecsHaveNoNetwork(t *testing.T) {
	res, err := Lower(context.Background(), testInput(), Opts{HelperLocal: "h"})
	if err != nil {
		t.Fatal(err)
	}
	execs := 0
	for _, dt := range res.Def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil {
			execs++
			if e.Network != pb.NetMode_NONE {
				t.Errorf("exec %q: network %v, want NONE", e.Meta.Args, e.Network)
			}
		}
	}
	if execs != 2 {
		t.Errorf("got %d exec ops, want 2", execs)
	}
}

func TestLowerPlatform(t *testing.T) {
	tests := []struct {
		arch string
		opt  ocispecs.Platform
		want string
	}{
		{"amd64", ocispecs.Platform{}, "linux/amd64"},
		{"arm64", ocispecs.Platform{}, "linux/arm64"},
		{"armhf", ocispecs.Platform{}, "linux/arm/v7"},
		{"arm64", ocispecs.Platform{OS: "linux", Architecture: "riscv64"}, "linux/riscv64"},
		{"amd64", ocispecs.Platform{Architecture: "arm64"}, "linux/arm64"},
	}
	for _, tt := range tests {
		in := testInput()
		in.Lock.Arch = tt.arch
		res, err := Lower(context.Background(), in, Opts{Platform: tt.opt})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, dt := range res.Def.Def {
			var op pb.Op
			if err := op.UnmarshalVT(dt); err != nil {
				t.Fatal(err)
			}
			if op.GetExec() != nil {
				got = append(got, platformString(op.Platform))
			}
		}
		if diff := cmp.Diff([]string{tt.want, tt.want}, got); diff != "" {
			t.Errorf("arch %s, opt %v: exec platforms mismatch (-want +got):\n%s", tt.arch, tt.opt, diff)
		}
	}
}

// dump renders a definition as stable text: ops numbered in a depth-first,
// inputs-in-order walk from the terminal op, so the numbers do not depend on
// digests or map order.
func dump(t *testing.T, def *bkllb.Definition) string {
	t.Helper()
	ops := map[digest.Digest]*pb.Op{}
	var terminal *pb.Op
	for i, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		ops[digest.FromBytes(dt)] = &op
		if i == len(def.Def)-1 {
			terminal = &op
		}
	}
	index := map[digest.Digest]int{}
	var order []digest.Digest
	var visit func(d digest.Digest)
	visit = func(d digest.Digest) {
		if _, ok := index[d]; ok {
			return
		}
		op, ok := ops[d]
		if !ok {
			t.Fatalf("input %s not in definition", d)
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
	if len(order) != len(ops)-1 {
		t.Errorf("%d ops reachable from the terminal, %d in the definition", len(order), len(ops)-1)
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
					p("  mkdir %s mode=%04o parents=%t owner=%s time=%s input=%d output=%d", m.Path, m.Mode, m.MakeParents, ownerString(m.Owner), stampString(m.Timestamp), a.Input, a.Output)
				case *pb.FileAction_Mkfile:
					m := act.Mkfile
					p("  mkfile %s mode=%04o owner=%s time=%s size=%d input=%d output=%d", m.Path, m.Mode, ownerString(m.Owner), stampString(m.Timestamp), len(m.Data), a.Input, a.Output)
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
					p("  symlink %s -> %s owner=%s time=%s input=%d output=%d", s.Newpath, s.Oldpath, ownerString(s.Owner), stampString(s.Timestamp), a.Input, a.Output)
				case *pb.FileAction_Copy:
					c := act.Copy
					mode := "keep"
					if c.ModeStr != "" {
						mode = c.ModeStr
					} else if c.Mode >= 0 {
						mode = fmt.Sprintf("%04o", c.Mode)
					}
					p("  copy %s -> %s mode=%s owner=%s time=%s input=%d src=%d output=%d", c.Src, c.Dest, mode, ownerString(c.Owner), stampString(c.Timestamp), a.Input, a.SecondaryInput, a.Output)
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
	return b.String()
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
func stampString(ns int64) string {
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
