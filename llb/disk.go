package llb

import (
	"encoding/hex"
	"fmt"
	"strconv"

	bkllb "github.com/moby/buildkit/client/llb"

	"github.com/rootfsc/rootfsc/internal/disk"
)

// Paths of the disk image step, inside the tools rootfs.
const (
	DiskRootfsDir = "/rootfs"
	DiskOutDir    = "/out"
	diskWorkDir   = "/work"
)

// DiskInput is one disk image of a rootfs.
type DiskInput struct {
	// Rootfs is the (checked) rootfs; Tools the distro's tools rootfs (family.Base.Tools).
	Rootfs, Tools bkllb.State
	Spec          disk.Spec
	// Seed and Epoch make the image's bytes: see [disk.MakeOpts].
	Seed  [32]byte
	Epoch int64
}

// Disk lowers a disk image: rootfsc-helper disk runs in the tools rootfs, without network, over
// the rootfs mounted read-only, and writes into a folder of its own [disk.ImageFile] and, with
// verity, [disk.VerityFile]. No loop device and no host tool is used: mke2fs and mkfs.erofs
// populate the file system from the folder, veritysetup hashes a file.
func Disk(in DiskInput, helper bkllb.State, opts ...bkllb.ConstraintsOpt) (bkllb.State, error) {
	s := in.Spec
	if err := s.Validate(); err != nil {
		return bkllb.State{}, err
	}
	args := []string{HelperBin, "disk", "--rootfs", DiskRootfsDir, "--out", DiskOutDir, "--fs", s.FS,
		"--free", strconv.FormatInt(s.FreeMiB, 10), "--align", strconv.FormatInt(s.AlignMiB, 10),
		"--seed", hex.EncodeToString(in.Seed[:]), "--epoch", strconv.FormatInt(in.Epoch, 10)}
	name := "disk: " + s.FS
	if s.Verity {
		args = append(args, "--verity")
		name += " + dm-verity"
	}
	if s.DAX {
		args = append(args, "--dax")
		name += ", DAX header"
	}
	ro := []bkllb.RunOption{
		bkllb.Args(args),
		bkllb.AddEnv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
		bkllb.AddEnv("TMPDIR", diskWorkDir),
		bkllb.AddMount(HelperDir, helper, bkllb.Readonly),
		bkllb.AddMount(DiskRootfsDir, in.Rootfs, bkllb.Readonly),
		bkllb.AddMount(diskWorkDir, bkllb.Scratch()),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName(fmt.Sprintf("%s (align %d MiB, %d MiB free)", name, max(s.AlignMiB, 0), s.FreeMiB)),
	}
	for _, o := range opts {
		ro = append(ro, o)
	}
	return in.Tools.Run(ro...).AddMount(DiskOutDir, bkllb.Scratch()), nil
}
