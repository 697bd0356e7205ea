package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rootfsc/rootfsc/distros/lock"
)

// TestUserDistro is the acceptance for user-defined distros: a distro scaffolded with
// `rootfsc distro new` beside a manifest and filled in as a Debian derivative with another default
// package set (less added) builds with the released binary, from the real mirror, and its packages
// are installed.
func TestUserDistro(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	h.run(dir, true, "distro", "new", "kata-debian")
	def := filepath.Join(dir, "distros", "kata-debian", "distro.cue")
	edit(t, def, `defaultPackages: *["systemd", "init", "iptables", "chrony", "kmod", "dbus", "libseccomp2"] | _`,
		`defaultPackages: *["systemd", "init", "iptables", "chrony", "kmod", "dbus", "libseccomp2", "less"] | _`)
	if err := os.WriteFile(filepath.Join(dir, "m.cue"), []byte("distro: \"kata-debian\"\nrelease: \"bookworm\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	listed := h.stdout(dir, "distros")
	want := "kata-debian\tdeb\tbookworm\t" + def + "\tfixtures"
	if !slices.Contains(strings.Split(strings.TrimSpace(listed), "\n"), want) {
		t.Errorf("rootfsc distros =\n%s\nwant the line %q", listed, want)
	}

	h.run(dir, true, "build", "--progress=plain", "-o", "type=dir,dest=rootfs", "m.cue")
	lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if lk.Distro != "kata-debian" || !slices.ContainsFunc(lk.Packages, func(p lock.Package) bool { return p.Name == "less" }) {
		t.Fatalf("lock of distro %q without less: %v", lk.Distro, lk.Packages)
	}
	root := filepath.Join(dir, "rootfs")
	assertInstalled(t, root, lk)
	if _, err := os.Stat(filepath.Join(root, "usr/bin/less")); err != nil {
		t.Error(err)
	}

	// Editing the definition's default set makes the lock stale.
	edit(t, def, `"libseccomp2", "less"]`, `"libseccomp2", "less", "lsof"]`)
	out := h.run(dir, false, "vet", "m.cue")
	if !strings.Contains(out, "requested but not in the lock: lsof") {
		t.Errorf("rootfsc vet after editing the distro:\n%s\nwant the lock stale for lsof", out)
	}
}
