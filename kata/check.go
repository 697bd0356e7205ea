package kata

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// CheckOpts says what the rootfs should be.
type CheckOpts struct {
	// Init is "systemd", "agent", or "" when the manifest has no agent.
	Init string
	// Agent is the agent binary as built (outside Root): the rootfs's
	// /usr/bin/kata-agent, or /sbin/init with Init "agent", must be this file.
	Agent string
	// Overlay means Root holds only the Kata layers, laid over a tree
	// elsewhere: the distro's files (/sbin/init, systemd) are not checked.
	Overlay bool
}

// CheckError lists everything missing or wrong, one line each.
type CheckError struct{ Problems []string }

func (e *CheckError) Error() string {
	return "rootfs check failed:\n  " + strings.Join(e.Problems, "\n  ")
}

// Check inspects the rootfs at root. Links are followed inside root, as the guest would see them.
func Check(root string, opts CheckOpts) error {
	var problems []string
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	exe := func(p, what string) (string, bool) {
		real, fi, err := rootfs.Lookup(root, p)
		switch {
		case err != nil:
			fail("%s: %s missing (%v)", p, what, err)
		case !fi.Mode().IsRegular():
			fail("%s: %s is not a regular file (%s)", p, what, fi.Mode().Type())
		case fi.Mode().Perm()&0o111 == 0:
			fail("%s: %s is not executable (mode %04o)", p, what, fi.Mode().Perm())
		default:
			return real, true
		}
		return "", false
	}
	same := func(p, real string) {
		if opts.Agent == "" {
			return
		}
		want, err := os.ReadFile(opts.Agent)
		if err != nil {
			fail("reading the built agent: %v", err)
			return
		}
		got, err := os.ReadFile(filepath.Join(root, real))
		if err != nil {
			fail("%s: %v", p, err)
			return
		}
		if !bytes.Equal(got, want) {
			fail("%s is not the agent from the manifest (another file has its place)", p)
		}
	}
	file := func(p, what string) {
		if _, fi, err := rootfs.Lookup(root, p); err != nil {
			fail("%s: %s missing (%v)", p, what, err)
		} else if !fi.Mode().IsRegular() {
			fail("%s: %s is not a regular file", p, what)
		}
	}

	// With the agent as init, /sbin/init is checked below as the agent.
	if !opts.Overlay && opts.Init != "agent" {
		exe("/sbin/init", "init")
	}
	switch opts.Init {
	case "systemd":
		if !opts.Overlay {
			if _, ok := exe("/usr/lib/systemd/systemd", "systemd"); !ok {
				fail("with agent.init \"systemd\" the distro must install systemd")
			}
		}
		if real, ok := exe("/usr/bin/kata-agent", "kata-agent"); ok {
			same("/usr/bin/kata-agent", real)
		}
		file("/usr/lib/systemd/system/kata-agent.service", "kata-agent.service")
		file("/usr/lib/systemd/system/kata-containers.target", "kata-containers.target")
		file("/etc/systemd/system/basic.target.wants/kata-containers.target", "the link that starts kata-containers.target")
	case "agent":
		p := "/sbin/init"
		if opts.Overlay {
			p = "/usr/sbin/init"
		}
		if real, ok := exe(p, "the agent as init"); ok {
			same(p, real)
		}
	}
	if problems != nil {
		return &CheckError{Problems: problems}
	}
	return nil
}
