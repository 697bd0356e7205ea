package build

// Disk image outputs: each is a frontend option (disk:N=SPEC in-process, where the engine writes
// the N-th output from the result's extra reference; disk=SPEC with target=disk for buildctl,
// whose result is then the folder holding the image and its verity parameters).

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	bkllb "github.com/moby/buildkit/client/llb"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/engine"
	"github.com/rootfsc/rootfsc/internal/disk"
	rllb "github.com/rootfsc/rootfsc/llb"
	"github.com/rootfsc/rootfsc/schema"
)

const (
	// OptDiskPrefix is a disk image of the in-process build: disk:N=SPEC, the engine's N-th output.
	OptDiskPrefix = "disk:"
	// OptDisk is the disk image of target=disk: fs=ext4,verity=true,dax=true,free=0,align=128.
	OptDisk = "disk"
	// OptTarget "disk" makes the disk image of OptDisk the result (buildctl's door).
	OptTarget = "target"
)

// diskKeys are a disk output's options, in the manifest's names.
var diskKeys = []string{"fs", "verity", "dax", "freeSpace", "align"}

// ParseDiskSpec reads a disk output's options (fs, verity, dax, freeSpace, align) with
// osbuilder's defaults: ext4, no verity, the DAX header, no free space, 128 MiB alignment.
func ParseDiskSpec(attrs map[string]string) (disk.Spec, error) {
	s := disk.Spec{FS: "ext4", DAX: true, AlignMiB: disk.DefaultAlign}
	for k, v := range attrs {
		var err error
		switch k {
		case "fs":
			s.FS = v
		case "verity":
			s.Verity, err = strconv.ParseBool(v)
		case "dax":
			s.DAX, err = strconv.ParseBool(v)
		case "freeSpace", "free":
			s.FreeMiB, err = strconv.ParseInt(v, 10, 64)
		case "align":
			s.AlignMiB, err = strconv.ParseInt(v, 10, 64)
			if err == nil && s.AlignMiB < 1 {
				err = fmt.Errorf("want 1 MiB or more")
			}
		default:
			return s, fmt.Errorf("disk option %q: unknown (want %s)", k, strings.Join(diskKeys, ", "))
		}
		if err != nil {
			return s, fmt.Errorf("disk option %s=%q: %v", k, v, err)
		}
	}
	return s, s.Validate()
}

// formatDiskSpec is the option value of a spec.
func formatDiskSpec(s disk.Spec) string {
	return fmt.Sprintf("fs=%s,verity=%t,dax=%t,freeSpace=%d,align=%d", s.FS, s.Verity, s.DAX, s.FreeMiB, s.AlignMiB)
}

// parseDiskOpt reads an option value written by formatDiskSpec (or by hand for buildctl).
func parseDiskOpt(v string) (disk.Spec, error) {
	attrs := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if kv == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return disk.Spec{}, fmt.Errorf("disk option %q: not key=value", kv)
		}
		attrs[k] = val
	}
	return ParseDiskSpec(attrs)
}

// diskRequests are the disk images the frontend's options ask for, by result key ("" for the
// target=disk result).
func diskRequests(opts map[string]string) (map[string]disk.Spec, error) {
	out := map[string]disk.Spec{}
	for k, v := range opts {
		n, ok := strings.CutPrefix(k, OptDiskPrefix)
		if !ok {
			continue
		}
		if _, err := strconv.Atoi(n); err != nil {
			return nil, fmt.Errorf("option %s: want %sN", k, OptDiskPrefix)
		}
		s, err := parseDiskOpt(v)
		if err != nil {
			return nil, fmt.Errorf("option %s: %w", k, err)
		}
		out[engine.RefKey(n)] = s
	}
	switch t := opts[OptTarget]; t {
	case "", "rootfs":
	case "disk":
		s, err := parseDiskOpt(opts[OptDisk])
		if err != nil {
			return nil, fmt.Errorf("option %s: %w", OptDisk, err)
		}
		out[""] = s
	default:
		return nil, fmt.Errorf("option %s=%q: want rootfs or disk", OptTarget, t)
	}
	return out, nil
}

// diskSeed is what a disk image's identifiers derive from: the manifest as loaded, the lock's
// bytes and the spec, so the same inputs give the same image and other inputs another UUID.
func (p *Plan) diskSeed(s disk.Spec) ([32]byte, error) {
	h := sha256.New()
	m, err := json.Marshal(p.Manifest.Manifest)
	if err != nil {
		return [32]byte{}, err
	}
	h.Write(m)
	h.Write([]byte{0})
	if p.Lock != nil {
		lb, err := p.Lock.Marshal()
		if err != nil {
			return [32]byte{}, err
		}
		h.Write(lb)
	}
	h.Write([]byte{0})
	h.Write([]byte(formatDiskSpec(s)))
	var seed [32]byte
	copy(seed[:], h.Sum(nil))
	return seed, nil
}

// solveDisks solves each disk image over the checked rootfs, in key order.
func (p *Plan) solveDisks(ctx context.Context, c gwclient.Client, lowered *Lowered, helper bkllb.State, platform ocispecs.Platform, imports []gwclient.CacheOptionsEntry) (map[string]gwclient.Reference, error) {
	if len(p.Disks) == 0 {
		return nil, nil
	}
	if lowered.Base == nil || lowered.Base.Tools == nil {
		return nil, fmt.Errorf("disk image: an overlay manifest has no distro whose tools make it (name a distro and release)")
	}
	keys := make([]string, 0, len(p.Disks))
	for k := range p.Disks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	refs := map[string]gwclient.Reference{}
	for _, k := range keys {
		s := p.Disks[k]
		seed, err := p.diskSeed(s)
		if err != nil {
			return nil, err
		}
		st, err := rllb.Disk(rllb.DiskInput{Rootfs: lowered.Checked, Tools: *lowered.Base.Tools, Spec: s, Seed: seed, Epoch: p.Epoch},
			helper, bkllb.ProgressGroup("disk", "disk image", false))
		if err != nil {
			return nil, err
		}
		ref, err := solveState(ctx, c, st, platform, false, imports, p.cacheOpts()...)
		if err != nil {
			return nil, fmt.Errorf("disk image (%s): %w", formatDiskSpec(s), err)
		}
		refs[k] = ref
	}
	return refs, nil
}

// diskAttrs sets the frontend option of each disk output (disk:N for the N-th output) and
// clears those of an earlier list.
func diskAttrs(outputs []engine.Output, attrs map[string]string) error {
	for k := range attrs {
		if strings.HasPrefix(k, OptDiskPrefix) {
			delete(attrs, k)
		}
	}
	for i, o := range outputs {
		if o.Type != "disk" {
			continue
		}
		s, err := ParseDiskSpec(o.Attrs)
		if err != nil {
			return fmt.Errorf("disk output %s: %w", o.Dest, err)
		}
		attrs[OptDiskPrefix+strconv.Itoa(i)] = formatDiskSpec(s)
	}
	return nil
}

// diskOutputAttrs are a manifest disk output's options as -o gives them.
func diskOutputAttrs(o schema.Output) map[string]string {
	attrs := map[string]string{"verity": strconv.FormatBool(o.Verity), "freeSpace": strconv.FormatInt(o.FreeSpace, 10)}
	if o.FS != "" {
		attrs["fs"] = o.FS
	}
	if o.Dax != nil {
		attrs["dax"] = strconv.FormatBool(*o.Dax)
	}
	if o.Align != 0 {
		attrs["align"] = strconv.FormatInt(o.Align, 10)
	}
	return attrs
}
