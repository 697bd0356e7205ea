package build

// `rootfsc boot`: the manifest built as an initrd or a disk image (cached like any build) and
// booted under qemu with the lock's kernel or a given one, the kernel command line Kata's
// runtime uses.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rootfsc/rootfsc/engine"
	"github.com/rootfsc/rootfsc/internal/bootshim"
	"github.com/rootfsc/rootfsc/internal/disk"
	"github.com/rootfsc/rootfsc/internal/kmod"
	"github.com/rootfsc/rootfsc/internal/qemu"
)

// BootRequest is one `rootfsc boot`.
type BootRequest struct {
	// Build is the manifest's build; its outputs are ignored (the boot builds an initrd or a
	// disk image). Without a Source, Image is booted as it is.
	Build Request
	// Kind is what to boot of the manifest: "initrd" (default) or "disk".
	Kind string
	// Image is an initrd or a disk image to boot instead of a manifest's (a disk image is told
	// by its msdos label; its verity parameters are read from IMAGE.verity-params).
	Image string
	// Kernel is the kernel to boot; "" takes the lock's kernel package's image.
	Kernel string
	// NVDIMM attaches a disk image as Kata does with DAX: a read-only NVDIMM backed by the file,
	// the root /dev/pmem0p1 (mounted with -o dax unless verity is on: dm-verity has no DAX).
	NVDIMM bool
	// Modules is the modules tree (lib/modules/RELEASE) of Kernel when it is modular: the boot
	// shim in front of a disk image loads the block, file system and device-mapper modules
	// from it. With the lock's kernel it is that package's; "" with --kernel: none (a Kata
	// kernel has them built in).
	Modules string
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
	// Cmdline is the kernel command line the boot gave (after qemu's base line).
	Cmdline string
}

// KataCmdline is what Kata's runtime puts on a systemd guest's kernel command line.
const KataCmdline = "systemd.unit=kata-containers.target"

// ShimModules are the modules the boot shim loads from a modular kernel for a disk image:
// virtio-blk, the image's file systems, dm-verity and the NVDIMM stack.
var ShimModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "erofs", "dm_verity", "nfit", "nd_pmem"}

// Boot builds the manifest of req.Build as an initrd or a disk image (or takes req.Image) and
// boots it.
func Boot(ctx context.Context, req BootRequest) (*BootResult, error) {
	res := &BootResult{}
	kind := req.Kind
	if kind == "" {
		kind = "initrd"
	}
	if kind != "initrd" && kind != "disk" {
		return nil, fmt.Errorf("boot: --image %s: want initrd or disk", kind)
	}
	image, kernel, modules, cmdline := req.Image, req.Kernel, req.Modules, req.Append
	fsType := ""
	if image == "" {
		dir, err := os.MkdirTemp("", "rootfsc-boot-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		image = filepath.Join(dir, kind)
		b := req.Build
		out := engine.Output{Type: kind, Dest: image}
		if kind == "disk" {
			if out.Attrs, fsType, err = bootDiskAttrs(ctx, b); err != nil {
				return nil, err
			}
		}
		b.Outputs = []engine.Output{out}
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
			// The deb family keeps the package's lib/modules beside its boot/ (see KernelImage).
			if modules == "" {
				modules = filepath.Join(filepath.Dir(filepath.Dir(kernel)), "lib", "modules", p.Lock.Kernel.Release)
			}
		}
	} else if isDiskImage(image) {
		kind = "disk"
	}
	if kernel == "" {
		return res, errors.New("boot: an image needs --kernel")
	}
	opts := qemu.BootOpts{
		Binary: req.Qemu, Kernel: kernel, Console: req.Console, Expect: req.Expect, Timeout: req.Timeout,
	}
	if kind == "initrd" {
		opts.Initrd = image
	} else {
		line, err := diskCmdline(image, fsType, req.NVDIMM)
		if err != nil {
			return res, err
		}
		cmdline = line + " " + cmdline
		opts.Disk, opts.NVDIMM = image, req.NVDIMM
		if modules != "" {
			shim := image + ".shim"
			if err := writeShim(shim, modules); err != nil {
				return res, fmt.Errorf("boot: the boot shim: %w", err)
			}
			defer os.Remove(shim)
			opts.Initrd = shim
		}
	}
	opts.Append = strings.TrimSpace(cmdline)
	res.Cmdline = opts.Append
	br, err := qemu.Boot(ctx, opts)
	res.BootResult = br
	return res, err
}

// bootDiskAttrs are the disk output a boot builds: the manifest's first disk output when it has
// one, else Kata's measured default (ext4, dm-verity, DAX header); and its file system.
func bootDiskAttrs(ctx context.Context, b Request) (map[string]string, string, error) {
	p, err := load(ctx, b.Source, b.Opts)
	if err != nil {
		return nil, "", err
	}
	attrs := map[string]string{"fs": "ext4", "verity": "true", "dax": "true"}
	for _, o := range p.Manifest.Manifest.Outputs {
		if o.Type == "disk" {
			attrs = diskOutputAttrs(o)
			break
		}
	}
	if attrs["fs"] == "" {
		attrs["fs"] = "ext4"
	}
	return attrs, attrs["fs"], nil
}

// isDiskImage says whether the file starts with an msdos label.
func isDiskImage(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := io.ReadFull(f, b); err != nil {
		return false
	}
	return b[510] == 0x55 && b[511] == 0xaa
}

// diskCmdline is the root of a disk image attached as virtio-blk, as Kata's runtime gives it:
// the data partition read-only, or with verity parameters beside the image the dm-verity device
// over both partitions built by dm-mod.create= from them. fsType "" reads the file system from
// the partition.
func diskCmdline(image, fsType string, nvdimm bool) (string, error) {
	if fsType == "" {
		var err error
		if fsType, err = partitionFS(image); err != nil {
			return "", err
		}
	}
	line := "rootfstype=" + fsType + " ro"
	dev := "/dev/vda"
	if nvdimm {
		dev = "/dev/pmem0p"
	}
	b, err := os.ReadFile(image + "." + disk.VerityFile)
	if errors.Is(err, os.ErrNotExist) {
		if nvdimm {
			line += " rootflags=dax"
		}
		return "root=" + dev + "1 " + line, nil
	}
	if err != nil {
		return "", err
	}
	v, err := disk.ParseVerityParams(string(b))
	if err != nil {
		return "", fmt.Errorf("%s.%s: %w", image, disk.VerityFile, err)
	}
	return fmt.Sprintf("root=/dev/dm-0 dm-mod.create=%q %s", v.DMTable(dev+"1", dev+"2"), line), nil
}

// partitionFS reads the file system of the first partition: ext4's magic or erofs's.
func partitionFS(image string) (string, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", err
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := io.ReadFull(f, mbr); err != nil {
		return "", err
	}
	start := int64(binary.LittleEndian.Uint32(mbr[446+8:]))
	sb := make([]byte, 2048)
	if _, err := f.ReadAt(sb, start*512); err != nil {
		return "", err
	}
	switch {
	case sb[1024+0x38] == 0x53 && sb[1024+0x39] == 0xef:
		return "ext4", nil
	case bytes.Equal(sb[1024:1028], []byte{0xe2, 0xe1, 0xf5, 0xe0}):
		return "erofs", nil
	}
	return "", errors.New("the first partition holds neither ext4 nor erofs")
}

// writeShim writes the boot shim's initramfs: this rootfsc's helper as /init (it runs the shim
// as PID 1, see package bootshim), the modules it loads with what they depend on, and its
// config listing them in order.
func writeShim(dest, modules string) error {
	dir, err := HelperDir()
	if err != nil {
		return err
	}
	order, err := kmod.LoadOrder(modules, ShimModules)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".shim-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	add := func(name string, mode int64, src string, data []byte) error {
		if src != "" {
			if data, err = os.ReadFile(src); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"sbin/", "modules/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	if err := add("sbin/init", 0o755, filepath.Join(dir, HelperName), nil); err != nil {
		return err
	}
	var conf strings.Builder
	for i, m := range order {
		name := fmt.Sprintf("modules/%02d-%s", i, filepath.Base(m))
		if err := add(name, 0o644, filepath.Join(modules, m), nil); err != nil {
			return err
		}
		fmt.Fprintf(&conf, "module /%s\n", name)
	}
	if err := add(strings.TrimPrefix(bootshim.Config, "/"), 0o644, "", []byte(conf.String())); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	f, err := os.Create(dest)
	if err != nil {
		return err
	}
	if err := engine.WriteInitrd(tmp.Name(), f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
