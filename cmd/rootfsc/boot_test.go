package main

// A real VM boot: the Kata layers with the agent as init and the OPA service, exported as an
// initrd, booted under qemu with Debian's kernel (pinned by a lock and fetched from the mirror
// like any package). The stand-in agent, as PID 1, starts OPA, loads the default policy, asks it
// about a few requests, prints the answers on the serial console and powers the machine off.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rootfsc/rootfsc/distros/lock"
)

func TestBootAgentInit(t *testing.T) {
	h := newHarness(t)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("%v (make test installs Debian's qemu-system-x86)", err)
	}
	dir := t.TempDir()
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	writeFile(t, filepath.Join(dir, "m.cue"), `agent: {file: "kata-agent", init: "agent"}
policy: {builtin: "allow-all-except-exec-process", opa: file: "`+filepath.Join(h.bin, "opa")+`"}
outputs: [{type: "initrd", dest: "kata.initrd"}]
`)
	h.run(dir, true, "build", "--progress=plain", "m.cue")
	kernel := debianKernel(t, h)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-machine", "q35,accel=kvm:tcg", "-cpu", "max", "-m", "1024", "-smp", "2",
		"-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio",
		"-kernel", kernel, "-initrd", filepath.Join(dir, "kata.initrd"),
		"-append", "console=ttyS0 panic=-1 loglevel=4")
	out, err := cmd.CombinedOutput()
	console := string(out)
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, tail(out))
	}
	for _, want := range []string{
		"standin-agent: rootfsc's stand-in for kata-agent",
		"PID 1 (agent-init mode)",
		"standin-agent: policy /etc/kata-opa/default-policy.rego -> allow-all-except-exec-process.rego",
		"standin-agent: starting /usr/local/bin/opa run --server --disable-telemetry --addr 127.0.0.1:8181 --log-level info",
		"standin-agent: policy loaded into OPA as agent_policy",
		`standin-agent: policy CreateContainerRequest: {"result":true}`,
		`standin-agent: policy ExecProcessRequest: {"result":false}`,
		"standin-agent: done",
		"reboot: Power down",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("the console has no %q:\n%s", want, tail(out))
		}
	}
}

// debianKernel pins Debian's kernel with rootfsc lock, fetches its package from the host's mirror,
// checks its sha256 and extracts the kernel image with rootfsc's own extractor.
func debianKernel(t *testing.T, h *harness) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kernel.cue"), "distro: \"debian\"\nrelease: \"bookworm\"\nmodules: package: \"linux-image-amd64\"\n")
	h.run(dir, true, "lock", "kernel.cue")
	lk, err := lock.Read(filepath.Join(dir, "kernel.cue.lock.json"))
	if err != nil || lk.Kernel == nil {
		t.Fatalf("the lock pins no kernel: %v", err)
	}
	k := lk.Kernel
	archive := ""
	for _, s := range lk.Suites {
		if s.Name == k.Suite {
			archive = s.Archive
		}
	}
	base, ok := hostArchives(t)[archive]
	if !ok {
		t.Fatalf("no host mirror for archive %q", archive)
	}
	resp, err := http.Get(strings.TrimSuffix(base, "/") + "/" + k.Filename)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", k.Filename, resp.Status)
	}
	debPath := filepath.Join(dir, "kernel.deb")
	f, err := os.Create(debPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := fileSum(t, debPath); got != k.SHA256 {
		t.Fatalf("%s: sha256 %s, the lock says %s", k.Filename, got, k.SHA256)
	}
	root := filepath.Join(dir, "root")
	var stderr bytes.Buffer
	x := exec.Command(filepath.Join(h.bin, "rootfsc"), "internal", "extract", "--root", root, "--only", "boot/", debPath)
	x.Stderr = &stderr
	if err := x.Run(); err != nil {
		t.Fatalf("extracting boot/ of %s: %v\n%s", k.Name, err, stderr.String())
	}
	vmlinuz := filepath.Join(root, "boot", "vmlinuz-"+k.Release)
	if _, err := os.Stat(vmlinuz); err != nil {
		t.Fatal(err)
	}
	return vmlinuz
}
