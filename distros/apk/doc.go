// Package apk is the apk package family (Alpine): signed APKINDEX files, resolution of the
// closure with apk's provides, constraints, conflicts and provider priorities, the lock, and the
// base layer's lowering; [github.com/rootfsc/rootfsc/distros/apk/unpack] extracts the packages
// inside the build.
package apk
