// Package schema holds the CUE definitions of rootfsc manifests and distros, and the Go types generated from them.
package schema
