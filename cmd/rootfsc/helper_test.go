package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpgradeKeepsCache: every step that runs the in-build helper is keyed by rootfsc-helper's
// bytes, not by rootfsc's. A rootfsc built with another version string (a new release whose
// helper code did not change) finds the whole base CACHED on the same daemon; a helper with
// other bytes runs the base again, so the first half of the test can fail.
func TestUpgradeKeepsCache(t *testing.T) {
	h := newHarness(t)
	dir := writeManifest(t, `distro:  "debian"
release: "bookworm"
outputs: [{type: "tar", dest: "rootfs.tar"}]
`)
	h.run(dir, true, "lock", "m.cue")
	h.run(dir, true, "build", "--locked", "--progress=plain", "m.cue")

	// The upgrade: rootfsc from the same source with another version, beside the same helper.
	upgraded := t.TempDir()
	gobuild := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(upgraded, "rootfsc"),
		"-ldflags", "-X github.com/rootfsc/rootfsc/build.Version=upgrade-test", ".")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	copyFile(t, filepath.Join(h.bin, "rootfsc-helper"), filepath.Join(upgraded, "rootfsc-helper"))
	if readFile(t, filepath.Join(h.bin, "rootfsc")) == readFile(t, filepath.Join(upgraded, "rootfsc")) {
		t.Fatal("the upgraded rootfsc has the same bytes as the first: the test would prove nothing")
	}
	up := &harness{t: t, bin: upgraded, state: h.state, env: h.env}
	if v := up.stdout(dir, "version"); !strings.Contains(v, "upgrade-test") {
		t.Fatalf("rootfsc version = %q, want the upgrade's", v)
	}
	ran, seen := stepsRun(t, up.run(dir, true, "build", "--locked", "--progress=rawjson", "m.cue"), "base:")
	if len(seen) == 0 {
		t.Fatal("the upgraded rootfsc's build showed no base step")
	}
	if len(ran) > 0 {
		t.Errorf("after a rootfsc upgrade with the same helper, base steps ran again: %q", ran)
	}

	// A helper with other bytes (still a working program: Go ignores what follows its ELF
	// segments) is another input: the base runs again.
	helper := filepath.Join(upgraded, "rootfsc-helper")
	f, err := os.OpenFile(helper, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("another helper")
	f.Close()
	ran, _ = stepsRun(t, up.run(dir, true, "build", "--locked", "--progress=rawjson", "m.cue"), "base:")
	if !slicesContainsPrefix(ran, "base: extract") {
		t.Errorf("with another helper, the base's extraction did not run again (ran %q)", ran)
	}
}

func slicesContainsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
