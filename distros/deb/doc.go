// Package deb fetches and verifies Debian archive indexes, resolves a package closure into a [lock.Lock], and extracts .deb files.
package deb
