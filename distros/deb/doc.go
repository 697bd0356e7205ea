// Package deb fetches and verifies Debian archive indexes, resolves a package closure into a [lock.Lock], and lowers it into the base layer; the extraction that runs inside the build is [unpack].
package deb
