package llb

// The files the Kata layers write, as osbuilder and the agent's sources have
// them (../shared/KATA.md lists every line a test checks).

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Paths the Kata layers write. On a merged-/usr base /sbin, /bin and /lib are
// links into /usr, so the layers write the /usr paths: a directory /sbin in a
// merged layer would replace the base's /sbin link.
const (
	AgentPath        = "/usr/bin/kata-agent"
	InitPath         = "/usr/sbin/init"
	UnitDir          = "/usr/lib/systemd/system"
	EtcUnitDir       = "/etc/systemd/system"
	ModulesDir       = "/usr/lib/modules"
	OPAPath          = "/usr/local/bin/opa"
	PolicyDir        = "/etc/kata-opa"
	DefaultPolicy    = PolicyDir + "/default-policy.rego"
	OsbuilderSummary = "/var/lib/osbuilder/osbuilder.yaml"
)

const agentService = `[Unit]
Description=Kata Containers Agent
Documentation=https://github.com/kata-containers/kata-containers
Wants=kata-containers.target

[Service]
# Send agent output to tty to allow capture debug logs
# from a VM vsock port
StandardOutput=tty
Type=simple
ExecStart=/usr/bin/kata-agent
LimitNOFILE=1048576
# ExecStop is required for static agent tracing; in all other scenarios
# the runtime handles shutting down the VM.
ExecStop=/bin/sync ; /usr/bin/systemctl --force poweroff
FailureAction=poweroff
# Discourage OOM-killer from touching the agent
OOMScoreAdjust=-997
`

const containersTarget = `[Unit]
Description=Kata Containers Agent Target
Requires=basic.target
Requires=tmp.mount
Wants=chronyd.service
Requires=kata-agent.service
Conflicts=rescue.service rescue.target
After=basic.target rescue.service rescue.target
AllowIsolate=yes
`

const opaService = `[Unit]
Description=Open Policy Agent for Kata Containers
Documentation=https://github.com/kata-containers
ConditionPathExists=/etc/kata-opa/default-policy.rego

# kata-agent connects to OPA while starting up.
Before=kata-agent.service

[Service]
Type=simple
ExecStart=/usr/local/bin/opa run --server --disable-telemetry --addr 127.0.0.1:8181 --log-level info
DynamicUser=yes
RuntimeDirectory=kata-opa
LimitNOFILE=1048576

# Don't restart because there may be an active policy that would be lost.
Restart=no

# Send log output to tty to allow capturing debug logs from a VM vsock port.
StandardError=tty

# Discourage OOM-killer from touching the policy service.
OOMScoreAdjust=-997

[Install]
WantedBy=kata-containers.target
`

// tmpMount is the tmp.mount of a rootfs whose distro ships none (and of an overlay): systemd's
// unit without the distro's limits.
const tmpMount = `[Unit]
Description=Temporary Directory /tmp
Documentation=https://systemd.io/TEMPORARY_DIRECTORIES
ConditionPathIsSymbolicLink=!/tmp
DefaultDependencies=no
Conflicts=umount.target
Before=local-fs.target umount.target
After=swap.target

[Mount]
What=tmpfs
Where=/tmp
Type=tmpfs
Options=mode=1777,strictatime,nosuid,nodev
`

// tmpMountScript installs a tmp.mount over a distro as osbuilder does: when the distro has no
// unit of that name, its example /usr/share/systemd/tmp.mount (Debian's caps the tmpfs at 50%
// of memory and a million inodes), else [tmpMount].
func tmpMountScript() string {
	return `if [ ! -e /etc/systemd/system/tmp.mount ] && [ ! -e /usr/lib/systemd/system/tmp.mount ]; then
	mkdir -p /etc/systemd/system
	if [ -f /usr/share/systemd/tmp.mount ]; then
		cp /usr/share/systemd/tmp.mount /etc/systemd/system/tmp.mount
	else
		cat > /etc/systemd/system/tmp.mount <<'ROOTFSC_EOF'
` + tmpMount + `ROOTFSC_EOF
	fi
	chmod 0644 /etc/systemd/system/tmp.mount
fi
`
}

// chronyScript points chrony at the PTP clock the hypervisor provides, as
// osbuilder does. It runs over the base; only its changes are kept.
const chronyScript = `set -eu
for conf in /etc/chrony/chrony.conf /etc/chrony.conf; do
	[ -f "$conf" ] || continue
	sed -i 's/^\(server\|pool\|peer\) /# &/' "$conf"
	printf '%s\n' 'refclock PHC /dev/ptp0 poll 3 dpoll -2 offset 0' \
		'# Step the system clock instead of slewing it if the adjustment is larger than' \
		'# one second, at any time' \
		'makestep 1 -1' >> "$conf"
	break
done
for unit in /usr/lib/systemd/system/chrony.service /usr/lib/systemd/system/chronyd.service; do
	[ -f "$unit" ] && [ ! -L "$unit" ] || continue
	sed -i -e 's/^\(ExecStart=.*\)-u [[:alnum:]_-]*/\1/' \
		-e '/^\[Unit\]/a ConditionPathExists=/dev/ptp0' \
		-e '/^ReadWritePaths=/s#\([= ]\)/var/lib/chrony\( \|$\)#\1-/var/lib/chrony\2#' "$unit"
done
`

// etcHosts lets the agent reach OPA at localhost:8181: without /etc/hosts nothing in a guest
// resolves localhost (there is no DNS), and Debian's packages ship none. Constant, unlike
// osbuilder's copy of the build host's files. It is written as a file of the glue layer, not by
// an exec: BuildKit mounts its own /etc/hosts into every exec and drops what the exec wrote there.
const etcHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

// slimUnits are the systemd units osbuilder's -d deletes (without suffix:
// .service and .socket both go), and slimFiles the generators and timers.
var slimUnits = []string{
	"systemd-coredump@", "systemd-journald", "systemd-journald-dev-log", "systemd-journald-audit",
	"systemd-journal-flush", "systemd-random-seed", "systemd-timesyncd", "systemd-tmpfiles-setup",
	"systemd-udevd", "systemd-udevd-control", "systemd-udevd-kernel", "systemd-udev-trigger",
	"systemd-update-utmp",
}

var slimFiles = []string{
	"systemd-bless-boot-generator", "systemd-fstab-generator", "systemd-getty-generator",
	"systemd-gpt-auto-generator", "systemd-tmpfiles-clean.timer",
}

// slimScript deletes what a Kata guest never uses: the units above, wherever
// they are linked, and what osbuilder removes under /usr/share (dpkg's database
// stays for SBOM scanners).
func slimScript() string {
	var names []string
	for _, u := range slimUnits {
		names = append(names, u+".service", u+".socket")
	}
	names = append(names, slimFiles...)
	var b strings.Builder
	b.WriteString("set -eu\n")
	b.WriteString("for d in /usr/lib/systemd /etc/systemd; do\n")
	b.WriteString("\t[ -d \"$d\" ] || continue\n")
	b.WriteString("\tfind \"$d\" \\( -type f -o -type l \\) \\(")
	for i, n := range names {
		if i > 0 {
			b.WriteString(" -o")
		}
		fmt.Fprintf(&b, " -name '%s'", n)
	}
	b.WriteString(" \\) -delete\n")
	b.WriteString("done\n")
	b.WriteString("rm -rf")
	for _, d := range slimShare {
		fmt.Fprintf(&b, " /usr/share/%s", d)
	}
	b.WriteString("\n")
	return b.String()
}

// slimShare are the folders under /usr/share that osbuilder always removes; a guest has no
// shell completion, bug reporting, documentation, locales, menus, icons or terminal database.
var slimShare = []string{
	"bash-completion", "bug", "doc", "info", "linda", "lintian", "locale", "man", "menu", "misc",
	"pixmaps", "terminfo", "zsh",
}

// Summary is what osbuilder.yaml records.
type Summary struct {
	BuilderVersion string
	Epoch          int64
	Arch           string
	Distro         string
	Release        string
	Default, Extra []string
	AgentVersion   string
	AgentInit      bool
}

// osbuilderYAML renders /var/lib/osbuilder/osbuilder.yaml in osbuilder's
// format 0.0.2, fields in its order.
func osbuilderYAML(s Summary) string {
	yesNo := "no"
	if s.AgentInit {
		yesNo = "yes"
	}
	list := func(pkgs []string) string {
		p := append([]string(nil), pkgs...)
		sort.Strings(p)
		var b strings.Builder
		for _, x := range p {
			fmt.Fprintf(&b, "      - %q\n", x)
		}
		return b.String()
	}
	version := s.AgentVersion
	if version == "" {
		version = "unknown"
	}
	return fmt.Sprintf(`---
osbuilder:
  url: "https://github.com/rootfsc/rootfsc"
  version: %q
rootfs-creation-time: %q
description: "osbuilder rootfs"
file-format-version: "0.0.2"
architecture: %q
base-distro:
  name: %q
  version: %q
  packages:
    default:
%s    extra:
%sagent:
  url: "https://github.com/kata-containers/kata-containers"
  name: "kata-agent"
  version: %q
  agent-is-init-daemon: %q
`, s.BuilderVersion, creationTime(s.Epoch), machine(s.Arch), s.Distro, s.Release, list(s.Default), list(s.Extra), version, yesNo)
}

// creationTime is osbuilder's rootfs-creation-time of epoch: `date -u -d@EPOCH
// '+%Y-%m-%dT%T.%N%zZ'`, so a zone of +0000 and then a literal Z.
func creationTime(epoch int64) string {
	return time.Unix(epoch, 0).UTC().Format("2006-01-02T15:04:05.000000000-0700") + "Z"
}

// machine is the `uname -m` name of a Debian architecture, which osbuilder writes as the
// summary's architecture.
func machine(arch string) string {
	switch arch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "ppc64el":
		return "ppc64le"
	case "i386":
		return "i686"
	case "armhf":
		return "armv7l"
	}
	return arch // s390x, riscv64
}
