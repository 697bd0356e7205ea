// Package apktest makes signed apk repositories for tests: .apk files with their signature,
// control and data members, and an APKINDEX.tar.gz signed with a test key, laid out as an
// Alpine mirror (VERSION/REPO/ARCH/…) for an httptest server. Alpine's mirror is not
// reachable from the machines rootfsc is tested on; the formats are the ones apk-tools reads.
package apktest
