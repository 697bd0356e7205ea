// Package copyright reads the licenses a Debian package states in its machine-readable
// debian/copyright file (DEP-5, installed as /usr/share/doc/PKG/copyright), inside the build.
package copyright
