// Package kata checks that a rootfs holds what the Kata runtime and agent expect, the checks
// osbuilder's check_rootfs makes; rootfsc runs them inside the build before anything is exported.
package kata
