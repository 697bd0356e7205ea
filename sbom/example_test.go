package sbom_test

import (
	"fmt"
	"strings"

	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/sbom"
)

func ExampleBuild() {
	res, err := sbom.Build(sbom.Input{
		Name: "rootfs", Tool: "rootfsc-devel", Epoch: 1700000000, Supplier: "Debian",
		Lock: &lock.Lock{InputDigest: "sha256:abc", Distro: "debian", Packages: []lock.Package{{
			Name: "iproute2", Version: "6.1.0-3", Architecture: "amd64", Suite: "bookworm",
			Filename: "pool/main/i/iproute2/iproute2_6.1.0-3_amd64.deb",
			SHA256:   "1111111111111111111111111111111111111111111111111111111111111111",
		}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range res.Document.Packages {
		fmt.Println(strings.TrimSpace(fmt.Sprint(p.PackageSPDXIdentifier, " ", p.PackageName, " ", p.PackageVersion)))
		for _, r := range p.PackageExternalReferences {
			fmt.Println("  ", r.RefType, r.Locator)
		}
	}
	for _, r := range res.Document.Relationships {
		fmt.Println(r.RefA.ElementRefID, r.Relationship, r.RefB.ElementRefID)
	}
	// Output:
	// Image rootfs
	// Package-deb-iproute2 iproute2 6.1.0-3
	//    purl pkg:deb/debian/iproute2@6.1.0-3?arch=amd64
	// DOCUMENT DESCRIBES Image
	// Image CONTAINS Package-deb-iproute2
}
