package llb

// Tests of the Kata layers: one golden dump per init mode (systemd over a
// distro, the agent as init over a distro, overlay without a distro), the
// client folders each one reads, the lowering errors, and a few properties
// read from the decoded ops so that refreshing a golden cannot quietly drop
// them.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/internal/llbdump"
	"github.com/rootfsc/rootfsc/schema"
)

// kataEpoch is Opts.SourceDateEpoch: only overlay mode uses it, the lock's
// epoch wins otherwise, and the two differ so the goldens show which applied.
const kataEpoch = 1600000000

var testPolicy = []byte("package agent_policy\n\ndefault CreateContainerRequest := true\ndefault ExecProcessRequest := true\n")

func testKernel() *lock.Kernel {
	return &lock.Kernel{
		Package: lock.Package{
			Name: "linux-image-6.1.0-27-amd64", Version: "6.1.115-1", Architecture: "amd64",
			Filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-27-amd64_6.1.115-1_amd64.deb",
			Size:     68000000, SHA256: fakeSHA('e'), Suite: "bookworm-security",
		},
		Release:   "6.1.0-27-amd64",
		Requested: "linux-image-amd64",
	}
}

// kataCase is one manifest of the golden tests and the folders it reads.
type kataCase struct {
	name     string
	input    func() testIn
	contexts map[string]string // local ops of the context: role -> included path
}

func kataCases() []kataCase {
	return []kataCase{
		{
			name: "systemd",
			input: func() testIn {
				in := testInput()
				in.Lock.Kernel = testKernel()
				in.DefaultPackages = []string{"systemd", "chrony", "init", "dbus"}
				in.BuiltinPolicy = testPolicy
				in.Manifest = &schema.Manifest{
					Distro: "debian", Release: "bookworm", Arch: "amd64",
					Packages: []string{"iptables", "ca-certificates"},
					Agent:    &schema.Agent{File: "bin/kata-agent", Init: "systemd", Version: "3.2.0"},
					Modules:  &schema.Modules{Package: "linux-image-amd64"},
					Policy: &schema.Policy{Builtin: "allow-all", Engine: "opa-service",
						OPA: &schema.Binary{File: "bin/opa"}},
					Files: map[string]schema.File{
						"/etc/motd":             {Content: "Kata guest\n", Mode: 0o600, Owner: "daemon:adm"},
						"/etc/kata/config.toml": {Source: "conf/config.toml"},
						"/opt/tools":            {Tarball: &schema.Tarball{Path: "dist/tools.tar.gz"}},
						"/opt/extra": {Tarball: &schema.Tarball{
							URL: "https://example.invalid/dl/extra.tar.gz?token=1", Sha256: schema.SHA256(fakeSHA('f'))}},
					},
					Slim: true,
				}
				return in
			},
			// files<i> follows the sorted paths; the URL tarball (files2) is no local.
			contexts: map[string]string{
				"agent": "bin/kata-agent", "opa": "bin/opa", "files0": "conf/config.toml", "files3": "dist/tools.tar.gz",
			},
		},
		{
			name: "agent-init",
			input: func() testIn {
				in := testInput()
				in.DefaultPackages = []string{"init", "iptables"}
				in.Manifest = &schema.Manifest{
					Distro: "debian", Release: "bookworm", Arch: "amd64",
					Agent: &schema.Agent{Init: "agent", Version: "3.2.0", Tarball: &schema.Tarball{
						URL: "https://example.invalid/kata/kata-agent.tar.zst", Sha256: schema.SHA256(fakeSHA('7'))}},
					Modules: &schema.Modules{Dir: "modules/6.1.0-27-amd64", Include: []schema.ModulePattern{"virtio_*", "vmw_vsock_virtio_transport"}},
					Policy: &schema.Policy{File: "policy/strict.rego", Engine: "opa-service",
						OPA: &schema.Binary{URL: "https://example.invalid/opa/opa_linux_amd64_static", Sha256: schema.SHA256(fakeSHA('8'))}},
				}
				return in
			},
			contexts: map[string]string{"modules": "modules/6.1.0-27-amd64", "policy": "policy/strict.rego"},
		},
		{
			name: "overlay",
			input: func() testIn {
				return testIn{Input: Input{
					BuiltinPolicy: testPolicy,
					Manifest: &schema.Manifest{
						Arch:   "amd64",
						Agent:  &schema.Agent{File: "kata-agent", Init: "systemd"},
						Policy: &schema.Policy{Builtin: "allow-set-policy", Engine: "agent-builtin"},
						Files: map[string]schema.File{
							"/etc/kata-demo.conf": {Content: "level=debug", Owner: "1000:1000"},
							"/usr/local/bin/tool": {Source: "tools/tool", Mode: 0o750, Owner: "0:27"},
							"/srv/data":           {Tarball: &schema.Tarball{Path: "data.tar"}, Owner: "1000"},
						},
					},
				}}
			},
			contexts: map[string]string{"agent": "kata-agent", "files1": "data.tar", "files2": "tools/tool"},
		},
	}
}

func kataOpts() Opts {
	return Opts{BuilderVersion: "test"}
}

func lowerKata(t *testing.T, c kataCase) *testResult {
	t.Helper()
	res, err := lowerTest(c.input(), kataOpts())
	if err != nil {
		t.Fatalf("Lower(%s): %v", c.name, err)
	}
	return res
}

func TestLowerKataGolden(t *testing.T) {
	for _, c := range kataCases() {
		t.Run(c.name, func(t *testing.T) {
			res := lowerKata(t, c)
			if diff := cmp.Diff(res.Def.Def, lowerKata(t, c).Def.Def); diff != "" {
				t.Errorf("Lower() not deterministic (-first +second):\n%s", diff)
			}
			got := dump(t, res.Def)
			golden := filepath.Join("testdata", "kata-"+c.name+".golden")
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
		})
	}
}

// TestLowerKataContext checks that every local input is read from the one build context, each
// role limited to its own path.
func TestLowerKataContext(t *testing.T) {
	for _, c := range kataCases() {
		t.Run(c.name, func(t *testing.T) {
			got := map[string]string{}
			g := decode(t, lowerKata(t, c).Def)
			g.each(func(_ digest.Digest, op *pb.Op) {
				src := op.GetSource()
				if src == nil || src.Identifier != "local://context" {
					return
				}
				role := strings.TrimPrefix(src.Attrs[pb.AttrSharedKeyHint], "context:")
				got[role] = strings.Trim(src.Attrs[pb.AttrIncludePatterns], `[]"`)
			})
			if diff := cmp.Diff(c.contexts, got); diff != "" {
				t.Errorf("context locals mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLowerKataErrors(t *testing.T) {
	agent := &schema.Agent{File: "bin/kata-agent", Init: "systemd"}
	tests := []struct {
		name   string
		modify func(*testIn)
		want   string
	}{
		{"modules dir not a release", func(in *testIn) {
			in.Manifest.Modules = &schema.Modules{Dir: "build/modules"}
		}, `modules.dir "build/modules": the folder must be named after the kernel release`},
		{"modules dir dot-dot", func(in *testIn) {
			in.Manifest.Modules = &schema.Modules{Dir: "6.1.0-27-amd64/.."}
		}, `modules.dir "6.1.0-27-amd64/..": the folder must be named after the kernel release`},
		{"modules package without a kernel in the lock", func(in *testIn) {
			in.Manifest.Modules = &schema.Modules{Package: "linux-image-amd64"}
		}, `the lock pins no kernel package (run rootfsc lock)`},
		{"modules package in overlay mode", func(in *testIn) {
			in.Lock = nil
			in.Manifest.Modules = &schema.Modules{Package: "linux-image-amd64"}
		}, `modules.package "linux-image-amd64": needs a distro`},
		{"kernel with a bad release", func(in *testIn) {
			in.Lock.Kernel = testKernel()
			in.Lock.Kernel.Release = "6.1; rm -rf /"
			in.Manifest.Modules = &schema.Modules{Package: "linux-image-amd64"}
		}, `lock: kernel package linux-image-amd64: bad release "6.1; rm -rf /"`},
		{"kernel without a mirror", func(in *testIn) {
			in.Lock.Kernel = testKernel()
			in.Lock.Kernel.Suite = "trixie"
			in.Manifest.Modules = &schema.Modules{Package: "linux-image-amd64"}
		}, `kernel linux-image-6.1.0-27-amd64: no mirror for suite "trixie"`},
		{"policy file named like the link", func(in *testIn) {
			in.Manifest.Policy = &schema.Policy{File: "policies/default-policy.rego", Engine: "agent-builtin"}
		}, `policy.file "policies/default-policy.rego": the name must be letters, digits and ._+- and not default-policy.rego`},
		{"kernel with an absolute file name", func(in *testIn) {
			in.Lock.Kernel = testKernel()
			in.Lock.Kernel.Filename = "/etc/passwd"
			in.Manifest.Modules = &schema.Modules{Package: "linux-image-amd64"}
		}, `lock: kernel linux-image-6.1.0-27-amd64: bad filename "/etc/passwd"`},
		{"two bad files name the first", func(in *testIn) {
			in.Manifest.Files = map[string]schema.File{"b/x": {Content: "hi"}, "a/x": {Content: "hi"}, "c/x": {Content: "hi"}}
		}, `files: "a/x" is not a clean absolute path`},
		{"owner by name in overlay mode", func(in *testIn) {
			in.Lock = nil
			in.Manifest.Files = map[string]schema.File{"/etc/motd": {Content: "hi", Owner: "daemon:adm"}}
		}, `files: /etc/motd: owner "daemon:adm" by name needs a distro`},
		{"files path not clean", func(in *testIn) {
			in.Manifest.Files = map[string]schema.File{"/etc/../etc/motd": {Content: "hi"}}
		}, `files: "/etc/../etc/motd" is not a clean absolute path`},
		{"files path relative", func(in *testIn) {
			in.Manifest.Files = map[string]schema.File{"etc/motd": {Content: "hi"}}
		}, `files: "etc/motd" is not a clean absolute path`},
		{"files path trailing slash", func(in *testIn) {
			in.Manifest.Files = map[string]schema.File{"/etc/motd/": {Content: "hi"}}
		}, `files: "/etc/motd/" is not a clean absolute path`},
		{"files path is the root", func(in *testIn) {
			in.Manifest.Files = map[string]schema.File{"/": {Tarball: &schema.Tarball{Path: "all.tar"}}}
		}, `files: "/" is not a clean absolute path`},
		{"built-in policy without its text", func(in *testIn) {
			in.Manifest.Policy = &schema.Policy{Builtin: "allow-all", Engine: "agent-builtin"}
		}, `policy: no text for the built-in "allow-all"`},
		{"no manifest", func(in *testIn) {
			in.Lock, in.Manifest = nil, nil
		}, "lowering: no manifest"},
		{"empty manifest in overlay mode", func(in *testIn) {
			in.Lock = nil
			in.Manifest = &schema.Manifest{Arch: "amd64"}
		}, "lowering: nothing to build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			in.Manifest = &schema.Manifest{Distro: "debian", Release: "bookworm", Arch: "amd64", Agent: agent}
			tt.modify(&in)
			_, err := lowerTest(in, kataOpts())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Lower() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// graph is a decoded definition, for tests that assert properties of the
// ops rather than compare the whole dump.
type graph struct {
	def      *bkllb.Definition
	ops      map[digest.Digest]*pb.Op
	digests  []digest.Digest // in definition order
	terminal *pb.Op
}

func decode(t *testing.T, def *bkllb.Definition) *graph {
	t.Helper()
	g := &graph{def: def, ops: map[digest.Digest]*pb.Op{}}
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(dt)
		g.ops[d] = &op
		g.digests = append(g.digests, d)
		g.terminal = &op
	}
	return g
}

func (g *graph) name(d digest.Digest) string {
	return g.def.Metadata[d].Description["llb.customname"]
}

// each calls f for every op but the terminal one, in definition order.
func (g *graph) each(f func(d digest.Digest, op *pb.Op)) {
	for _, d := range g.digests[:len(g.digests)-1] {
		f(d, g.ops[d])
	}
}

// check returns the digest and exec of the rootfs check step.
func (g *graph) check(t *testing.T) (digest.Digest, *pb.ExecOp) {
	t.Helper()
	var found []digest.Digest
	g.each(func(d digest.Digest, op *pb.Op) {
		if e := op.GetExec(); e != nil && slices.Equal(e.Meta.Args[:2], []string{HelperBin, "check"}) {
			found = append(found, d)
		}
	})
	if len(found) != 1 {
		t.Fatalf("%d check steps, want 1", len(found))
	}
	return found[0], g.ops[found[0]].GetExec()
}

func TestLowerKataExecs(t *testing.T) {
	// The steps that run a program, by name: nothing runs that the reviewer
	// does not expect, and nothing reaches the network (fetches are HTTP
	// sources checked by digest).
	want := map[string][]string{
		"systemd": {
			"base: dpkg --install 4 packages",
			"base: drop POSIX ACLs",
			"base: extract 2 essential packages",
			"check: --root /target --init systemd --agent /.rootfsc-agent/usr/bin/kata-agent",
			"kata: chrony to the PTP clock; tmp.mount; slim (units, docs, man pages, locales)",
			"modules: depmod 6.1.0-27-amd64",
			"modules: extract lib/modules of linux-image-6.1.0-27-amd64 6.1.115-1",
		},
		"agent-init": {
			"base: dpkg --install 4 packages",
			"base: drop POSIX ACLs",
			"base: extract 2 essential packages",
			"check: --root /target --init agent --agent /.rootfsc-agent/usr/sbin/init",
			"kata: chrony to the PTP clock",
			"modules: depmod 6.1.0-27-amd64",
			"modules: depmod 6.1.0-27-amd64 of the included modules",
			"modules: keep virtio_* vmw_vsock_virtio_transport and their dependencies",
		},
		"overlay": {
			"check: --root /target --overlay --init systemd --agent /.rootfsc-agent/usr/bin/kata-agent",
		},
	}
	for _, c := range kataCases() {
		t.Run(c.name, func(t *testing.T) {
			g := decode(t, lowerKata(t, c).Def)
			var got []string
			g.each(func(d digest.Digest, op *pb.Op) {
				e := op.GetExec()
				if e == nil {
					return
				}
				got = append(got, g.name(d))
				if e.Network != pb.NetMode_NONE {
					t.Errorf("exec %q: network %v, want NONE", g.name(d), e.Network)
				}
				if e.Security != pb.SecurityMode_SANDBOX {
					t.Errorf("exec %q: security %v, want SANDBOX", g.name(d), e.Security)
				}
			})
			slices.Sort(got)
			if diff := cmp.Diff(want[c.name], got); diff != "" {
				t.Errorf("exec steps mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLowerKataCheckStep(t *testing.T) {
	tests := map[string]struct {
		args   []string
		layers int // inputs of the merge the check mounts at /target
	}{
		// base, modules, kata edits, glue, policy, agent, files
		"systemd":    {[]string{"/.rootfsc/rootfsc-helper", "check", "--root", "/target", "--init", "systemd", "--agent", "/.rootfsc-agent/usr/bin/kata-agent"}, 7},
		"agent-init": {[]string{"/.rootfsc/rootfsc-helper", "check", "--root", "/target", "--init", "agent", "--agent", "/.rootfsc-agent/usr/sbin/init"}, 6},
		// glue, policy, agent, files
		"overlay": {[]string{"/.rootfsc/rootfsc-helper", "check", "--root", "/target", "--overlay", "--init", "systemd", "--agent", "/.rootfsc-agent/usr/bin/kata-agent"}, 4},
	}
	for _, c := range kataCases() {
		t.Run(c.name, func(t *testing.T) {
			tt := tests[c.name]
			g := decode(t, lowerKata(t, c).Def)
			checkDigest, e := g.check(t)
			op := g.ops[checkDigest]
			if diff := cmp.Diff(tt.args, e.Meta.Args); diff != "" {
				t.Errorf("check args mismatch (-want +got):\n%s", diff)
			}
			mounts := map[string]*pb.Mount{}
			for _, m := range e.Mounts {
				mounts[m.Dest] = m
			}

			// What is exported is the check's /target: a failed check fails the build.
			target := mounts[CheckTarget]
			if target == nil || target.Readonly || target.Output < 0 {
				t.Fatalf("check: /target mount %v, want a writable mount with an output", target)
			}
			out := g.terminal.Inputs[0]
			if digest.Digest(out.Digest) != checkDigest || out.Index != target.Output {
				t.Errorf("definition output is %s.%d, want the check's /target (%s.%d)", out.Digest, out.Index, checkDigest, target.Output)
			}
			mergeDigest := digest.Digest(op.Inputs[target.Input].Digest)
			merge := g.ops[mergeDigest].GetMerge()
			if merge == nil || len(merge.Inputs) != tt.layers {
				t.Fatalf("check: /target is %q, want a merge of %d layers", g.name(mergeDigest), tt.layers)
			}

			// The agent the check compares with is the agent layer itself, one of the merged layers.
			agent := mounts[CheckAgent]
			if agent == nil || !agent.Readonly {
				t.Fatalf("check: %s mount %v, want a read-only mount", CheckAgent, agent)
			}
			agentDigest := digest.Digest(op.Inputs[agent.Input].Digest)
			if name := g.name(agentDigest); name != "agent: one layer" {
				t.Errorf("check: %s is %q, want the agent layer", CheckAgent, name)
			}
			merged := false
			for _, in := range g.ops[mergeDigest].Inputs {
				merged = merged || digest.Digest(in.Digest) == agentDigest
			}
			if !merged {
				t.Errorf("check: the agent it mounts (%q) is not a layer of the rootfs", g.name(agentDigest))
			}
			if m := mounts[HelperDir]; m == nil || !m.Readonly {
				t.Errorf("check: helper mount %v, want read-only", m)
			}
		})
	}
}

func TestLowerKataUnits(t *testing.T) {
	// Every unit file and enable link the layers write. With the agent as
	// init there is no systemd to read them (osbuilder's AGENT_INIT=yes).
	// Over a distro tmp.mount is the edits script's (the distro's own when it ships one).
	glue := []string{
		EtcUnitDir + "/basic.target.wants/kata-containers.target",
		EtcUnitDir + "/kata-containers.target.wants/dbus.socket",
		UnitDir + "/kata-agent.service",
		UnitDir + "/kata-containers.target",
	}
	opa := []string{
		EtcUnitDir + "/kata-containers.target.wants/kata-opa.service",
		UnitDir + "/kata-opa.service",
	}
	want := map[string][]string{
		"systemd":    slices.Sorted(slices.Values(append(slices.Clone(glue), opa...))),
		"agent-init": nil,
		"overlay":    slices.Sorted(slices.Values(append(slices.Clone(glue), EtcUnitDir+"/tmp.mount"))),
	}
	for _, c := range kataCases() {
		t.Run(c.name, func(t *testing.T) {
			g := decode(t, lowerKata(t, c).Def)
			var got []string
			g.each(func(d digest.Digest, op *pb.Op) {
				for _, a := range op.GetFile().GetActions() {
					var p string
					switch {
					case a.GetMkfile() != nil:
						p = a.GetMkfile().Path
					case a.GetSymlink() != nil:
						p = a.GetSymlink().Newpath
					case a.GetCopy() != nil:
						p = a.GetCopy().Dest
					}
					if strings.HasPrefix(p, UnitDir+"/") || strings.HasPrefix(p, EtcUnitDir+"/") {
						got = append(got, p)
					}
				}
			})
			slices.Sort(got)
			if diff := cmp.Diff(want[c.name], got); diff != "" {
				t.Errorf("units mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLowerKataReproducible(t *testing.T) {
	// Every file the layers make carries the epoch (the lock's when there is
	// one), every download is checked by digest, and files copied in take the
	// epoch too; only unpacked archives keep their own times.
	epochs := map[string]int64{"systemd": 1700000000, "agent-init": 1700000000, "overlay": kataEpoch}
	for _, c := range kataCases() {
		t.Run(c.name, func(t *testing.T) {
			g := decode(t, lowerKata(t, c).Def)
			want := epochs[c.name] * 1e9
			g.each(func(d digest.Digest, op *pb.Op) {
				if s := op.GetSource(); s != nil && strings.HasPrefix(s.Identifier, "http") {
					if !strings.HasPrefix(s.Attrs["http.checksum"], "sha256:") {
						t.Errorf("%s: no sha256 checksum", s.Identifier)
					}
				}
				for _, a := range op.GetFile().GetActions() {
					var p string
					var stamp int64
					switch {
					case a.GetMkdir() != nil:
						p, stamp = a.GetMkdir().Path, a.GetMkdir().Timestamp
					case a.GetMkfile() != nil:
						p, stamp = a.GetMkfile().Path, a.GetMkfile().Timestamp
					case a.GetSymlink() != nil:
						p, stamp = a.GetSymlink().Newpath, a.GetSymlink().Timestamp
					case a.GetCopy() != nil && a.GetCopy().Src == "/" && a.GetCopy().Dest == "/":
						// A layer squashed into one keeps the times its files have.
						continue
					case a.GetCopy() != nil:
						cp := a.GetCopy()
						p, stamp = cp.Dest, cp.Timestamp
						// Archives keep the times they carry.
						if cp.AttemptUnpackDockerCompatibility {
							continue
						}
					default:
						continue
					}
					if stamp != want {
						t.Errorf("%q: %s has time %s, want the epoch %s", g.name(d), p, llbdump.Stamp(stamp), llbdump.Stamp(want))
					}
				}
			})
		})
	}
}
