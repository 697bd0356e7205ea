package main

// rootfsc build --check: a second build with every step run again, ignoring the cache, compared
// with the first.

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestBuildCheck(t *testing.T) {
	h := newHarness(t)
	t.Run("an overlay is the same without the cache", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
		writeFile(t, filepath.Join(dir, "m.cue"), `agent: {file: "kata-agent", init: "agent"}
policy: {builtin: "allow-set-policy", engine: "agent-builtin"}
files: "/etc/motd": content: "checked\n"
`)
		out := h.run(dir, true, "build", "--check", "-o", "type=tar,dest=rootfs.tar", "-o", "type=initrd,dest=initrd.img",
			"-o", "type=sbom,dest=rootfs.spdx.json", "m.cue")
		if !strings.Contains(out, "check: the build without the cache gave the same rootfs and outputs") {
			t.Errorf("build --check did not say the builds are the same:\n%s", tail([]byte(out)))
		}
	})
	t.Run("a package whose maintainer script makes keys", func(t *testing.T) {
		// openssh-server's postinst makes the host keys: new ones on every build.
		dir := writeManifest(t, `distro:  "debian"
release: "bookworm"
packages: ["openssh-server"]
`)
		out := h.run(dir, false, "build", "--check", "--progress=quiet", "-o", "type=tar,dest=rootfs.tar", "m.cue")
		if i := strings.Index(out, "build --check:"); i >= 0 {
			t.Log(out[i:])
		}
		want := regexp.MustCompile(`(?m)^  /etc/ssh/ssh_host_ed25519_key: content \(sha256 [0-9a-f]{12} then [0-9a-f]{12}\)$`)
		if !strings.Contains(out, "build --check: the build without the cache differs from the first in ") || !want.MatchString(out) {
			t.Errorf("build --check does not name the host key that differs:\n%s", tail([]byte(out)))
		}
	})
}
