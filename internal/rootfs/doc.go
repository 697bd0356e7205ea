// Package rootfs is the one place that writes and resolves paths inside a root filesystem.
package rootfs
