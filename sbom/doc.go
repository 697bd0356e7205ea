// Package sbom writes the SPDX 2.3 document of a build: every locked package and every input of
// the rootfs, contained in the image the document describes.
package sbom
