// Package qemu decides how this host runs qemu-system-x86_64: with KVM when a short probe VM
// proves it works, else with TCG and the reason, for boot tests and the boot command.
package qemu
