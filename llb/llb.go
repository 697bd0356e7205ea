package llb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/schema"
)

// DefaultContext is the name of the [bkllb.Local] that carries the build context when
// [Opts.Context] is empty: buildctl's `--local context=DIR`.
const DefaultContext = "context"

// HelperDir is where the helper state is mounted; the binary is [HelperBin].
const HelperDir = family.HelperDir

// HelperBin is the in-build helper binary, rootfsc-helper.
const HelperBin = family.HelperBin

// Input is what [Lower] turns into LLB.
type Input struct {
	// Manifest says which Kata layers to add (agent, modules, policy, glue, files).
	Manifest *schema.Manifest
	// Base is the distro's base layer lowered by its package family; nil in overlay mode (a
	// manifest without distro), which lowers only the Kata layers.
	Base *family.Base
	// Epoch is the time of every file the Kata layers write (the lock's SOURCE_DATE_EPOCH, or
	// in overlay mode $SOURCE_DATE_EPOCH, else 0).
	Epoch int64
	// DefaultPackages is the release's default set, recorded in osbuilder.yaml.
	DefaultPackages []string
	// BuiltinPolicy is the text of Manifest.Policy.Builtin.
	BuiltinPolicy []byte
	// Source, when set, gives every op the position of the manifest field it comes from.
	Source *Source
}

// Opts tunes [Lower].
type Opts struct {
	// Helper is the state holding the static rootfsc-helper binary at /rootfsc-helper (and
	// nothing else, so that the steps that mount it are keyed by the helper's bytes alone).
	Helper bkllb.State
	// Context is the name of the local holding the build context; default [DefaultContext].
	// Every local path of the manifest is relative to it.
	Context string
	// BuilderVersion is the rootfsc version recorded in osbuilder.yaml.
	BuilderVersion string
}

// Result is the lowered rootfs.
type Result struct {
	// Rootfs is the merged rootfs: what outputs export. Each of its layers (base, modules,
	// kata edits, kata glue, policy, agent, files) is one layer of an image.
	Rootfs bkllb.State
	// Check runs osbuilder's check_rootfs over Rootfs; solve it before exporting Rootfs.
	Check bkllb.State
	// Checked is Rootfs as the check's mount: one state that cannot be exported unless the
	// check passed, for a single definition (`rootfsc llb`).
	Checked bkllb.State
	// Layers names the merged layers, in order.
	Layers []string
}

// Lower builds the rootfs graph: the Kata layers (agent, kernel modules, policy, glue, extra
// files) are separate states merged over the base, so each is cached on its own, and a last step
// checks what osbuilder's check_rootfs checks.
func Lower(ctx context.Context, in Input, opts Opts) (*Result, error) {
	if in.Manifest == nil {
		return nil, errors.New("lowering: no manifest")
	}
	if opts.Context == "" {
		opts.Context = DefaultContext
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &layers{locator: newLocator(in.Source), m: in.Manifest, in: in, opts: opts,
		epoch: time.Unix(in.Epoch, 0).UTC(), helper: opts.Helper}
	if in.Base != nil {
		l.base = &in.Base.State
	}
	l.empty = bkllb.Scratch().File(bkllb.Mkdir("/", 0o755, bkllb.WithParents(true), l.root(), l.created()),
		bkllb.WithCustomName("rootfs: empty root"))
	res, err := l.rootfs()
	if err != nil {
		return nil, fmt.Errorf("lowering: %w", err)
	}
	return res, nil
}

// BaseProgress is the progress group and source location the base's ops get, for the family's
// lowering: the manifest's release field.
func BaseProgress(src *Source, distro, release string) bkllb.ConstraintsOpt {
	return newLocator(src).at("release", bkllb.ProgressGroup("base", "base "+distro+" "+release, false))
}

// ModulesProgress is the progress group and source location of the kernel modules layer.
func ModulesProgress(src *Source) bkllb.ConstraintsOpt {
	return newLocator(src).at("modules", modulesGroup)
}

var modulesGroup = bkllb.ProgressGroup("modules", "kernel modules", false)

// valid reports whether s is non-empty, starts with an alphanumeric and otherwise holds only
// alphanumerics and the given punctuation.
func valid(s, punct string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && strings.ContainsRune(punct, c):
		default:
			return false
		}
	}
	return s != ""
}
