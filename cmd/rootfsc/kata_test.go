package main

// Integration tests of the Kata layers: one embedded daemon builds manifests with the stand-in
// agent (testdata/standin-agent; the real kata-agent is Rust) in both init modes, over Debian and
// as an overlay, and the tests check every path, mode, owner, link and unit line KATA.md lists.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/rootfsc/rootfsc/distros/lock"
)

// entry is what one path of the rootfs must be.
type entry struct {
	path     string
	kind     string // "file", "dir", "link" or "absent"
	mode     os.FileMode
	uid, gid int
	target   string   // link target
	lines    []string // lines the file must hold
	same     string   // a host file it must equal
}

func checkEntries(t *testing.T, root string, want []entry) {
	t.Helper()
	for _, w := range want {
		p := filepath.Join(root, w.path)
		fi, err := os.Lstat(p)
		if w.kind == "absent" {
			if err == nil {
				t.Errorf("%s: present, want absent", w.path)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", w.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != w.uid || int(st.Gid) != w.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", w.path, st.Uid, st.Gid, w.uid, w.gid)
		}
		switch w.kind {
		case "link":
			got, err := os.Readlink(p)
			if err != nil || got != w.target {
				t.Errorf("%s: link to %q (%v), want %q", w.path, got, err, w.target)
			}
			continue
		case "dir":
			if !fi.IsDir() {
				t.Errorf("%s: %s, want a folder", w.path, fi.Mode().Type())
			}
		case "file":
			if !fi.Mode().IsRegular() {
				t.Errorf("%s: %s, want a regular file", w.path, fi.Mode().Type())
				continue
			}
		}
		if w.mode != 0 && fi.Mode().Perm()|fi.Mode()&os.ModeSticky != w.mode {
			t.Errorf("%s: mode %v, want %v", w.path, fi.Mode().Perm()|fi.Mode()&os.ModeSticky, w.mode)
		}
		if w.kind != "file" {
			continue
		}
		body, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			continue
		}
		have := map[string]bool{}
		for _, l := range strings.Split(string(body), "\n") {
			have[strings.TrimSpace(l)] = true
		}
		for _, l := range w.lines {
			if !have[l] {
				t.Errorf("%s: no line %q in:\n%s", w.path, l, body)
			}
		}
		if w.same != "" {
			if a, b := fileSum(t, p), fileSum(t, w.same); a != b {
				t.Errorf("%s differs from %s", w.path, w.same)
			}
		}
	}
}

var (
	agentUnitLines = []string{
		"Description=Kata Containers Agent", "Wants=kata-containers.target", "Type=simple",
		"ExecStart=/usr/bin/kata-agent", "StandardOutput=tty", "LimitNOFILE=1048576",
		"ExecStop=/bin/sync ; /usr/bin/systemctl --force poweroff", "FailureAction=poweroff",
		"OOMScoreAdjust=-997",
	}
	targetLines = []string{
		"Requires=basic.target", "Requires=tmp.mount", "Requires=kata-agent.service",
		"Wants=chronyd.service", "Conflicts=rescue.service rescue.target",
		"After=basic.target rescue.service rescue.target", "AllowIsolate=yes",
	}
	opaUnitLines = []string{
		"Description=Open Policy Agent for Kata Containers",
		"ConditionPathExists=/etc/kata-opa/default-policy.rego", "Before=kata-agent.service", "Type=simple",
		"ExecStart=/usr/local/bin/opa run --server --disable-telemetry --addr 127.0.0.1:8181 --log-level info",
		"DynamicUser=yes", "RuntimeDirectory=kata-opa", "LimitNOFILE=1048576", "Restart=no",
		"StandardError=tty", "OOMScoreAdjust=-997", "WantedBy=kata-containers.target",
	}
	tmpMountLines       = []string{"[Mount]", "What=tmpfs", "Where=/tmp", "Type=tmpfs", "Options=mode=1777,strictatime,nosuid,nodev"}
	debianTmpMountLines = []string{"[Mount]", "What=tmpfs", "Where=/tmp", "Type=tmpfs", "Options=mode=1777,strictatime,nosuid,nodev,size=50%%,nr_inodes=1m"}
	chronyLines         = []string{"refclock PHC /dev/ptp0 poll 3 dpoll -2 offset 0", "makestep 1 -1"}
)

// kataCommon is what every Kata rootfs over Debian holds.
func kataCommon(bin string) []entry {
	return []entry{
		{path: "etc/resolv.conf", kind: "file", mode: 0o644},
		{path: "etc/hosts", kind: "file", mode: 0o644, lines: []string{"127.0.0.1\tlocalhost"}},
		{path: "var/tmp", kind: "link", target: "../tmp"},
		{path: "etc/kata-opa", kind: "dir", mode: 0o755},
		{path: "etc/kata-opa/default-policy.rego", kind: "link", target: "allow-all.rego"},
		{path: "etc/kata-opa/allow-all.rego", kind: "file", mode: 0o644, lines: []string{"package agent_policy"}},
		{path: "usr/local/bin/opa", kind: "file", mode: 0o755, same: filepath.Join(bin, "opa")},
		{path: "etc/chrony/chrony.conf", kind: "file", mode: 0o644, lines: chronyLines},
		{path: "usr/lib/systemd/system/chrony.service", kind: "file", mode: 0o644, lines: []string{"ConditionPathExists=/dev/ptp0"}},
		{path: "var/lib/osbuilder/osbuilder.yaml", kind: "file", mode: 0o644},
		{path: "bin", kind: "link", target: "usr/bin"},
		{path: "sbin", kind: "link", target: "usr/sbin"},
		{path: "lib", kind: "link", target: "usr/lib"},
		{path: "tmp", kind: "dir", mode: 0o777 | os.ModeSticky},
	}
}

func TestKata(t *testing.T) {
	h := newHarness(t)
	standin := filepath.Join(h.bin, "kata-agent-standin")
	opa := filepath.Join(h.bin, "opa")
	for _, p := range []string{standin, opa} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v (make tools builds it)", err)
		}
	}

	// The systemd case's modules tree, from which the agent-init case takes a small local tree;
	// its folder outlives the subtest.
	var modulesRoot, modulesRelease string
	systemdDir := t.TempDir()

	t.Run("systemd", func(t *testing.T) {
		dir := systemdDir
		agent := filepath.Join(dir, "kata-agent")
		copyFile(t, standin, agent)
		copyFile(t, opa, filepath.Join(dir, "opa"))
		writeFile(t, filepath.Join(dir, "etc-extra/hello.conf"), "hello\n")
		writeFile(t, filepath.Join(dir, "etc-extra/sub/deep.conf"), "deep\n")
		zst := filepath.Join(dir, "bundle.tar.zst")
		if out, err := exec.Command("tar", "--zstd", "-cf", zst, "-C", filepath.Join(dir, "etc-extra"), ".").CombinedOutput(); err != nil {
			t.Fatalf("tar --zstd: %v\n%s", err, out)
		}
		writeFile(t, filepath.Join(dir, "m.cue"), `distro:  "debian"
release: "bookworm"
agent: {file: "kata-agent", version: "3.2.0-standin"}
modules: package: "linux-image-amd64"
policy: {builtin: "allow-all", opa: file: "opa"}
files: {
	"/etc/motd": content: "Kata guest\n"
	"/etc/chrony/extra.conf": {content: "# extra\n", mode: 0o640, owner: "_chrony:_chrony"}
	"/opt/numeric": {content: "#!/bin/sh\n", mode: 0o755, owner: "1234:5678"}
	"/etc/extra": source: "etc-extra"
	"/srv/bundle": tarball: path: "bundle.tar.zst"
}
outputs: [{type: "dir", dest: "rootfs"}]
`)
		h.run(dir, true, "build", "--progress=plain", "m.cue")
		root := filepath.Join(dir, "rootfs")
		chronyUID := lookupID(t, filepath.Join(root, "etc/passwd"), "_chrony")
		chronyGID := lookupID(t, filepath.Join(root, "etc/group"), "_chrony")
		want := append(kataCommon(h.bin),
			entry{path: "usr/bin/kata-agent", kind: "file", mode: 0o755, same: standin},
			entry{path: "usr/sbin/init", kind: "link", target: "/lib/systemd/systemd"},
			entry{path: "usr/lib/systemd/system/kata-agent.service", kind: "file", mode: 0o644, lines: agentUnitLines},
			entry{path: "usr/lib/systemd/system/kata-containers.target", kind: "file", mode: 0o644, lines: targetLines},
			entry{path: "usr/lib/systemd/system/kata-opa.service", kind: "file", mode: 0o644, lines: opaUnitLines},
			entry{path: "etc/systemd/system/basic.target.wants/kata-containers.target", kind: "link", target: "/usr/lib/systemd/system/kata-containers.target"},
			entry{path: "etc/systemd/system/kata-containers.target.wants/dbus.socket", kind: "link", target: "/usr/lib/systemd/system/dbus.socket"},
			entry{path: "etc/systemd/system/kata-containers.target.wants/kata-opa.service", kind: "link", target: "/usr/lib/systemd/system/kata-opa.service"},
			entry{path: "usr/lib/systemd/system/dbus.socket", kind: "file"},
			// Debian's own example unit, as osbuilder copies it: the tmpfs capped.
			entry{path: "etc/systemd/system/tmp.mount", kind: "file", mode: 0o644, lines: debianTmpMountLines},
			entry{path: "etc/motd", kind: "file", mode: 0o644, lines: []string{"Kata guest"}},
			entry{path: "etc/chrony/extra.conf", kind: "file", mode: 0o640, uid: chronyUID, gid: chronyGID},
			entry{path: "opt/numeric", kind: "file", mode: 0o755, uid: 1234, gid: 5678},
			entry{path: "etc/extra/hello.conf", kind: "file", lines: []string{"hello"}},
			entry{path: "etc/extra/sub/deep.conf", kind: "file", lines: []string{"deep"}},
			entry{path: "srv/bundle/hello.conf", kind: "file", lines: []string{"hello"}},
			entry{path: "srv/bundle/sub/deep.conf", kind: "file", lines: []string{"deep"}},
			entry{path: "usr/share/doc/systemd", kind: "dir"},
		)
		checkEntries(t, root, want)
		if a, b := readFile(t, filepath.Join(root, "etc/systemd/system/tmp.mount")), readFile(t, filepath.Join(root, "usr/share/systemd/tmp.mount")); a != b {
			t.Errorf("tmp.mount is not Debian's /usr/share/systemd/tmp.mount:\n%s", a)
		}
		checkSummary(t, root, "no", "3.2.0-standin")
		if out, err := exec.Command("chroot", root, "/bin/sh", "-c", "command -v systemctl && dpkg-query -W systemd").CombinedOutput(); err != nil {
			t.Errorf("the base is not usable: %v\n%s", err, out)
		}

		t.Run("modules from the Debian kernel package", func(t *testing.T) {
			lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
			if err != nil {
				t.Fatal(err)
			}
			if lk.Kernel == nil {
				t.Fatal("the lock pins no kernel")
			}
			rel := lk.Kernel.Release
			modulesRoot, modulesRelease = filepath.Join(root, "usr/lib/modules", rel), rel
			dep, err := os.ReadFile(filepath.Join(root, "usr/lib/modules", rel, "modules.dep"))
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`(?m)^kernel/drivers/net/vxlan/vxlan\.ko(\.xz)?: .*udp_tunnel`).Match(dep) {
				t.Errorf("modules.dep lists no vxlan with its dependencies:\n%.2000s", dep)
			}
			for _, m := range []string{"vxlan", "virtio_net"} {
				out, err := exec.Command("chroot", root, "modprobe", "-S", rel, "--dry-run", "--show-depends", m).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "insmod ") {
					t.Errorf("modprobe --dry-run --show-depends %s: %v\n%s", m, err, out)
				}
			}
			// Only the modules tree joins the rootfs: not the kernel image, not the package.
			if _, err := os.Stat(filepath.Join(root, "boot/vmlinuz-"+rel)); err == nil {
				t.Error("the kernel image is in the rootfs")
			}
			out, _ := exec.Command("chroot", root, "dpkg-query", "-W", lk.Kernel.Name).CombinedOutput()
			if strings.Contains(string(out), lk.Kernel.Version) {
				t.Errorf("the kernel package is installed: %s", out)
			}
		})

		t.Run("a new agent rebuilds only the agent layer", func(t *testing.T) {
			f, err := os.OpenFile(agent, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("\x00rebuilt"))
			f.Close()
			out := h.run(dir, true, "build", "--locked", "--progress=rawjson", "m.cue")
			ran, seen := stepsRun(t, out, "base:", "modules:", "policy:", "kata:", "files:", "agent:")
			var stale []string
			agentRan := false
			for _, n := range ran {
				if strings.HasPrefix(n, "agent:") {
					agentRan = true
				} else {
					stale = append(stale, n)
				}
			}
			if len(stale) > 0 {
				t.Errorf("steps outside the agent layer ran again: %q", stale)
			}
			if !agentRan || len(seen) < 5 {
				t.Errorf("the agent layer did not run (seen %q)", seen)
			}
			if a, b := fileSum(t, filepath.Join(root, "usr/bin/kata-agent")), fileSum(t, agent); a != b {
				t.Error("the rootfs holds the old agent")
			}
		})

		t.Run("modules.include keeps what it names and their dependencies", func(t *testing.T) {
			m := strings.Replace(readFile(t, filepath.Join(dir, "m.cue")), `modules: package: "linux-image-amd64"`,
				`modules: {package: "linux-image-amd64", include: ["vxlan", "virtio_*", "vmw_vsock_virtio_transport"]}`, 1)
			writeFile(t, filepath.Join(dir, "include.cue"), m)
			copyFile(t, filepath.Join(dir, "m.cue.lock.json"), filepath.Join(dir, "include.cue.lock.json"))
			h.run(dir, true, "build", "--locked", "-o", "type=dir,dest=rootfs-include", "include.cue")
			root := filepath.Join(dir, "rootfs-include")
			rel := modulesRelease
			for _, m := range []string{"vxlan", "virtio_net", "virtio_blk", "vmw_vsock_virtio_transport"} {
				out, err := exec.Command("chroot", root, "modprobe", "-S", rel, "--dry-run", "--show-depends", m).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "insmod ") {
					t.Errorf("modprobe --dry-run --show-depends %s: %v\n%s", m, err, out)
				}
			}
			// udp_tunnel is vxlan's dependency; btrfs is named by nothing.
			dep := readFile(t, filepath.Join(root, "usr/lib/modules", rel, "modules.dep"))
			if !regexp.MustCompile(`(?m)^kernel/net/ipv4/udp_tunnel\.ko(\.xz)?:`).MatchString(dep) || strings.Contains(dep, "btrfs") {
				t.Errorf("modules.dep does not hold exactly the included modules and their dependencies:\n%.3000s", dep)
			}
			tree := dirBytes(t, filepath.Join(root, "usr/lib/modules", rel))
			t.Logf("modules tree with include: %d KB (all of them: %d MB)", tree>>10, dirBytes(t, modulesRoot)>>20)
			if tree > 16<<20 {
				t.Errorf("the included modules take %d MB, want a few", tree>>20)
			}
		})
	})

	t.Run("agent as init", func(t *testing.T) {
		dir := t.TempDir()
		// The agent tarball and OPA come by URL with their sha256, from a server on 127.0.0.1.
		web := t.TempDir()
		agentTar(t, filepath.Join(web, "kata-agent.tar.gz"), standin)
		copyFile(t, opa, filepath.Join(web, "opa"))
		srv := httptest.NewServer(http.FileServer(http.Dir(web)))
		defer srv.Close()
		writeFile(t, filepath.Join(dir, "allow-all.rego"), readFile(t, "../../policies/allow-all.rego"))
		// A local modules tree (KERNEL_MODULES_DIR): three modules of the systemd case's kernel.
		if modulesRoot == "" {
			t.Fatal("no modules tree from the systemd case")
		}
		tree := filepath.Join(dir, "modules", modulesRelease)
		for _, m := range []string{"vxlan", "udp_tunnel", "ip6_udp_tunnel"} {
			var matches []string
			for _, depth := range []string{"*/*", "*/*/*"} {
				found, _ := filepath.Glob(filepath.Join(modulesRoot, "kernel", depth, m+".ko*"))
				matches = append(matches, found...)
			}
			if len(matches) != 1 {
				t.Fatalf("module %s: found %q", m, matches)
			}
			rel, _ := filepath.Rel(modulesRoot, matches[0])
			if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			copyFile(t, matches[0], filepath.Join(tree, rel))
		}
		writeFile(t, filepath.Join(dir, "m.cue"), `distro:  "debian"
release: "bookworm"
agent: {tarball: {url: "`+srv.URL+`/kata-agent.tar.gz", sha256: "`+fileSum(t, filepath.Join(web, "kata-agent.tar.gz"))+`"}, init: "agent"}
modules: dir: "modules/`+modulesRelease+`"
policy: {file: "allow-all.rego", opa: {url: "`+srv.URL+`/opa", sha256: "`+fileSum(t, opa)+`"}}
slim: true
`)
		h.run(dir, true, "build", "--progress=plain", "-o", "type=dir,dest=rootfs", "m.cue")
		root := filepath.Join(dir, "rootfs")
		want := append(kataCommon(h.bin),
			entry{path: "usr/sbin/init", kind: "file", mode: 0o755, same: standin},
			entry{path: "usr/bin/kata-agent", kind: "absent"},
			entry{path: "usr/lib/systemd/system/kata-agent.service", kind: "absent"},
			entry{path: "usr/lib/systemd/system/kata-containers.target", kind: "absent"},
			entry{path: "usr/lib/systemd/system/kata-opa.service", kind: "absent"},
			entry{path: "etc/systemd/system/basic.target.wants/kata-containers.target", kind: "absent"},
			entry{path: "etc/systemd/system/tmp.mount", kind: "absent"},
			// slim
			entry{path: "usr/lib/systemd/system/systemd-journald.service", kind: "absent"},
			entry{path: "usr/lib/systemd/system/systemd-udevd.service", kind: "absent"},
			entry{path: "usr/lib/systemd/system/systemd-timesyncd.service", kind: "absent"},
			entry{path: "usr/lib/systemd/system-generators/systemd-getty-generator", kind: "absent"},
			entry{path: "usr/share/doc/systemd", kind: "absent"},
			entry{path: "usr/share/man/man1", kind: "absent"},
			entry{path: "usr/share/terminfo", kind: "absent"},
			entry{path: "usr/share/bash-completion", kind: "absent"},
			entry{path: "var/lib/dpkg/status", kind: "file"},
		)
		checkEntries(t, root, want)
		checkSummary(t, root, "yes", "unknown")
		dep := readFile(t, filepath.Join(root, "usr/lib/modules", modulesRelease, "modules.dep"))
		if !regexp.MustCompile(`(?m)^kernel/drivers/net/vxlan/vxlan\.ko(\.xz)?: .*udp_tunnel`).MatchString(dep) {
			t.Errorf("depmod did not run over the local modules tree; modules.dep:\n%s", dep)
		}
		if out, err := exec.Command("chroot", root, "modprobe", "-S", modulesRelease, "--dry-run", "--show-depends", "vxlan").CombinedOutput(); err != nil {
			t.Errorf("modprobe --dry-run --show-depends vxlan: %v\n%s", err, out)
		}
	})

	t.Run("overlay", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, standin, filepath.Join(dir, "kata-agent"))
		writeFile(t, filepath.Join(dir, "m.cue"), `agent: file: "kata-agent"
policy: {builtin: "allow-set-policy", engine: "agent-builtin"}
files: "/etc/motd": content: "overlay\n"
outputs: [{type: "tar", dest: "overlay.tar"}, {type: "dir", dest: "overlay"}]
`)
		h.run(dir, true, "build", "--progress=plain", "m.cue")
		root := filepath.Join(dir, "overlay")
		checkEntries(t, root, []entry{
			{path: "usr/bin/kata-agent", kind: "file", mode: 0o755, same: standin},
			{path: "usr/lib/systemd/system/kata-agent.service", kind: "file", lines: agentUnitLines},
			{path: "usr/lib/systemd/system/kata-containers.target", kind: "file", lines: targetLines},
			{path: "etc/systemd/system/tmp.mount", kind: "file", lines: tmpMountLines},
			{path: "etc/kata-opa/default-policy.rego", kind: "link", target: "allow-set-policy.rego"},
			{path: "etc/kata-opa/allow-set-policy.rego", kind: "file", mode: 0o644},
			{path: "usr/local/bin/opa", kind: "absent"},
			{path: "usr/lib/systemd/system/kata-opa.service", kind: "absent"},
			{path: "var/tmp", kind: "link", target: "../tmp"},
			{path: "etc/resolv.conf", kind: "file", mode: 0o644},
			// Only the OPA service needs localhost; an overlay leaves the tree's /etc/hosts alone.
			{path: "etc/hosts", kind: "absent"},
			{path: "etc/motd", kind: "file", lines: []string{"overlay"}},
			{path: "bin", kind: "absent"},
			{path: "etc/passwd", kind: "absent"},
			{path: "var/lib/dpkg", kind: "absent"},
		})
		names := tarNames(t, filepath.Join(dir, "overlay.tar"))
		for _, n := range []string{"usr/bin/kata-agent", "etc/kata-opa/default-policy.rego", "var/lib/osbuilder/osbuilder.yaml"} {
			if !names[n] {
				t.Errorf("overlay.tar has no %s", n)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "m.cue.lock.json")); err == nil {
			t.Error("an overlay wrote a lock")
		}

		// The same definition through buildctl, with the locals `rootfsc llb` names on stderr.
		cmd := exec.Command(filepath.Join(h.bin, "rootfsc"), "llb", "m.cue")
		cmd.Dir, cmd.Env = dir, h.env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		def, err := cmd.Output()
		if err != nil {
			t.Fatalf("rootfsc llb: %v\n%s", err, stderr.String())
		}
		args := []string{"--addr", "unix://" + filepath.Join(h.state, "buildkitd.sock"), "build"}
		hint := strings.Fields(strings.TrimSpace(stderr.String()))
		for i := 1; i < len(hint); i++ {
			f := hint[i]
			switch {
			case hint[i-1] == "--local" && strings.HasPrefix(f, "rootfsc-helper="):
				args = append(args, "--local", "rootfsc-helper="+h.bin)
			case hint[i-1] == "--local":
				args = append(args, "--local", f)
			case hint[i-1] == "--output":
				args = append(args, "--output", strings.Replace(f, "dest=ROOTFS.tar", "dest="+filepath.Join(dir, "buildctl.tar"), 1))
			}
		}
		bc := exec.Command(filepath.Join(h.bin, "buildctl"), args...)
		bc.Stdin = bytes.NewReader(def)
		if out, err := bc.CombinedOutput(); err != nil {
			t.Fatalf("buildctl %q: %v\n%s", args, err, tail(out))
		}
		if a, b := fileSum(t, filepath.Join(dir, "buildctl.tar")), fileSum(t, filepath.Join(dir, "overlay.tar")); a != b {
			t.Errorf("buildctl's tar %s differs from rootfsc's %s", a, b)
		}
	})

	t.Run("a failed check exports nothing", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, standin, filepath.Join(dir, "kata-agent"))
		// A file of the manifest takes the agent's place: the check must notice.
		writeFile(t, filepath.Join(dir, "m.cue"), `agent: file: "kata-agent"
files: "/usr/bin/kata-agent": {content: "#!/bin/sh\n", mode: 0o755}
outputs: [{type: "dir", dest: "rootfs"}]
`)
		out := h.run(dir, false, "build", "--progress=plain", "m.cue")
		// The error names the manifest field whose step failed (the agent's, for the check).
		if !strings.Contains(out, "rootfsc build: m.cue:1:1: ") {
			t.Errorf("the error does not point at the manifest:\n%s", tail([]byte(out)))
		}
		if !strings.Contains(out, "/usr/bin/kata-agent is not the agent from the manifest") {
			t.Errorf("the error does not say what is wrong:\n%s", tail([]byte(out)))
		}
		if _, err := os.Stat(filepath.Join(dir, "rootfs")); err == nil {
			t.Error("rootfs exported despite the failed check")
		}
		assertNoTemp(t, dir)
	})
}

// checkSummary checks osbuilder.yaml's fields.
func checkSummary(t *testing.T, root, agentInit, agentVersion string) {
	t.Helper()
	body := readFile(t, filepath.Join(root, "var/lib/osbuilder/osbuilder.yaml"))
	for _, re := range []string{
		`(?m)^---$`,
		`(?m)^osbuilder:\n  url: "https://github.com/rootfsc/rootfsc"\n  version: ".+"$`,
		`(?m)^rootfs-creation-time: "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000000\+0000Z"$`,
		`(?m)^description: "osbuilder rootfs"$`,
		`(?m)^file-format-version: "0\.0\.2"$`,
		`(?m)^architecture: "x86_64"$`,
		`(?m)^base-distro:\n  name: "debian"\n  version: "bookworm"\n  packages:\n    default:\n      - "chrony"\n(      - ".+"\n)*    extra:\n`,
		`(?m)^agent:\n  url: "https://github.com/kata-containers/kata-containers"\n  name: "kata-agent"\n  version: "` + regexp.QuoteMeta(agentVersion) + `"\n  agent-is-init-daemon: "` + agentInit + `"\n`,
	} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("osbuilder.yaml does not match %s:\n%s", re, body)
		}
	}
}

// agentTar writes a kata-agent tarball as Kata ships it: the binary and its units under usr/.
func agentTar(t *testing.T, dest, agent string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	bin, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{
		{"usr/bin/kata-agent", 0o755, bin},
		{"usr/lib/systemd/system/kata-agent.service", 0o644, []byte("[Service]\nExecStart=/usr/bin/kata-agent\n")},
		{"usr/lib/systemd/system/kata-containers.target", 0o644, []byte("[Unit]\n")},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(dest, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tarNames(t *testing.T, p string) map[string]bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")] = true
	}
}

func writeFile(t testing.TB, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
