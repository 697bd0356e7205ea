// Package helper is rootfsc-helper, the small static binary that runs inside build steps
// (mounted read-only at /.rootfsc): it extracts packages, selects kernel modules, strips POSIX
// ACLs, reads the packages' licenses for the SBOM and checks the rootfs. It is a program of its
// own, built reproducibly (make builds it with -trimpath and no build ID or VCS stamp), because
// BuildKit keys every step that mounts it by its content: a new rootfsc whose helper code did
// not change keeps every cached base layer. It imports only the in-build parts of rootfsc (no
// resolver, no BuildKit client, no CUE).
package helper

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	apkunpack "github.com/rootfsc/rootfsc/distros/apk/unpack"
	"github.com/rootfsc/rootfsc/distros/deb/copyright"
	"github.com/rootfsc/rootfsc/distros/deb/unpack"
	"github.com/rootfsc/rootfsc/internal/disk"
	"github.com/rootfsc/rootfsc/internal/kmod"
	"github.com/rootfsc/rootfsc/internal/rootfs"
	"github.com/rootfsc/rootfsc/kata"
)

// command is one subcommand: rootfsc-helper NAME ARGS….
type command struct {
	usage string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands map[string]command

func init() {
	commands = map[string]command{
		// The deb family's stage 1 and the kernel package's modules.
		"extract": {"extract --root DIR [--usrmerge] [--only PREFIX]... DEB...", extract},
		// The apk family's base.
		"extract-apk": {"extract-apk --root DIR [--world NAME]... [--scripts] [--agent-init] APK=CHECKSUM...", extractAPK},
		"strip-acls":  {"strip-acls --root DIR", stripACLs},
		"modules":     {"modules --tree DIR --include PATTERN...", modules},
		"check":       {"check --root DIR [--init systemd|agent --agent FILE] [--overlay]", check},
		"licenses":    {"licenses --root DIR --out FILE", licenses},
		// Disk images, run in the tools rootfs.
		"disk": {"disk --rootfs DIR --out DIR --fs ext4|erofs [--verity] [--dax] [--free MIB] [--align MIB] --seed HEX --epoch N", makeDisk},
	}
}

// Main runs rootfsc-helper with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if c, ok := commands[args[0]]; ok {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, "rootfsc-helper runs inside rootfsc's build steps; usage:")
	for _, name := range []string{"extract", "extract-apk", "strip-acls", "modules", "check", "licenses", "disk"} {
		fmt.Fprintf(stderr, "  rootfsc-helper %s\n", commands[name].usage)
	}
	return 2
}

// flags makes a subcommand's flag set whose errors go to the usage line, not to pflag's output.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func usage(stderr io.Writer, name string) int {
	fmt.Fprintf(stderr, "usage: rootfsc-helper %s\n", commands[name].usage)
	return 2
}

func fail(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "rootfsc-helper %s: %v\n", name, err)
	return 1
}

// extract is [unpack.Bootstrap] with flags.
func extract(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flags("extract")
	root := fs.String("root", "", "the root to extract into")
	usrmerge := fs.Bool("usrmerge", false, "make the merged-/usr links first")
	var only multi
	fs.Var(&only, "only", "extract only entries under this path prefix (repeatable)")
	if err := fs.Parse(args); err != nil || *root == "" {
		return usage(stderr, "extract")
	}
	if err := unpack.Bootstrap(ctx, *root, fs.Args(), unpack.BootstrapOpts{UsrMerge: *usrmerge, Only: only}); err != nil {
		return fail(stderr, "extract", err)
	}
	return 0
}

// extractAPK is [apkunpack.Install] with flags: each APK=CHECKSUM is a package and the control
// checksum the lock has for it.
func extractAPK(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flags("extract-apk")
	root := fs.String("root", "", "the root to extract into")
	var world multi
	fs.Var(&world, "world", "a package of /etc/apk/world (repeatable)")
	agentInit := fs.Bool("agent-init", false, "make /sbin/init the link to /usr/sbin/init, where the agent goes")
	scripts := fs.Bool("scripts", false, "run the packages' install scripts in the root (chroot)")
	if err := fs.Parse(args); err != nil || *root == "" || fs.NArg() == 0 {
		return usage(stderr, "extract-apk")
	}
	var items []apkunpack.Item
	for _, a := range fs.Args() {
		p, sum, ok := strings.Cut(a, "=")
		if !ok || p == "" || sum == "" {
			return usage(stderr, "extract-apk")
		}
		items = append(items, apkunpack.Item{Path: p, Checksum: sum})
	}
	pkgs, err := apkunpack.Install(ctx, *root, items, world)
	if err != nil {
		return fail(stderr, "extract-apk", err)
	}
	if *scripts {
		if err := apkunpack.RunScripts(ctx, *root, pkgs); err != nil {
			return fail(stderr, "extract-apk", err)
		}
	}
	// After the scripts: busybox's makes /sbin/init its own applet.
	if *agentInit {
		if err := apkunpack.LinkInit(*root); err != nil {
			return fail(stderr, "extract-apk", err)
		}
	}
	return 0
}

// modules is modules.include: keep the matching modules and what they depend on.
func modules(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flags("modules")
	tree := fs.String("tree", "", "the modules tree (lib/modules/RELEASE), with modules.dep")
	var include multi
	fs.Var(&include, "include", "keep the modules that match this glob, with their dependencies (repeatable)")
	if err := fs.Parse(args); err != nil || *tree == "" || len(include) == 0 || fs.NArg() != 0 {
		return usage(stderr, "modules")
	}
	res, err := kmod.Select(*tree, include)
	if err != nil {
		return fail(stderr, "modules", err)
	}
	fmt.Fprintf(stdout, "kept %d modules, removed %d\n", len(res.Kept), res.Removed)
	return 0
}

func stripACLs(_ context.Context, args []string, _, stderr io.Writer) int {
	fs := flags("strip-acls")
	root := fs.String("root", "", "the tree whose POSIX ACLs go")
	if err := fs.Parse(args); err != nil || *root == "" || fs.NArg() != 0 {
		return usage(stderr, "strip-acls")
	}
	if err := rootfs.StripACLs(*root); err != nil {
		return fail(stderr, "strip-acls", err)
	}
	return 0
}

func check(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flags("check")
	root := fs.String("root", "", "the rootfs to check")
	init := fs.String("init", "", "systemd or agent (empty: no agent)")
	agent := fs.String("agent", "", "the agent binary the rootfs must hold")
	overlay := fs.Bool("overlay", false, "the rootfs is an overlay without distro files")
	if err := fs.Parse(args); err != nil || *root == "" || fs.NArg() != 0 {
		return usage(stderr, "check")
	}
	if err := kata.Check(*root, kata.CheckOpts{Init: *init, Agent: *agent, Overlay: *overlay}); err != nil {
		return fail(stderr, "check", err)
	}
	fmt.Fprintln(stdout, "rootfs check: ok")
	return 0
}

// licenses writes, as JSON to --out, the License lines every package under the root states in its
// machine-readable /usr/share/doc/PKG/copyright, for the SBOM. The root is a built rootfs, so
// every path is opened through an [os.Root]: a doc folder or copyright file that links out of it
// is not followed (the package's license is then not stated), and a package whose file is not
// DEP-5 is left out.
func licenses(_ context.Context, args []string, _, stderr io.Writer) int {
	fs := flags("licenses")
	root := fs.String("root", "", "the rootfs")
	out := fs.String("out", "", "the JSON file to write")
	if err := fs.Parse(args); err != nil || *root == "" || *out == "" || fs.NArg() != 0 {
		return usage(stderr, "licenses")
	}
	r, err := os.OpenRoot(*root)
	if err != nil {
		return fail(stderr, "licenses", err)
	}
	defer r.Close()
	found := map[string][]string{}
	docs, err := readDirNames(r, "usr/share/doc")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(stderr, "licenses", err)
	}
	for _, name := range docs {
		f, err := r.Open(path.Join("usr/share/doc", name, "copyright"))
		if err != nil {
			continue // no copyright file, or one that leaves the root
		}
		lines, err := copyright.Licenses(f)
		f.Close()
		if err == nil && len(lines) > 0 {
			found[name] = lines
		}
	}
	b, err := json.Marshal(found) // keys sorted: the same rootfs, the same bytes
	if err == nil {
		err = os.WriteFile(*out, append(b, '\n'), 0o644)
	}
	if err != nil {
		return fail(stderr, "licenses", err)
	}
	return 0
}

// readDirNames lists the names in a folder of r.
func readDirNames(r *os.Root, dir string) ([]string, error) {
	d, err := r.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// makeDisk is [disk.Make] with flags; the partitions are made in a temporary folder.
func makeDisk(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flags("disk")
	var o disk.MakeOpts
	fs.StringVar(&o.Rootfs, "rootfs", "", "the rootfs folder")
	fs.StringVar(&o.Out, "out", "", "the folder the image is written to")
	fs.StringVar(&o.FS, "fs", "ext4", "ext4 or erofs")
	fs.BoolVar(&o.Verity, "verity", false, "add the dm-verity hash partition")
	fs.BoolVar(&o.DAX, "dax", false, "add the DAX/NVDIMM header")
	fs.Int64Var(&o.FreeMiB, "free", 0, "free space in MiB")
	fs.Int64Var(&o.AlignMiB, "align", 0, "alignment in MiB")
	seed := fs.String("seed", "", "64 hex digits every identifier derives from")
	fs.Int64Var(&o.Epoch, "epoch", 0, "every time in the image")
	if err := fs.Parse(args); err != nil || o.Rootfs == "" || o.Out == "" || fs.NArg() > 0 {
		return usage(stderr, "disk")
	}
	b, err := hex.DecodeString(*seed)
	if err != nil || len(b) != len(o.Seed) {
		return fail(stderr, "disk", fmt.Errorf("--seed %q: want 64 hex digits", *seed))
	}
	copy(o.Seed[:], b)
	work, err := os.MkdirTemp("", "rootfsc-disk-")
	if err != nil {
		return fail(stderr, "disk", err)
	}
	defer os.RemoveAll(work)
	o.Work, o.Log = work, stderr
	if err := disk.Make(ctx, o); err != nil {
		return fail(stderr, "disk", err)
	}
	return 0
}
