package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeQemu puts a qemu-system-x86_64 running script on PATH; it appends its arguments to the
// returned log file, one run per line.
func fakeQemu(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	body := "#!/bin/sh\necho \"$*\" >> " + log + "\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(dir, DefaultBinary), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

func runs(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// What qemu 7.2 prints on a host whose nested KVM refuses IA32_ARCH_CAPABILITIES.
const msrAbort = `echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000e6b' >&2
echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3119: kvm_buf_set_msrs: Assertion 'ret == cpu->kvm_msr_buf->nmsrs' failed." >&2
kill -ABRT $$`

func TestProbe(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		timeout    time.Duration
		want       string // accelerator
		wantReason string // substring of the reason
	}{
		{name: "guest runs", script: "echo 'SeaBIOS (version fake)'\nexec sleep 30", want: "kvm"},
		{name: "guest runs, script lingers", script: "echo 'SeaBIOS (version fake)'\nsleep 30", want: "kvm"},
		{name: "nested KVM aborts", script: msrAbort, want: "tcg",
			wantReason: "qemu-system-x86_64 with KVM exited before its guest ran (signal: aborted): " +
				"qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000e6b; qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3119: kvm_buf_set_msrs: Assertion"},
		{name: "no kvm module", script: "echo 'Could not access KVM kernel module: No such file or directory' >&2\necho 'qemu-system-x86_64: failed to initialize kvm: No such file or directory' >&2\nexit 1",
			want: "tcg", wantReason: "(exit status 1): Could not access KVM kernel module: No such file or directory; qemu-system-x86_64: failed to initialize kvm: No such file or directory"},
		{name: "silent exit", script: "exit 0", want: "tcg", wantReason: "exited before its guest ran (<nil>): no message"},
		{name: "guest never writes", script: "exec sleep 30", timeout: 300 * time.Millisecond, want: "tcg",
			wantReason: "a VM with KVM gave no sign of running in 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := fakeQemu(t, tt.script)
			start := time.Now()
			a, err := Probe(context.Background(), Opts{Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Probe() took %s", d)
			}
			if a.Name != tt.want || !strings.Contains(a.Reason, tt.wantReason) || (tt.want == "kvm") != (a.Reason == "") {
				t.Errorf("Probe() = %+v, want %s with a reason containing %q", a, tt.want, tt.wantReason)
			}
			got := runs(t, log)
			if len(got) != 1 || !strings.Contains(got[0], "-machine q35 -accel kvm -cpu max ") {
				t.Errorf("qemu runs %q, want one with -machine q35 -accel kvm -cpu max", got)
			}
		})
	}
}

func TestProbeNoDevice(t *testing.T) {
	log := fakeQemu(t, "echo 'SeaBIOS (version fake)'\nexec sleep 30")
	old := kvmDevice
	kvmDevice = filepath.Join(t.TempDir(), "kvm")
	t.Cleanup(func() { kvmDevice = old })
	a, err := Probe(context.Background(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	want := Accel{Name: "tcg", Reason: kvmDevice + ": no such file or directory"}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("Probe() mismatch (-want +got):\n%s", diff)
	}
	if r := runs(t, log); r != nil {
		t.Errorf("qemu ran %q without a KVM device", r)
	}
}

func TestProbeNoQemu(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Probe(context.Background(), Opts{})
	if err == nil || !strings.Contains(err.Error(), `probing KVM: exec: "qemu-system-x86_64": executable file not found in $PATH`) {
		t.Fatalf("Probe() error = %v, want qemu not found", err)
	}
}

func TestDetectCaches(t *testing.T) {
	log := fakeQemu(t, msrAbort)
	opts := Opts{CPU: "max,fuzz-" + t.Name()} // a key no other test uses
	for range 3 {
		a, err := Detect(context.Background(), opts)
		if err != nil || a.KVM() {
			t.Fatalf("Detect() = %+v, %v, want tcg", a, err)
		}
	}
	if r := runs(t, log); len(r) != 1 {
		t.Errorf("qemu ran %d times for three Detect calls, want 1", len(r))
	}
	if diff := cmp.Diff([]string{"-accel", "tcg"}, (Accel{Name: "tcg"}).Args()); diff != "" {
		t.Errorf("Args() mismatch (-want +got):\n%s", diff)
	}
}

// TestProbeHost runs the probe with the host's qemu; what it finds depends on the host.
func TestProbeHost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the host's qemu")
	}
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		t.Skip(err)
	}
	start := time.Now()
	a, err := Probe(context.Background(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Probe() = %+v in %s", a, time.Since(start))
}

// TestProbeKernel: with a kernel, only its banner proves KVM; firmware output is not enough
// (the nested host where SeaBIOS runs under KVM and Linux then hangs).
func TestProbeKernel(t *testing.T) {
	for _, tt := range []struct {
		name, script, want, reason string
	}{
		{"kernel prints", "echo 'SeaBIOS (version fake)'\necho '[    0.000000] Linux version 6.1.0-fake'\nexec sleep 30", "kvm", ""},
		{"firmware only, the kernel hangs", "echo 'SeaBIOS (version fake)'\necho 'Probing EDD (edd=off to disable)... ok'\nexec sleep 30", "tcg",
			"/boot/vmlinuz-fake under KVM printed no banner in 300ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := fakeQemu(t, tt.script)
			a, err := Probe(context.Background(), Opts{Kernel: "/boot/vmlinuz-fake", Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if a.Name != tt.want || !strings.Contains(a.Reason, tt.reason) {
				t.Errorf("Probe() = %+v, want %s with a reason containing %q", a, tt.want, tt.reason)
			}
			if got := runs(t, log); len(got) != 1 || !strings.Contains(got[0], "-kernel /boot/vmlinuz-fake") {
				t.Errorf("qemu runs = %q, want one booting the kernel", got)
			}
		})
	}
}
