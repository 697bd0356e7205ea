// Package llb lowers a resolved package lock into the BuildKit LLB graph that installs the base rootfs.
package llb
