package kata

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// node is one entry of a test tree: a symlink when link is set, a folder
// when dir is, else a file with data and mode.
type node struct {
	link string
	dir  bool
	data string
	mode fs.FileMode
}

func dir() node                        { return node{dir: true} }
func link(target string) node          { return node{link: target} }
func file(data string) node            { return node{data: data, mode: 0o644} }
func exe(data string) node             { return node{data: data, mode: 0o755} }
func (n node) perm(m fs.FileMode) node { n.mode = m; return n }

const agentBin = "#!kata-agent 3.2.0\n"

// merged is a Debian-like merged-/usr tree with systemd as init and the
// Kata systemd parts, as the llb layers leave it.
func merged() map[string]node {
	return map[string]node{
		"bin":                     link("usr/bin"),
		"sbin":                    link("usr/sbin"),
		"lib":                     link("usr/lib"),
		"usr/sbin":                dir(),
		"usr/lib/systemd/system":  dir(),
		"usr/lib/systemd/systemd": exe("systemd"),
		"usr/sbin/init":           link("/lib/systemd/systemd"),
		"usr/bin/kata-agent":      exe(agentBin),
		"usr/lib/systemd/system/kata-agent.service":                    file("[Unit]\n"),
		"usr/lib/systemd/system/kata-containers.target":                file("[Unit]\n"),
		"etc/systemd/system/basic.target.wants/kata-containers.target": link("/usr/lib/systemd/system/kata-containers.target"),
	}
}

// agentInit is a merged-/usr tree whose /usr/sbin/init is the agent.
func agentInit() map[string]node {
	return map[string]node{
		"bin":           link("usr/bin"),
		"sbin":          link("usr/sbin"),
		"lib":           link("usr/lib"),
		"usr/sbin/init": exe(agentBin),
	}
}

// with returns t changed: a zero node deletes the entry.
func with(t map[string]node, changes map[string]node) map[string]node {
	out := map[string]node{}
	for p, n := range t {
		out[p] = n
	}
	for p, n := range changes {
		if n == (node{}) {
			delete(out, p)
		} else {
			out[p] = n
		}
	}
	return out
}

// build makes the tree under a new temporary folder and returns it.
func build(t *testing.T, tree map[string]node) string {
	t.Helper()
	root := t.TempDir()
	for p, n := range tree {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case n.link != "":
			err = os.Symlink(n.link, full)
		case n.dir:
			err = os.MkdirAll(full, 0o755)
		default:
			if err = os.WriteFile(full, []byte(n.data), n.mode); err == nil {
				// WriteFile's mode is subject to the umask.
				err = os.Chmod(full, n.mode)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// builtAgent writes the agent as the build made it, outside any root.
func builtAgent(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kata-agent")
	if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	const enoent = ": no such file or directory"
	tests := []struct {
		name string
		tree map[string]node
		opts CheckOpts
		// want gets the root, which missing files' errors name.
		want func(root string) []string
	}{
		{
			name: "systemd ok",
			tree: merged(),
			opts: CheckOpts{Init: "systemd"},
		},
		{
			name: "agent as init ok",
			tree: agentInit(),
			opts: CheckOpts{Init: "agent"},
		},
		{
			name: "no agent, distro only",
			tree: with(merged(), map[string]node{"usr/bin/kata-agent": {}}),
			opts: CheckOpts{},
		},
		{
			name: "missing /sbin/init",
			tree: with(merged(), map[string]node{"usr/sbin/init": {}}),
			opts: CheckOpts{Init: "systemd"},
			want: func(root string) []string {
				return []string{"/sbin/init: init missing (lstat " + root + "/usr/sbin/init" + enoent + ")"}
			},
		},
		{
			name: "init link dangling",
			tree: with(merged(), map[string]node{"usr/lib/systemd/systemd": {}}),
			opts: CheckOpts{Init: "systemd"},
			want: func(root string) []string {
				missing := "(lstat " + root + "/usr/lib/systemd/systemd" + enoent + ")"
				return []string{
					"/sbin/init: init missing " + missing,
					"/usr/lib/systemd/systemd: systemd missing " + missing,
					`with agent.init "systemd" the distro must install systemd`,
				}
			},
		},
		{
			name: "init not executable",
			tree: with(merged(), map[string]node{"usr/lib/systemd/systemd": exe("systemd").perm(0o644)}),
			opts: CheckOpts{Init: "systemd"},
			want: func(string) []string {
				return []string{
					"/sbin/init: init is not executable (mode 0644)",
					"/usr/lib/systemd/systemd: systemd is not executable (mode 0644)",
					`with agent.init "systemd" the distro must install systemd`,
				}
			},
		},
		{
			name: "agent not executable",
			tree: with(merged(), map[string]node{"usr/bin/kata-agent": exe(agentBin).perm(0o644)}),
			opts: CheckOpts{Init: "systemd"},
			want: func(string) []string {
				return []string{"/usr/bin/kata-agent: kata-agent is not executable (mode 0644)"}
			},
		},
		{
			name: "agent is a folder",
			tree: with(merged(), map[string]node{"usr/bin/kata-agent": dir()}),
			opts: CheckOpts{Init: "systemd"},
			want: func(string) []string {
				return []string{"/usr/bin/kata-agent: kata-agent is not a regular file (d---------)"}
			},
		},
		{
			name: "agent as init not executable",
			tree: with(agentInit(), map[string]node{"usr/sbin/init": exe(agentBin).perm(0o600)}),
			opts: CheckOpts{Init: "agent"},
			want: func(string) []string {
				// Checked once, as the agent.
				return []string{
					"/sbin/init: the agent as init is not executable (mode 0600)",
				}
			},
		},
		{
			name: "a unit is a folder",
			tree: with(merged(), map[string]node{"usr/lib/systemd/system/kata-containers.target": dir()}),
			opts: CheckOpts{Init: "systemd"},
			want: func(string) []string {
				return []string{
					"/usr/lib/systemd/system/kata-containers.target: kata-containers.target is not a regular file",
					"/etc/systemd/system/basic.target.wants/kata-containers.target: the link that starts kata-containers.target is not a regular file",
				}
			},
		},
		{
			name: "a unit masked by a link to /dev/null",
			// /dev/null is looked up in the tree, which has no /dev.
			tree: with(merged(), map[string]node{"usr/lib/systemd/system/kata-agent.service": link("/dev/null")}),
			opts: CheckOpts{Init: "systemd"},
			want: func(root string) []string {
				return []string{"/usr/lib/systemd/system/kata-agent.service: kata-agent.service missing (lstat " + root + "/dev" + enoent + ")"}
			},
		},
		{
			name: "missing units",
			tree: with(merged(), map[string]node{
				"usr/lib/systemd/system/kata-agent.service":     {},
				"usr/lib/systemd/system/kata-containers.target": {},
			}),
			opts: CheckOpts{Init: "systemd"},
			want: func(root string) []string {
				target := "(lstat " + root + "/usr/lib/systemd/system/kata-containers.target" + enoent + ")"
				return []string{
					"/usr/lib/systemd/system/kata-agent.service: kata-agent.service missing (lstat " + root + "/usr/lib/systemd/system/kata-agent.service" + enoent + ")",
					"/usr/lib/systemd/system/kata-containers.target: kata-containers.target missing " + target,
					// The link is there, but it leads nowhere.
					"/etc/systemd/system/basic.target.wants/kata-containers.target: the link that starts kata-containers.target missing " + target,
				}
			},
		},
		{
			name: "overlay systemd: no distro files checked",
			tree: with(merged(), map[string]node{
				"bin": {}, "sbin": {}, "lib": {}, "usr/sbin/init": {}, "usr/lib/systemd/systemd": {},
			}),
			opts: CheckOpts{Init: "systemd", Overlay: true},
		},
		{
			name: "overlay agent as init",
			tree: map[string]node{"usr/sbin/init": exe(agentBin)},
			opts: CheckOpts{Init: "agent", Overlay: true},
		},
		{
			name: "overlay agent as init missing",
			tree: map[string]node{"usr/bin/kata-agent": exe(agentBin)},
			opts: CheckOpts{Init: "agent", Overlay: true},
			want: func(root string) []string {
				return []string{"/usr/sbin/init: the agent as init missing (lstat " + root + "/usr/sbin" + enoent + ")"}
			},
		},
		{
			name: "overlay without agent",
			tree: map[string]node{"etc/motd": file("hi\n")},
			opts: CheckOpts{Overlay: true},
		},
		{
			name: "relative link escaping the root resolves inside it",
			// From usr/bin, nine ../ go far above the root on the host; in the
			// guest they stop at / and the agent is the one under /opt.
			tree: with(merged(), map[string]node{
				"usr/bin/kata-agent":      link("../../../../../../../../../opt/kata/bin/kata-agent"),
				"opt/kata/bin/kata-agent": exe(agentBin),
			}),
			opts: CheckOpts{Init: "systemd"},
		},
		{
			name: "links escaping the root never reach the host",
			// /bin/sh exists on the host, not in the tree.
			tree: with(merged(), map[string]node{
				"usr/lib/systemd/systemd": link("../../../../../../../../bin/sh"),
				"usr/bin/kata-agent":      link("/bin/sh"),
			}),
			opts: CheckOpts{Init: "systemd"},
			want: func(root string) []string {
				sh := "(lstat " + root + "/usr/bin/sh" + enoent + ")"
				return []string{
					"/sbin/init: init missing " + sh,
					"/usr/lib/systemd/systemd: systemd missing " + sh,
					`with agent.init "systemd" the distro must install systemd`,
					"/usr/bin/kata-agent: kata-agent missing " + sh,
				}
			},
		},
		{
			name: "link loop",
			tree: with(merged(), map[string]node{
				"usr/bin/kata-agent":      link("kata-agent.real"),
				"usr/bin/kata-agent.real": link("/bin/kata-agent"),
			}),
			opts: CheckOpts{Init: "systemd"},
			want: func(string) []string {
				return []string{"/usr/bin/kata-agent: kata-agent missing (too many levels of symbolic links)"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := build(t, tt.tree)
			var want []string
			if tt.want != nil {
				want = tt.want(root)
			}
			if diff := cmp.Diff(want, problems(t, Check(root, tt.opts))); diff != "" {
				t.Errorf("Check() problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckAgent(t *testing.T) {
	// The agent in the rootfs must be the one the manifest built, whatever
	// link leads to it.
	tests := []struct {
		name  string
		tree  map[string]node
		opts  CheckOpts
		built string
		want  []string
	}{
		{"systemd same", merged(), CheckOpts{Init: "systemd"}, agentBin, nil},
		{"systemd differs", merged(), CheckOpts{Init: "systemd"}, "#!kata-agent 3.3.0\n",
			[]string{"/usr/bin/kata-agent is not the agent from the manifest (another file has its place)"}},
		{"agent as init same", agentInit(), CheckOpts{Init: "agent"}, agentBin, nil},
		{"agent as init differs", agentInit(), CheckOpts{Init: "agent"}, "#!kata-agent 3.3.0\n",
			[]string{"/sbin/init is not the agent from the manifest (another file has its place)"}},
		{"agent as init is still systemd", with(agentInit(), map[string]node{
			"usr/sbin/init":           link("/lib/systemd/systemd"),
			"usr/lib/systemd/systemd": exe("systemd"),
		}), CheckOpts{Init: "agent"}, agentBin,
			[]string{"/sbin/init is not the agent from the manifest (another file has its place)"}},
		{"overlay agent as init differs", map[string]node{"usr/sbin/init": exe("busybox")}, CheckOpts{Init: "agent", Overlay: true}, agentBin,
			[]string{"/usr/sbin/init is not the agent from the manifest (another file has its place)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := build(t, tt.tree)
			tt.opts.Agent = builtAgent(t, tt.built)
			if diff := cmp.Diff(tt.want, problems(t, Check(root, tt.opts))); diff != "" {
				t.Errorf("Check() problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckBuiltAgentMissing(t *testing.T) {
	root := build(t, merged())
	agent := filepath.Join(t.TempDir(), "kata-agent")
	want := []string{"reading the built agent: open " + agent + ": no such file or directory"}
	got := problems(t, Check(root, CheckOpts{Init: "systemd", Agent: agent}))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Check() problems mismatch (-want +got):\n%s", diff)
	}
}

// problems returns the problems of a *CheckError, nil for no error.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("Check() error %T %v, want a *CheckError", err, err)
	}
	if len(ce.Problems) == 0 {
		t.Errorf("Check() returned a *CheckError with no problems")
	}
	return ce.Problems
}
