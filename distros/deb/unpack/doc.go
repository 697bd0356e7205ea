// Package unpack is the part of the deb family that runs inside the build, in the helper
// (cmd/rootfsc-helper): it extracts .deb files into a root with the safety rules of
// internal/rootfs. It imports nothing of the resolver, so the helper binary, and with it the
// cache key of every base layer, changes only when this code does.
package unpack
