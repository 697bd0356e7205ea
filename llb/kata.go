package llb

// The Kata layers: everything osbuilder's rootfs.sh adds after the distro
// bootstrap, each its own state so that BuildKit caches it on its own, joined
// with the base by llb.Merge.

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	bkllb "github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"

	"github.com/rootfsc/rootfsc/schema"
)

// layers lowers the Kata parts of one manifest.
type layers struct {
	locator
	m     *schema.Manifest
	in    Input
	opts  Opts
	epoch time.Time
	base  *bkllb.State // nil in overlay mode
	// empty is the root every layer over scratch starts from: "/" 0755
	// root:root at the epoch. Being an op with no inputs, it is also the
	// one step BuildKit reports as run (a cache request) on every build, so
	// the layers' own steps show CACHED when they are.
	empty  bkllb.State
	helper bkllb.State
}

func (l *layers) systemd() bool { return l.m.Agent == nil || l.m.Agent.Init != "agent" }

// local returns the build context limited to the file or folder p (a clean relative path the
// pipeline has checked stays inside the context) and p's path in it. role names the layer that
// reads it, so each layer's transfer is its own op, cached on its own.
func (l *layers) local(role, p string, pg bkllb.ConstraintsOpt) (bkllb.State, string) {
	return bkllb.Local(l.opts.Context,
		bkllb.IncludePatterns([]string{p}),
		bkllb.FollowPaths([]string{p}),
		bkllb.SharedKeyHint(l.opts.Context+":"+role),
		// A fixed ID keeps the definition (and its cache keys) identical from run to run.
		bkllb.LocalUniqueID("rootfsc:"+role),
		bkllb.WithCustomName("context "+role+": "+p),
		pg,
	), "/" + p
}

// squash copies st into one layer: a layer of the rootfs is one layer of an image. BuildKit's
// copy keeps owners, modes, xattrs, hard links and times. Only for states without deletions.
func squash(st bkllb.State, name string, pg bkllb.ConstraintsOpt) bkllb.State {
	return bkllb.Scratch().File(bkllb.Copy(st, "/", "/", &bkllb.CopyInfo{CopyDirContentsOnly: true}),
		bkllb.WithCustomName(name+": one layer"), pg)
}

// fetch returns an HTTP source checked against its sha256, saved as file.
func fetchChecked(url, sha256, file, what string, pg bkllb.ConstraintsOpt) bkllb.State {
	return bkllb.HTTP(url,
		bkllb.Checksum(digest.Digest("sha256:"+sha256)),
		bkllb.Filename(file),
		bkllb.WithCustomName("fetch "+what+" "+url),
		pg,
	)
}

// tarball returns the archive's source state and the path of the archive in it.
func (l *layers) tarball(name string, t *schema.Tarball, pg bkllb.ConstraintsOpt) (bkllb.State, string) {
	if t.Path != "" {
		return l.local(name, t.Path, pg)
	}
	file := path.Base(strings.SplitN(t.URL, "?", 2)[0])
	if file == "" || file == "/" || file == "." {
		file = "archive"
	}
	return fetchChecked(t.URL, string(t.Sha256), file, name, pg), "/" + file
}

// created is the timestamp every file the layers write carries.
func (l *layers) created() bkllb.CreatedTime { return bkllb.WithCreatedTime(l.epoch) }

func (l *layers) root() bkllb.ChownOption { return bkllb.WithUIDGID(0, 0) }

// mkdirs makes dirs (and parents) 0755 root:root.
func (l *layers) mkdirs(st bkllb.State, name string, pg bkllb.ConstraintsOpt, dirs ...string) bkllb.State {
	var fa *bkllb.FileAction
	for _, d := range dirs {
		a := bkllb.Mkdir(d, 0o755, bkllb.WithParents(true), l.root(), l.created())
		if fa == nil {
			fa = a
		} else {
			fa = fa.Mkdir(d, 0o755, bkllb.WithParents(true), l.root(), l.created())
		}
	}
	if fa == nil {
		return st
	}
	return st.File(fa, bkllb.WithCustomName(name), pg)
}

// agent is the agent layer: the binary at /usr/bin/kata-agent (or as
// /sbin/init), or a tarball unpacked at /.
func (l *layers) agent() (bkllb.State, error) {
	a := l.m.Agent
	pg := l.at("agent", bkllb.ProgressGroup("agent", "agent", false))
	dest := AgentPath
	if a.Init == "agent" {
		dest = InitPath
	}
	st := l.mkdirs(l.empty, "agent: directories", pg, path.Dir(dest))
	if a.File != "" {
		src, p := l.local("agent", a.File, pg)
		return squash(st.File(bkllb.Copy(src, p, dest, &bkllb.CopyInfo{
			Mode: &bkllb.ChmodOpt{Mode: 0o755}, ChownOpt: chown(0, 0), CreatedTime: &l.epoch,
		}), bkllb.WithCustomName("agent: install "+a.File+" as "+dest), pg), "agent", pg), nil
	}
	src, p := l.tarball("agent", a.Tarball, pg)
	unpacked := bkllb.Scratch().File(bkllb.Copy(src, p, "/", &bkllb.CopyInfo{AttemptUnpack: true}),
		bkllb.WithCustomName("agent: unpack "+path.Base(p)), pg)
	if a.Init != "agent" {
		return unpacked, nil
	}
	// The agent as init: only the binary, moved to /sbin/init as osbuilder does.
	return squash(st.File(bkllb.Copy(unpacked, AgentPath, dest, &bkllb.CopyInfo{
		Mode: &bkllb.ChmodOpt{Mode: 0o755}, ChownOpt: chown(0, 0), CreatedTime: &l.epoch,
	}), bkllb.WithCustomName("agent: "+AgentPath+" from the tarball as "+dest), pg), "agent", pg), nil
}

func chown(uid, gid int) *bkllb.ChownOpt {
	return &bkllb.ChownOpt{User: &bkllb.UserOpt{UID: uid}, Group: &bkllb.UserOpt{UID: gid}}
}

// glue is the Kata glue layer: systemd units and links, tmp.mount, /var/tmp,
// an empty resolv.conf, osbuilder.yaml.
func (l *layers) glue() bkllb.State {
	group := bkllb.ProgressGroup("kata", "kata glue", false)
	pg := l.at("agent", group)
	fa := bkllb.Mkdir("/etc", 0o755, bkllb.WithParents(true), l.root(), l.created()).
		Mkdir("/var/lib/osbuilder", 0o755, bkllb.WithParents(true), l.root(), l.created()).
		Mkfile("/etc/resolv.conf", 0o644, nil, l.root(), l.created()).
		Symlink("../tmp", "/var/tmp", l.root(), l.created()).
		Mkfile(OsbuilderSummary, 0o644, []byte(osbuilderYAML(l.summary())), l.root(), l.created())
	if l.systemd() {
		fa = fa.Mkdir(UnitDir, 0o755, bkllb.WithParents(true), l.root(), l.created()).
			Mkdir(EtcUnitDir+"/basic.target.wants", 0o755, bkllb.WithParents(true), l.root(), l.created()).
			Mkdir(EtcUnitDir+"/kata-containers.target.wants", 0o755, bkllb.WithParents(true), l.root(), l.created()).
			Mkfile(UnitDir+"/kata-agent.service", 0o644, []byte(agentService), l.root(), l.created()).
			Mkfile(UnitDir+"/kata-containers.target", 0o644, []byte(containersTarget), l.root(), l.created()).
			Symlink(UnitDir+"/kata-containers.target", EtcUnitDir+"/basic.target.wants/kata-containers.target", l.root(), l.created()).
			Symlink(UnitDir+"/dbus.socket", EtcUnitDir+"/kata-containers.target.wants/dbus.socket", l.root(), l.created())
	}
	// Over a distro tmp.mount comes from the distro when it has one (the edits layer).
	if l.systemd() && l.base == nil {
		fa = fa.Mkfile(EtcUnitDir+"/tmp.mount", 0o644, []byte(tmpMount), l.root(), l.created())
	}
	// An overlay leaves the tree's /etc/hosts alone unless the OPA service needs localhost.
	if l.base != nil || l.m.Policy != nil && l.m.Policy.Engine == "opa-service" {
		fa = fa.Mkfile("/etc/hosts", 0o644, []byte(etcHosts), l.root(), l.created())
	}
	st := l.empty.File(fa, bkllb.WithCustomName("kata: units, links, resolv.conf, hosts, osbuilder.yaml"), pg)
	return squash(st, "kata", pg)
}

// edits is the layer of the changes to the base's own files, over a base only: chrony pointed
// at the PTP clock, tmp.mount from the distro's example with systemd and, with slim, the
// deletions; one script, so one layer (with the deletions'
// whiteouts) that is the diff of the base.
func (l *layers) edits() bkllb.State {
	group := bkllb.ProgressGroup("kata", "kata glue", false)
	script, name := chronyScript, "kata: chrony to the PTP clock"
	if l.systemd() {
		script += "\n" + tmpMountScript()
		name += "; tmp.mount"
	}
	pg := l.at("agent", group)
	if l.m.Slim {
		pg = l.at("slim", group)
		script += "\n" + slimScript()
		name += "; slim (units, docs, man pages, locales)"
	}
	return l.edit(name, script, pg)
}

// edit runs a script over the base and keeps only what it changed.
func (l *layers) edit(name, script string, pg bkllb.ConstraintsOpt) bkllb.State {
	run := l.base.Run(
		bkllb.Args([]string{"/bin/sh", "-c", script}),
		bkllb.AddEnv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
		bkllb.AddEnv("LC_ALL", "C"),
		bkllb.Dir("/"),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName(name),
		pg,
	).Root()
	return bkllb.Diff(*l.base, run, bkllb.WithCustomName(name+" (diff)"), pg)
}

func (l *layers) summary() Summary {
	s := Summary{
		BuilderVersion: l.opts.BuilderVersion,
		Epoch:          l.epoch.Unix(),
		Arch:           l.m.Arch,
		Distro:         l.m.Distro,
		Release:        l.m.Release,
		Default:        l.in.DefaultPackages,
		Extra:          l.m.Packages,
	}
	if l.m.Agent != nil {
		s.AgentVersion = l.m.Agent.Version
		s.AgentInit = l.m.Agent.Init == "agent"
	}
	if s.BuilderVersion == "" {
		s.BuilderVersion = "devel"
	}
	return s
}

// policy is the policy layer: the Rego file and its default-policy.rego
// link, and for the OPA service the OPA binary and kata-opa.service.
func (l *layers) policy() (bkllb.State, error) {
	p := l.m.Policy
	pg := l.at("policy", bkllb.ProgressGroup("policy", "agent policy", false))
	name := p.Builtin
	if p.File != "" {
		name = strings.TrimSuffix(path.Base(p.File), ".rego")
	}
	if name == "default-policy" || !valid(name, "._+-") {
		return bkllb.State{}, fmt.Errorf("policy.file %q: the name must be letters, digits and ._+- and not default-policy.rego (the link's name)", p.File)
	}
	file := PolicyDir + "/" + name + ".rego"
	st := l.mkdirs(l.empty, "policy: directories", pg, PolicyDir)
	if p.Builtin != "" {
		if len(l.in.BuiltinPolicy) == 0 {
			return bkllb.State{}, fmt.Errorf("policy: no text for the built-in %q", p.Builtin)
		}
		st = st.File(bkllb.Mkfile(file, 0o644, l.in.BuiltinPolicy, l.root(), l.created()),
			bkllb.WithCustomName("policy: built-in "+p.Builtin), pg)
	} else {
		src, sp := l.local("policy", p.File, pg)
		st = st.File(bkllb.Copy(src, sp, file, &bkllb.CopyInfo{
			Mode: &bkllb.ChmodOpt{Mode: 0o644}, ChownOpt: chown(0, 0), CreatedTime: &l.epoch,
		}), bkllb.WithCustomName("policy: "+p.File), pg)
	}
	st = st.File(bkllb.Symlink(name+".rego", DefaultPolicy, l.root(), l.created()),
		bkllb.WithCustomName("policy: default-policy.rego -> "+name+".rego"), pg)
	if p.Engine != "opa-service" {
		return squash(st, "policy", pg), nil
	}
	st = l.mkdirs(st, "policy: directories for OPA", pg, path.Dir(OPAPath))
	var opa bkllb.State
	var op string
	if p.OPA.File != "" {
		opa, op = l.local("opa", p.OPA.File, pg)
	} else {
		opa, op = fetchChecked(p.OPA.URL, string(p.OPA.Sha256), "opa", "opa", pg), "/opa"
	}
	st = st.File(bkllb.Copy(opa, op, OPAPath, &bkllb.CopyInfo{
		Mode: &bkllb.ChmodOpt{Mode: 0o755}, ChownOpt: chown(0, 0), CreatedTime: &l.epoch,
	}), bkllb.WithCustomName("policy: opa binary"), pg)
	if !l.systemd() {
		// The agent as init starts OPA itself.
		return squash(st, "policy", pg), nil
	}
	return squash(st.File(bkllb.Mkdir(UnitDir, 0o755, bkllb.WithParents(true), l.root(), l.created()).
		Mkdir(EtcUnitDir+"/kata-containers.target.wants", 0o755, bkllb.WithParents(true), l.root(), l.created()).
		Mkfile(UnitDir+"/kata-opa.service", 0o644, []byte(opaService), l.root(), l.created()).
		Symlink(UnitDir+"/kata-opa.service", EtcUnitDir+"/kata-containers.target.wants/kata-opa.service", l.root(), l.created()),
		bkllb.WithCustomName("policy: kata-opa.service"), pg), "policy", pg), nil
}

// modules is the kernel modules layer: a local modules tree or a distro
// kernel package's lib/modules, with depmod run by the base's kmod; only the
// tree and depmod's results join the rootfs.
func (l *layers) modules() (bkllb.State, error) {
	mod := l.m.Modules
	pg := l.at("modules", modulesGroup)
	var withTree bkllb.State
	var release string
	start := l.empty
	if l.base != nil {
		start = *l.base
	}
	switch {
	case mod.Dir != "":
		release = path.Base(path.Clean(mod.Dir))
		if !validRelease(release) {
			return bkllb.State{}, fmt.Errorf("modules.dir %q: the folder must be named after the kernel release (like 6.1.0-27-amd64)", mod.Dir)
		}
		src, sp := l.local("modules", mod.Dir, pg)
		start = l.mkdirs(start, "modules: "+ModulesDir, pg, ModulesDir)
		withTree = start.File(bkllb.Copy(src, sp, ModulesDir+"/"+release, &bkllb.CopyInfo{
			CopyDirContentsOnly: true, CreateDestPath: true, ChownOpt: chown(0, 0), CreatedTime: &l.epoch,
		}), bkllb.WithCustomName("modules: copy "+mod.Dir), pg)
	default:
		if l.in.Base == nil || l.in.Base.Kernel == nil {
			return bkllb.State{}, fmt.Errorf("modules.package %q: needs a distro and a lock that pins the kernel (run rootfsc lock)", mod.Package)
		}
		k := l.in.Base.Kernel
		release = k.Release
		if !validRelease(release) {
			return bkllb.State{}, fmt.Errorf("lock: kernel package %s: bad release %q", mod.Package, release)
		}
		withTree = k.Tree
	}
	if l.base == nil {
		// No kmod without a distro: the tree goes in as it is.
		if len(mod.Include) > 0 {
			return bkllb.State{}, errors.New("modules.include needs a distro: its depmod finds what the modules depend on")
		}
		return squash(withTree, "modules", pg), nil
	}
	depmod := func(st bkllb.State, name string) bkllb.State {
		return st.Run(
			bkllb.Args([]string{"/sbin/depmod", "--all", "--basedir", "/", release}),
			bkllb.AddEnv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
			bkllb.Network(bkllb.NetModeNone),
			bkllb.WithCustomName(name),
			pg,
		).Root()
	}
	dep := depmod(withTree, "modules: depmod "+release)
	if len(mod.Include) > 0 {
		// The helper reads depmod's modules.dep, keeps the included modules and what they
		// depend on, and removes the rest; depmod then describes what is left.
		args := []string{HelperBin, "modules", "--tree", ModulesDir + "/" + release}
		var pats []string
		for _, p := range mod.Include {
			args = append(args, "--include", string(p))
			pats = append(pats, string(p))
		}
		dep = dep.Run(
			bkllb.Args(args),
			bkllb.AddMount(HelperDir, l.helper, bkllb.Readonly),
			bkllb.Network(bkllb.NetModeNone),
			bkllb.WithCustomName("modules: keep "+strings.Join(pats, " ")+" and their dependencies"),
			pg,
		).Root().File(bkllb.Rm(HelperDir, bkllb.WithAllowNotFound(true)), bkllb.WithCustomName("modules: remove the helper's mount point"), pg)
		dep = depmod(dep, "modules: depmod "+release+" of the included modules")
	}
	return squash(bkllb.Diff(*l.base, dep, bkllb.WithCustomName("modules: "+release+" (diff)"), pg), "modules", pg), nil
}

// validRelease accepts kernel release names: safe as a path element and a word.
func validRelease(s string) bool {
	return s != "" && s != "." && s != ".." && valid(s, "+._-") && s[0] >= '0' && s[0] <= '9'
}

// files is the layer of the manifest's extra files. Over a distro they are
// written over the base and kept as a diff: owners given by name are then
// resolved in the base's /etc/passwd, and parent folders keep the base's
// modes (a file under /tmp must not turn /tmp into 0755).
func (l *layers) files() (bkllb.State, error) {
	pg := l.at("files", bkllb.ProgressGroup("files", "extra files", false))
	paths := make([]string, 0, len(l.m.Files))
	for p := range l.m.Files {
		paths = append(paths, p)
	}
	// Sorted first, so that of several bad entries the first is always named.
	sort.Strings(paths)
	for _, p := range paths {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return bkllb.State{}, fmt.Errorf("files: %q is not a clean absolute path", p)
		}
		if o := l.m.Files[p].Owner; o != "" && !numericOwner(o) && l.base == nil {
			return bkllb.State{}, fmt.Errorf("files: %s: owner %q by name needs a distro (names come from its /etc/passwd); use uid:gid", p, o)
		}
	}
	st := l.empty
	if l.base != nil {
		st = *l.base
	}
	for i, p := range paths {
		f := l.m.Files[p]
		own := l.owner(f.Owner)
		st = l.mkdirs(st, "files: "+path.Dir(p), pg, path.Dir(p))
		var mode *bkllb.ChmodOpt
		if f.Mode != 0 {
			mode = &bkllb.ChmodOpt{Mode: fileMode(f.Mode)}
		}
		name := fmt.Sprintf("files%d", i)
		switch {
		case f.Tarball != nil:
			src, sp := l.tarball(name, f.Tarball, pg)
			st = l.mkdirs(st, "files: "+p, pg, p)
			st = st.File(bkllb.Copy(src, sp, p, &bkllb.CopyInfo{AttemptUnpack: true, ChownOpt: own}),
				bkllb.WithCustomName("files: unpack "+path.Base(sp)+" at "+p), pg)
		case f.Source != "":
			// A file or a folder: its parent travels, limited to that name.
			src, sp := l.local(name, f.Source, pg)
			st = st.File(bkllb.Copy(src, sp, p, &bkllb.CopyInfo{Mode: mode, ChownOpt: own, CreatedTime: &l.epoch}),
				bkllb.WithCustomName("files: "+f.Source+" as "+p), pg)
		default:
			m := int64(0o644)
			if f.Mode != 0 {
				m = f.Mode
			}
			st = st.File(bkllb.Mkfile(p, fileMode(m), []byte(f.Content), *own, l.created()),
				bkllb.WithCustomName("files: "+p), pg)
		}
	}
	if l.base != nil {
		st = bkllb.Diff(*l.base, st, bkllb.WithCustomName("files: (diff)"), pg)
	}
	return squash(st, "files", pg), nil
}

// owner turns "uid:gid", "uid", "user:group" or "user" into a chown option;
// empty means root.
func (l *layers) owner(s string) *bkllb.ChownOpt {
	if s == "" {
		return chown(0, 0)
	}
	user, group, ok := strings.Cut(s, ":")
	if !ok {
		group = user
	}
	opt := &bkllb.ChownOpt{User: userOpt(user), Group: userOpt(group)}
	return opt
}

func userOpt(s string) *bkllb.UserOpt {
	if n, err := strconv.Atoi(s); err == nil {
		return &bkllb.UserOpt{UID: n}
	}
	if s == "root" {
		return &bkllb.UserOpt{UID: 0}
	}
	return &bkllb.UserOpt{Name: s}
}

func numericOwner(s string) bool {
	for _, part := range strings.Split(s, ":") {
		if _, err := strconv.Atoi(part); err != nil && part != "root" {
			return false
		}
	}
	return true
}

// fileMode is a permission mode; the schema allows no setuid, setgid or sticky bits.
func fileMode(m int64) os.FileMode { return os.FileMode(m & 0o777) }

// rootfs merges the base and the Kata layers, in the order later layers win:
// base, modules, kata edits, glue, policy, agent, files; then checks the result.
func (l *layers) rootfs() (*Result, error) {
	res := &Result{}
	var parts []bkllb.State
	add := func(name string, st bkllb.State) {
		parts = append(parts, st)
		res.Layers = append(res.Layers, name)
	}
	if l.base != nil {
		add("base", *l.base)
	}
	var agent *bkllb.State
	if l.m.Modules != nil {
		st, err := l.modules()
		if err != nil {
			return nil, err
		}
		add("modules", st)
	}
	if l.m.Agent != nil {
		if l.base != nil {
			add("kata edits", l.edits())
		}
		add("kata glue", l.glue())
	}
	if l.m.Policy != nil {
		st, err := l.policy()
		if err != nil {
			return nil, err
		}
		add("policy", st)
	}
	if l.m.Agent != nil {
		st, err := l.agent()
		if err != nil {
			return nil, err
		}
		agent = &st
		add("agent", st)
	}
	if len(l.m.Files) > 0 {
		st, err := l.files()
		if err != nil {
			return nil, err
		}
		add("files", st)
	}
	if len(parts) == 0 {
		return nil, errors.New("nothing to build: no distro, agent, modules, policy or files")
	}
	merged := parts[0]
	if len(parts) > 1 {
		merged = bkllb.Merge(parts, bkllb.WithCustomName(fmt.Sprintf("rootfs: merge %d layers", len(parts))))
	}
	run := l.check(merged, agent)
	res.Check = run.Root()
	res.Checked = run.GetMount(CheckTarget)
	// The check becomes an ancestor of what is exported, so a cache export (which holds only
	// the result's ancestors) has it: the diff of a state with itself is empty, and a merge skips
	// empty inputs, so the rootfs keeps its content and its layers.
	res.Rootfs = bkllb.Merge(append(append([]bkllb.State(nil), parts...),
		bkllb.Diff(res.Check, res.Check, bkllb.WithCustomName("check: passed"))),
		bkllb.WithCustomName(fmt.Sprintf("rootfs: %d layers after the check", len(parts))))
	return res, nil
}

// CheckTarget and CheckAgent are where the check step mounts the rootfs and
// the agent layer.
const (
	CheckTarget = "/target"
	CheckAgent  = "/.rootfsc-agent"
)

// check runs the helper's `internal check` over the merged rootfs, as
// osbuilder's check_rootfs does before an image is made; the pipeline solves it before any
// export (and `rootfsc llb` exports its /target mount, so a failed check fails that build).
func (l *layers) check(merged bkllb.State, agent *bkllb.State) bkllb.ExecState {
	pg := l.at("agent", bkllb.ProgressGroup("check", "check rootfs", false))
	args := []string{HelperBin, "check", "--root", CheckTarget}
	opts := []bkllb.RunOption{
		bkllb.AddMount(HelperDir, l.helper, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		pg,
	}
	if l.base == nil {
		args = append(args, "--overlay")
	}
	if agent != nil {
		init := "systemd"
		want := AgentPath
		if !l.systemd() {
			init, want = "agent", InitPath
		}
		args = append(args, "--init", init, "--agent", CheckAgent+want)
		opts = append(opts, bkllb.AddMount(CheckAgent, *agent, bkllb.Readonly))
	}
	opts = append(opts, bkllb.Args(args), bkllb.WithCustomName("check: "+strings.Join(args[2:], " ")),
		bkllb.AddMount(CheckTarget, merged))
	return bkllb.Scratch().Run(opts...)
}
