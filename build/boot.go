package build

// `rootfsc boot`: the manifest built as an initrd (cached like any build) and booted under qemu
// with the lock's kernel or a given one, the kernel command line Kata's runtime uses.

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/rootfsc/rootfsc/engine"
	"github.com/rootfsc/rootfsc/internal/qemu"
)

// BootRequest is one `rootfsc boot`.
type BootRequest struct {
	// Build is the manifest's build; its outputs are ignored (the boot builds an initrd).
	// Without a Source, Image is booted as it is.
	Build Request
	// Image is an initrd to boot instead of a manifest's.
	Image string
	// Kernel is the kernel to boot; "" takes the lock's kernel package's image.
	Kernel string
	// KernelCache is where the lock's kernel images are kept.
	KernelCache string
	// Append is added to the kernel command line (after Kata's).
	Append string
	// Expect ends the boot successfully once a console line matches; Timeout bounds it.
	Expect  *regexp.Regexp
	Timeout time.Duration
	// Console receives the serial console.
	Console io.Writer
	// Qemu is the qemu binary ("" for qemu-system-x86_64 on PATH).
	Qemu string
}

// BootResult is how a boot ended.
type BootResult struct {
	Plan *Plan // nil when an image was booted
	*qemu.BootResult
}

// KataCmdline is what Kata's runtime puts on a systemd guest's kernel command line.
const KataCmdline = "systemd.unit=kata-containers.target"

// Boot builds the manifest of req.Build as an initrd (or takes req.Image) and boots it.
func Boot(ctx context.Context, req BootRequest) (*BootResult, error) {
	res := &BootResult{}
	initrd, kernel, cmdline := req.Image, req.Kernel, req.Append
	if initrd == "" {
		dir, err := os.MkdirTemp("", "rootfsc-boot-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		initrd = filepath.Join(dir, "initrd")
		b := req.Build
		b.Outputs = []engine.Output{{Type: "initrd", Dest: initrd}}
		built, err := Build(ctx, b)
		if built != nil {
			res.Plan = built.Plan
		}
		if err != nil {
			return res, err
		}
		p := built.Plan
		if a := p.Manifest.Manifest.Agent; p.Family != nil && (a == nil || a.Init != "agent") {
			cmdline = KataCmdline + " " + cmdline
		}
		if kernel == "" {
			if p.Family == nil || p.Lock == nil {
				return res, errors.New("boot: an overlay has no kernel of its own: give --kernel")
			}
			if kernel, err = p.Family.KernelImage(ctx, p.Request, p.Lock, req.KernelCache); err != nil {
				return res, err
			}
		}
	}
	if kernel == "" {
		return res, errors.New("boot: an image needs --kernel")
	}
	br, err := qemu.Boot(ctx, qemu.BootOpts{
		Binary: req.Qemu, Kernel: kernel, Initrd: initrd, Append: cmdline,
		Console: req.Console, Expect: req.Expect, Timeout: req.Timeout,
	})
	res.BootResult = br
	return res, err
}
