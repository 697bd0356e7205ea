package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BaseCmdline is the kernel command line of every boot: the serial console, no reboot on a
// panic, quiet kernel, systemd's status lines.
const BaseCmdline = "console=ttyS0 panic=-1 loglevel=4 systemd.show_status=1"

// BootOpts is one VM: a kernel, an initrd, a command line.
type BootOpts struct {
	// Binary and CPU are as for [Opts].
	Binary, CPU string
	// Memory is the guest's memory in MiB (default 2048); SMP its CPUs (default 2).
	Memory, SMP int
	// Kernel and Initrd are the files qemu boots (-kernel, -initrd).
	Kernel, Initrd string
	// Disk is a raw disk image attached read-only as virtio-blk (/dev/vda), as Kata's runtime
	// attaches a guest image; with NVDIMM, as a read-only NVDIMM backed by the file (/dev/pmem0,
	// through the image's pfn block: DAX), as Kata's runtime does with image= on x86.
	Disk   string
	NVDIMM bool
	// Append is added to [BaseCmdline].
	Append string
	// Accel is the accelerator; the zero value runs [Detect] with this kernel first.
	Accel Accel
	// Console receives the serial console as it comes.
	Console io.Writer
	// Expect, when set, ends the boot successfully as soon as a console line matches it (the
	// VM is stopped); without it the boot ends when the guest powers off.
	Expect *regexp.Regexp
	// Timeout bounds the boot (default 5 minutes).
	Timeout time.Duration
}

// BootResult is how a boot ended.
type BootResult struct {
	Accel Accel
	// Matched is the console line Expect matched ("" without Expect).
	Matched string
}

// Boot runs the VM of o until its guest powers off, or until a console line matches o.Expect,
// and fails when qemu fails, when the guest powers off before Expect matched, or after o.Timeout.
func Boot(ctx context.Context, o BootOpts) (*BootResult, error) {
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.CPU == "" {
		o.CPU = "max"
	}
	if o.Memory <= 0 {
		o.Memory = 2048
	}
	if o.SMP <= 0 {
		o.SMP = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Console == nil {
		o.Console = io.Discard
	}
	if o.Accel.Name == "" {
		a, err := Detect(ctx, Opts{Binary: o.Binary, CPU: o.CPU, Kernel: o.Kernel})
		if err != nil {
			return nil, err
		}
		o.Accel = a
	}
	res := &BootResult{Accel: o.Accel}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	machine, mem := "q35", strconv.Itoa(o.Memory)
	if o.NVDIMM {
		machine, mem = "q35,nvdimm=on", fmt.Sprintf("%d,slots=2,maxmem=%dM", o.Memory, o.Memory+64*1024)
	}
	args := append([]string{"-machine", machine, "-cpu", o.CPU, "-m", mem, "-smp", strconv.Itoa(o.SMP)}, o.Accel.Args()...)
	args = append(args, "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-kernel", o.Kernel)
	if o.Initrd != "" {
		args = append(args, "-initrd", o.Initrd)
	}
	switch {
	case o.Disk != "" && o.NVDIMM:
		fi, err := os.Stat(o.Disk)
		if err != nil {
			return nil, err
		}
		args = append(args, "-object", fmt.Sprintf("memory-backend-file,id=mem0,mem-path=%s,size=%d,readonly=on,share=off", qemuPath(o.Disk), fi.Size()),
			"-device", "nvdimm,id=nv0,memdev=mem0,unarmed=on")
	case o.Disk != "":
		args = append(args, "-drive", "file="+qemuPath(o.Disk)+",format=raw,if=none,id=rootfs,readonly=on",
			"-device", "virtio-blk-pci,drive=rootfs")
	}
	args = append(args, "-append", strings.TrimSpace(BaseCmdline+" "+o.Append))
	cmd := exec.CommandContext(ctx, o.Binary, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Binary, err)
	}
	var last []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(o.Console, line)
		if last = append(last, line); len(last) > 5 {
			last = last[1:]
		}
		if o.Expect != nil && res.Matched == "" && o.Expect.MatchString(stripANSI(line)) {
			res.Matched = line
			cancel()
		}
	}
	err = cmd.Wait()
	switch {
	case res.Matched != "":
		return res, nil
	case errors.Is(ctx.Err(), context.Canceled):
		return res, ctx.Err()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		if o.Expect != nil {
			return res, fmt.Errorf("the console showed nothing matching %q in %s (accel %s)", o.Expect, o.Timeout, o.Accel.Name)
		}
		return res, fmt.Errorf("the guest did not power off in %s (accel %s)", o.Timeout, o.Accel.Name)
	case err != nil:
		return res, fmt.Errorf("%s: %w: %s", o.Binary, err, strings.Join(last, "; "))
	case o.Expect != nil:
		return res, fmt.Errorf("the guest powered off before the console showed anything matching %q: %s", o.Expect, strings.Join(last, "; "))
	}
	return res, nil
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// stripANSI drops the colour escapes systemd puts around unit names.
func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// qemuPath escapes a path for a qemu option value (a comma is doubled).
func qemuPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }
