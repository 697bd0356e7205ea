// Package unpack reads .apk packages (concatenated gzip members: signature, control, data) and
// lays their data into a root inside the build, with the safe tar writer of [rootfs.Untar], and
// writes apk's installed database so that apk inside the rootfs knows its packages.
package unpack
