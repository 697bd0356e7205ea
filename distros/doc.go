// Package distros holds one CUE definition per distro (releases, suites, default packages, keyring), embedded for the cue loader.
package distros
