package main

// Real VM boots: Kata rootfs exported as initrds and booted under qemu with Debian's kernel
// (pinned by a lock and fetched from the mirror like any package), in both init modes. The
// stand-in agent finds the default policy, reaches OPA at localhost:8181 (started by itself as
// PID 1, or by systemd as kata-opa.service), prints OPA's answers on the serial console and
// powers the machine off.

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/internal/qemu"
)

func TestBoot(t *testing.T) {
	h := newHarness(t)
	if _, err := exec.LookPath(qemu.DefaultBinary); err != nil {
		t.Fatalf("%v (make test installs Debian's qemu-system-x86)", err)
	}
	// The overlay has no lock, so no kernel of its own. A /dev/kvm that nested virtualisation
	// cannot use makes qemu abort, or lets the firmware run and then hangs the kernel, so
	// rootfsc boot probes KVM by booting this kernel under it first (internal/qemu's Detect).
	kernel := debianKernel(t, h)

	// The policy's answers as the stand-in prints them, after OPA got the default policy.
	answers := []string{
		"standin-agent: policy /etc/kata-opa/default-policy.rego -> allow-all-except-exec-process.rego",
		"standin-agent: localhost is 127.0.0.1",
		"standin-agent: policy loaded into OPA as agent_policy",
		`standin-agent: policy CreateContainerRequest: {"result":true}`,
		`standin-agent: policy ExecProcessRequest: {"result":false}`,
		"standin-agent: done",
		"reboot: Power down",
	}

	t.Run("agent as init", func(t *testing.T) {
		// The Kata layers alone (an overlay), the agent as /sbin/init starting OPA itself.
		console := bootInitrd(t, h, kernel, `agent: {file: "kata-agent", init: "agent"}
policy: {builtin: "allow-all-except-exec-process", opa: file: "opa"}
`)
		for _, want := range append([]string{
			"PID 1 (agent-init mode)",
			"standin-agent: starting /usr/local/bin/opa run --server --disable-telemetry --addr 127.0.0.1:8181 --log-level info",
		}, answers...) {
			if !strings.Contains(console, want) {
				t.Errorf("the console has no %q:\n%s", want, tail([]byte(console)))
			}
		}
	})

	t.Run("systemd", func(t *testing.T) {
		// Debian with systemd: the runtime's kernel command line starts kata-containers.target,
		// which starts kata-opa.service and kata-agent.service; the agent powers off with systemctl.
		// No --kernel: boot takes the image of the lock's kernel package, whose modules (a few of
		// them) are in the rootfs; and adds Kata's systemd.unit=kata-containers.target itself.
		console := bootInitrd(t, h, "", systemdGuest)
		for _, want := range append([]string{
			"Started kata-opa.service",
			"Started kata-agent.service",
			"Kata Containers Agent Target", // reached; systemd shortens the unit name on the console
			"under systemd (INVOCATION_ID set)",
		}, answers...) {
			if !strings.Contains(stripANSI(console), want) {
				t.Errorf("the console has no %q:\n%s", want, tail([]byte(console)))
			}
		}
	})
}

const systemdGuest = `distro:  "debian"
release: "bookworm"
agent: file: "kata-agent"
modules: {package: "linux-image-amd64", include: ["virtio_*", "vmw_vsock_virtio_transport"]}
policy: {builtin: "allow-all-except-exec-process", opa: file: "opa"}
`

// TestBootDisk boots the systemd guest as Kata boots its default image: the disk image with
// dm-verity attached read-only as virtio-blk, the root the dm-verity device the kernel command
// line's dm-mod.create= describes (rootfsc boot builds it from the image's verity parameters).
// Debian's kernel is modular, so rootfsc's boot shim loads virtio-blk, ext4 and dm-verity from
// the lock's kernel package and sets up the device as the kernel's dm-init would.
func TestBootDisk(t *testing.T) {
	h := newHarness(t)
	if _, err := exec.LookPath(qemu.DefaultBinary); err != nil {
		t.Fatalf("%v (make test installs Debian's qemu-system-x86)", err)
	}
	for _, tc := range []struct{ attach, dev string }{
		{"virtio-blk", "/dev/vda"},
		// As Kata's runtime on x86: the image file is a read-only NVDIMM, its pfn block makes
		// /dev/pmem0 the image proper behind the DAX header (its second label: pmem0p1, pmem0p2).
		{"nvdimm", "/dev/pmem0p"},
	} {
		t.Run(tc.attach, func(t *testing.T) { bootDisk(t, h, tc.attach, tc.dev) })
	}
}

func bootDisk(t *testing.T, h *harness, attach, dev string) {
	console := stripANSI(bootInitrd(t, h, "", systemdGuest, "--image", "disk", "--attach", attach))
	for _, want := range []string{
		"rootfsc boot shim: mounted /dev/dm-0 (ext4) as the root",
		"Started kata-opa.service",
		"Started kata-agent.service",
		"Kata Containers Agent Target",
		"under systemd (INVOCATION_ID set)",
		"standin-agent: policy loaded into OPA as agent_policy",
		`standin-agent: policy CreateContainerRequest: {"result":true}`,
		`standin-agent: policy ExecProcessRequest: {"result":false}`,
		"standin-agent: done",
		"reboot: Power down",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("the console has no %q:\n%s", want, tail([]byte(console)))
		}
	}
	// The root really is the verity device the command line's dm-mod.create= describes.
	if !regexp.MustCompile(`rootfsc boot shim: device-mapper device dm-verity created: 0 \d+ verity 1 ` + dev + `1 ` + dev + `2 4096 4096 \d+ 0 sha256 [0-9a-f]{64} [0-9a-f]{64}`).MatchString(console) {
		t.Errorf("the console does not show the dm-verity device of the image's parameters:\n%s", tail([]byte(console)))
	}
}

// bootInitrd boots manifest (with the stand-in agent and OPA next to it) with `rootfsc boot`,
// which builds it as an initrd and boots it under qemu with kernel (or, for "", the lock's
// kernel package's image) and returns the serial console; the machine must power itself off.
func bootInitrd(t *testing.T, h *harness, kernel, manifest string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	copyFile(t, filepath.Join(h.bin, "opa"), filepath.Join(dir, "opa"))
	writeFile(t, filepath.Join(dir, "m.cue"), manifest)
	args := append([]string{"boot", "--progress=plain", "--timeout", "5m"}, extra...)
	args = append(args, "m.cue")
	if kernel != "" {
		args = append(args, "--kernel", kernel)
	}
	cmd := exec.Command(filepath.Join(h.bin, "rootfsc"), args...)
	// Its own cache: the lock's kernel image is downloaded and extracted by this boot.
	cmd.Dir, cmd.Env = dir, append(slices.Clone(h.env), "ROOTFSC_CACHE_DIR="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rootfsc %s: %v\n%s\n%s", strings.Join(args, " "), err, tail(stderr.Bytes()), tail(stdout.Bytes()))
	}
	t.Logf("%s", lastLine(stderr.String()))
	return stdout.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// stripANSI drops the colour escapes systemd puts around unit names.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';' || s[j] == '?') {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
	x := exec.Command(filepath.Join(h.bin, "rootfsc-helper"), "extract", "--root", root, "--only", "boot/", debPath)
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
