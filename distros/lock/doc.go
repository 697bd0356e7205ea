// Package lock reads, writes and verifies the versioned lockfile that pins a resolved Debian package set.
package lock
