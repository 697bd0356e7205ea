package llb

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOsbuilderYAML(t *testing.T) {
	tests := []struct {
		name string
		in   Summary
		want string
	}{
		{
			name: "distro with systemd",
			in: Summary{
				BuilderVersion: "v0.3.0", Epoch: 1700000000, Arch: "amd64",
				Distro: "debian", Release: "bookworm",
				// osbuilder sorts both lists; the input order must not leak.
				Default:      []string{"systemd", "chrony", "init", "dbus"},
				Extra:        []string{"iptables", "ca-certificates"},
				AgentVersion: "3.2.0",
			},
			want: `---
osbuilder:
  url: "https://github.com/rootfsc/rootfsc"
  version: "v0.3.0"
rootfs-creation-time: "2023-11-14T22:13:20.000000000+0000Z"
description: "osbuilder rootfs"
file-format-version: "0.0.2"
architecture: "x86_64"
base-distro:
  name: "debian"
  version: "bookworm"
  packages:
    default:
      - "chrony"
      - "dbus"
      - "init"
      - "systemd"
    extra:
      - "ca-certificates"
      - "iptables"
agent:
  url: "https://github.com/kata-containers/kata-containers"
  name: "kata-agent"
  version: "3.2.0"
  agent-is-init-daemon: "no"
`,
		},
		{
			name: "agent as init, no version, no packages",
			in:   Summary{BuilderVersion: "devel", Epoch: 0, Arch: "arm64", AgentInit: true},
			want: `---
osbuilder:
  url: "https://github.com/rootfsc/rootfsc"
  version: "devel"
rootfs-creation-time: "1970-01-01T00:00:00.000000000+0000Z"
description: "osbuilder rootfs"
file-format-version: "0.0.2"
architecture: "aarch64"
base-distro:
  name: ""
  version: ""
  packages:
    default:
    extra:
agent:
  url: "https://github.com/kata-containers/kata-containers"
  name: "kata-agent"
  version: "unknown"
  agent-is-init-daemon: "yes"
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, osbuilderYAML(tt.in)); diff != "" {
				t.Errorf("osbuilderYAML() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOsbuilderYAMLKeepsInput(t *testing.T) {
	// Sorting for the summary must not reorder the manifest's own lists.
	s := Summary{Default: []string{"b", "a"}, Extra: []string{"d", "c"}}
	osbuilderYAML(s)
	if diff := cmp.Diff(Summary{Default: []string{"b", "a"}, Extra: []string{"d", "c"}}, s); diff != "" {
		t.Errorf("osbuilderYAML() changed its input (-want +got):\n%s", diff)
	}
}

func TestSlimScript(t *testing.T) {
	// KATA.md's slim list (osbuilder -d). Units are matched by their whole
	// file name, so each must appear quoted as a find -name argument.
	names := []string{
		"systemd-coredump@.service",
		"systemd-journald.service", "systemd-journald.socket",
		"systemd-journald-dev-log.socket", "systemd-journald-audit.socket",
		"systemd-random-seed.service",
		"systemd-timesyncd.service",
		"systemd-tmpfiles-setup.service",
		"systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
		"systemd-udev-trigger.service",
		"systemd-update-utmp.service",
		"systemd-fstab-generator", "systemd-getty-generator",
		"systemd-gpt-auto-generator", "systemd-bless-boot-generator",
		"systemd-tmpfiles-clean.timer",
	}
	script := slimScript()
	for _, n := range names {
		if !strings.Contains(script, "-name '"+n+"'") {
			t.Errorf("slimScript() does not delete %s", n)
		}
	}
	// What osbuilder always removes under /usr/share.
	for _, d := range []string{"bash-completion", "bug", "doc", "info", "lintian", "locale", "man", "menu", "misc", "pixmaps", "terminfo", "zsh"} {
		if !strings.Contains(script, " /usr/share/"+d+" ") && !strings.HasSuffix(strings.TrimSpace(script), " /usr/share/"+d) {
			t.Errorf("slimScript() does not remove /usr/share/%s", d)
		}
	}
	// Units live in both trees (enable links under /etc).
	for _, dir := range []string{"/usr/lib/systemd", "/etc/systemd"} {
		if !strings.Contains(script, dir) {
			t.Errorf("slimScript() does not look in %s", dir)
		}
	}
	// The package database stays for SBOM scanners (KATA.md).
	if strings.Contains(script, "/var/lib/dpkg") {
		t.Errorf("slimScript() touches /var/lib/dpkg:\n%s", script)
	}
	if !strings.HasPrefix(script, "set -eu\n") {
		t.Errorf("slimScript() does not stop on errors:\n%s", script)
	}
}
