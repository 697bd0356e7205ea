package qemu

// A /dev/kvm that exists says little: under nested virtualisation qemu can open it and then
// abort when it loads the vCPU's registers ("failed to set MSR 0x10a"). The only proof that KVM
// works is a guest that runs, so the probe boots a VM without a kernel or disks and waits for
// the firmware to write to the debug console, which it does with its first instructions.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultBinary is the qemu executable [Probe] runs when [Opts.Binary] is empty.
const DefaultBinary = "qemu-system-x86_64"

// Accel is the accelerator a VM on this host should use.
type Accel struct {
	// Name is "kvm" or "tcg".
	Name string
	// Reason says why KVM is not used; it is empty when Name is "kvm".
	Reason string
}

// Args returns the qemu arguments that select the accelerator ("-accel", Name).
func (a Accel) Args() []string { return []string{"-accel", a.Name} }

// KVM reports whether the accelerator is KVM.
func (a Accel) KVM() bool { return a.Name == "kvm" }

// Opts configures [Probe].
type Opts struct {
	// Binary is the qemu executable, a path or a name looked up in PATH; default [DefaultBinary].
	Binary string
	// CPU is the -cpu model the VM will use; default "max". It matters: the MSR that nested
	// KVM refuses is one that "max" and "host" expose.
	CPU string
	// Timeout bounds the probe VM's run; default 10 s. A guest that has not written within it
	// counts as KVM not working.
	Timeout time.Duration
	// Kernel, when set, is a Linux kernel the probe boots (without an initrd) instead of the
	// firmware alone, and KVM counts as working only once the kernel prints its banner: on some
	// nested hosts the firmware runs under KVM and the kernel then hangs before its first line.
	Kernel string
}

// kvmDevice is KVM's device node; a variable for tests.
var kvmDevice = "/dev/kvm"

// Probe runs a VM with KVM for as long as it takes its firmware to print (a few tens of
// milliseconds when KVM works) (or, with [Opts.Kernel], for the kernel to print its banner) and returns "kvm" when it did, else "tcg" with the reason: no
// /dev/kvm, qemu's own error (such as "failed to set MSR 0x10a"), or no guest output in time.
// It returns an error only when qemu cannot be started at all.
func Probe(ctx context.Context, opts Opts) (Accel, error) {
	opts = withDefaults(opts)
	bin, err := exec.LookPath(opts.Binary)
	if err != nil {
		return Accel{}, fmt.Errorf("probing KVM: %w", err)
	}
	if _, err := os.Stat(kvmDevice); err != nil {
		return tcg("%s: %v", kvmDevice, errors.Unwrap(err)), nil
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	args := []string{"-machine", "q35", "-accel", "kvm", "-cpu", opts.CPU, "-m", "64", "-smp", "1",
		"-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none", "-parallel", "none"}
	if opts.Kernel == "" {
		// SeaBIOS and OVMF both log to port 0x402.
		args = append(args, "-serial", "none", "-chardev", "stdio,id=probe", "-device", "isa-debugcon,iobase=0x402,chardev=probe")
	} else {
		args = append(args, "-m", "256", "-serial", "stdio", "-kernel", opts.Kernel,
			"-append", "console=ttyS0 earlyprintk=serial,ttyS0,115200 loglevel=8 panic=-1")
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so a wrapper script's children go too
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Accel{}, fmt.Errorf("probing KVM: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return Accel{}, fmt.Errorf("probing KVM: %w", err)
	}
	ran := make(chan bool, 1)
	go func() {
		if opts.Kernel == "" {
			n, _ := io.ReadFull(out, make([]byte, 1))
			ran <- n == 1
		} else {
			ran <- sawBanner(out)
		}
		io.Copy(io.Discard, out)
	}()
	var a Accel
	select {
	case ok := <-ran:
		if ok {
			a = Accel{Name: "kvm"}
		}
	case <-ctx.Done():
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	waitErr := cmd.Wait()
	switch {
	case a.KVM():
		return a, nil
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Accel{}, fmt.Errorf("probing KVM: %w", ctx.Err())
	case ctx.Err() != nil && opts.Kernel != "":
		return tcg("%s under KVM printed no banner in %s", opts.Kernel, opts.Timeout), nil
	case ctx.Err() != nil:
		return tcg("a VM with KVM gave no sign of running in %s", opts.Timeout), nil
	}
	msg := lastLines(stderr.String(), 3)
	if msg == "" {
		msg = "no message"
	}
	return tcg("%s with KVM exited before its guest ran (%v): %s", opts.Binary, waitErr, msg), nil
}

// sawBanner reads a serial console until the kernel's "Linux version" banner; false at its end.
func sawBanner(r io.Reader) bool {
	var seen []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		seen = append(seen, buf[:n]...)
		if bytes.Contains(seen, []byte("Linux version")) {
			return true
		}
		if len(seen) > 1<<16 {
			seen = seen[len(seen)-64:]
		}
		if err != nil {
			return false
		}
	}
}

func tcg(format string, args ...any) Accel {
	return Accel{Name: "tcg", Reason: fmt.Sprintf(format, args...)}
}

func withDefaults(o Opts) Opts {
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.CPU == "" {
		o.CPU = "max"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	return o
}

// lastLines returns the last n non-empty lines of s joined with "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

var (
	cacheMu sync.Mutex
	cache   = map[Opts]Accel{}
)

// Detect is [Probe] run once per process for each set of [Opts]: every VM a process starts
// gets the same answer without paying for the probe again. Errors are not cached.
func Detect(ctx context.Context, opts Opts) (Accel, error) {
	opts = withDefaults(opts)
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if a, ok := cache[opts]; ok {
		return a, nil
	}
	a, err := Probe(ctx, opts)
	if err != nil {
		return Accel{}, err
	}
	cache[opts] = a
	return a, nil
}
