package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/rootfsc/rootfsc/distros/lock"
)

const (
	sumA = "1111111111111111111111111111111111111111111111111111111111111111"
	sumB = "2222222222222222222222222222222222222222222222222222222222222222"
	sumK = "3333333333333333333333333333333333333333333333333333333333333333"
	sumG = "4444444444444444444444444444444444444444444444444444444444444444"
	sumF = "5555555555555555555555555555555555555555555555555555555555555555"
)

func rel(a, b common.ElementID, typ string) *spdx.Relationship {
	return &spdx.Relationship{RefA: common.MakeDocElementID("", string(a)), RefB: common.MakeDocElementID("", string(b)), Relationship: typ}
}

func image(name string) *spdx.Package {
	return &spdx.Package{
		PackageName: name, PackageSPDXIdentifier: "Image", PackageDownloadLocation: "NOASSERTION",
		PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
		PrimaryPackagePurpose: "OPERATING-SYSTEM", PackageComment: "the guest root filesystem rootfsc built",
	}
}

func deb(id common.ElementID, name, version, file, sum, url, purl, comment string) *spdx.Package {
	return &spdx.Package{
		PackageName: name, PackageSPDXIdentifier: id, PackageVersion: version, PackageFileName: file,
		PackageSupplier:         &common.Supplier{SupplierType: "Organization", Supplier: "Debian"},
		PackageDownloadLocation: url,
		PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: sum}},
		PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
		PackageComment: comment,
		PackageExternalReferences: []*spdx.PackageExternalReference{{
			Category: "PACKAGE-MANAGER", RefType: "purl", Locator: purl,
		}},
	}
}

func TestBuild(t *testing.T) {
	const mirror = "http://mirror.invalid/debian/"
	url := func(p *lock.Package) string { return mirror + p.Filename }
	lk := &lock.Lock{
		Version: 1, InputDigest: "sha256:abc", Distro: "debian", Release: "bookworm", Arch: "amd64",
		// Out of order: the document sorts.
		Packages: []lock.Package{
			{Name: "libstdc++6", Version: "12.2.0-14", Architecture: "amd64", Filename: "pool/main/g/gcc-12/libstdc++6_12.2.0-14_amd64.deb", SHA256: sumB, Suite: "bookworm"},
			{Name: "iproute2", Version: "6.1.0-3", Architecture: "amd64", Filename: "pool/main/i/iproute2/iproute2_6.1.0-3_amd64.deb", SHA256: sumA, Suite: "bookworm"},
		},
		Kernel: &lock.Kernel{Package: lock.Package{Name: "linux-image-6.1.0-28-amd64", Version: "6.1.119-1", Architecture: "amd64",
			Filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb", SHA256: sumK, Suite: "bookworm-security"},
			Release: "6.1.0-28-amd64", Requested: "linux-image-amd64"},
	}
	tests := []struct {
		name string
		in   Input
		want *spdx.Document
	}{{
		name: "lock, kernel and inputs",
		in: Input{
			Name: "rootfs", Tool: "rootfsc-devel", Epoch: 1700000000, Lock: lk, Supplier: "Debian", DownloadURL: url,
			Components: []Component{
				{Role: "file", Name: "/etc/motd", Path: "motd", SHA256: sumF},
				{Role: "agent", Name: "kata-agent", Version: "3.2.0", Path: "bin/kata-agent", SHA256: sumG},
			},
		},
		want: &spdx.Document{
			SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXIdentifier: "DOCUMENT", DocumentName: "rootfs",
			DocumentNamespace: "https://github.com/rootfsc/rootfsc/spdx/rootfs-" + namespaceOf(t, "rootfs\nlock sha256:abc\nkernel "+sumK+"\nagent kata-agent "+sumG+"\nfile /etc/motd "+sumF+"\n"),
			CreationInfo: &spdx.CreationInfo{
				Creators: []common.Creator{{CreatorType: "Tool", Creator: "rootfsc-devel"}},
				Created:  "2023-11-14T22:13:20Z",
			},
			Packages: []*spdx.Package{
				image("rootfs"),
				deb("Package-deb-iproute2", "iproute2", "6.1.0-3", "pool/main/i/iproute2/iproute2_6.1.0-3_amd64.deb", sumA,
					mirror+"pool/main/i/iproute2/iproute2_6.1.0-3_amd64.deb", "pkg:deb/debian/iproute2@6.1.0-3?arch=amd64",
					"architecture amd64, suite bookworm"),
				deb("Package-deb-libstdcPP6", "libstdc++6", "12.2.0-14", "pool/main/g/gcc-12/libstdc++6_12.2.0-14_amd64.deb", sumB,
					mirror+"pool/main/g/gcc-12/libstdc++6_12.2.0-14_amd64.deb", "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64",
					"architecture amd64, suite bookworm"),
				deb("Kernel-Package-deb-linux-image-6.1.0-28-amd64", "linux-image-6.1.0-28-amd64", "6.1.119-1",
					"pool/main/l/linux-signed-amd64/linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb", sumK,
					mirror+"pool/main/l/linux-signed-amd64/linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb",
					"pkg:deb/debian/linux-image-6.1.0-28-amd64@6.1.119-1?arch=amd64",
					"kernel modules: only /usr/lib/modules/6.1.0-28-amd64 of this package is in the rootfs; architecture amd64, suite bookworm-security"),
				{
					PackageName: "kata-agent", PackageSPDXIdentifier: "Input-agent-1", PackageVersion: "3.2.0", PackageFileName: "bin/kata-agent",
					PackageDownloadLocation: "NOASSERTION", PackageChecksums: []common.Checksum{{Algorithm: common.SHA256, Value: sumG}},
					PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
				},
				{
					PackageName: "/etc/motd", PackageSPDXIdentifier: "Input-file-2", PackageFileName: "motd",
					PackageDownloadLocation: "NOASSERTION", PackageChecksums: []common.Checksum{{Algorithm: common.SHA256, Value: sumF}},
					PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
				},
			},
			Relationships: []*spdx.Relationship{
				rel("DOCUMENT", "Image", "DESCRIBES"),
				rel("Image", "Package-deb-iproute2", "CONTAINS"),
				rel("Image", "Package-deb-libstdcPP6", "CONTAINS"),
				rel("Image", "Kernel-Package-deb-linux-image-6.1.0-28-amd64", "CONTAINS"),
				rel("Image", "Input-agent-1", "CONTAINS"),
				rel("Image", "Input-file-2", "CONTAINS"),
			},
		},
	}, {
		name: "overlay: no lock, a download",
		in: Input{
			Name: "overlay", Tool: "rootfsc-devel", Epoch: 0,
			Components: []Component{{Role: "opa", Name: "opa", URL: "https://example.invalid/opa", SHA256: sumG}},
		},
		want: &spdx.Document{
			SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXIdentifier: "DOCUMENT", DocumentName: "overlay",
			DocumentNamespace: "https://github.com/rootfsc/rootfsc/spdx/overlay-" + namespaceOf(t, "overlay\nopa opa "+sumG+"\n"),
			CreationInfo: &spdx.CreationInfo{
				Creators: []common.Creator{{CreatorType: "Tool", Creator: "rootfsc-devel"}},
				Created:  "1970-01-01T00:00:00Z",
			},
			Packages: []*spdx.Package{
				image("overlay"),
				{
					PackageName: "opa", PackageSPDXIdentifier: "Input-opa-1",
					PackageDownloadLocation: "https://example.invalid/opa", PackageChecksums: []common.Checksum{{Algorithm: common.SHA256, Value: sumG}},
					PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
				},
			},
			Relationships: []*spdx.Relationship{
				rel("DOCUMENT", "Image", "DESCRIBES"),
				rel("Image", "Input-opa-1", "CONTAINS"),
			},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Build(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Document, cmpopts.IgnoreUnexported(spdx.Package{})); diff != "" {
				t.Errorf("Build() mismatch (-want +got):\n%s", diff)
			}
			// The JSON reads back with the SPDX library into the same document, and validates.
			back, err := spdxjson.Read(bytes.NewReader(got.JSON))
			if err != nil {
				t.Fatalf("reading the JSON back: %v", err)
			}
			if err := spdxlib.ValidateDocument(back); err != nil {
				t.Errorf("ValidateDocument: %v", err)
			}
			if diff := cmp.Diff(tt.want.Packages, back.Packages, cmpopts.IgnoreUnexported(spdx.Package{}),
				cmpopts.IgnoreFields(spdx.Package{}, "IsFilesAnalyzedTagPresent")); diff != "" {
				t.Errorf("packages read back mismatch (-want +got):\n%s", diff)
			}
			again, err := Build(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.JSON, again.JSON) {
				t.Error("two Builds of one input gave different bytes")
			}
		})
	}
}

func namespaceOf(t *testing.T, text string) string {
	t.Helper()
	return hexSum16(text)
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"no name", Input{}, "sbom: no image name"},
		{"bad package sha256", Input{Name: "r", Lock: &lock.Lock{Packages: []lock.Package{{Name: "a", SHA256: "xyz"}}}},
			`sbom: package a: sha256 "xyz" is not 64 hex digits`},
		{"bad package name", Input{Name: "r", Lock: &lock.Lock{Packages: []lock.Package{{Name: "a/b", SHA256: sumA}}}},
			`sbom: package name "a/b": '/' is not in a Debian package name`},
		{"bad component sha256", Input{Name: "r", Components: []Component{{Role: "agent", Name: "kata-agent", SHA256: strings.ToUpper(sumA[:63]) + "F"}}},
			`sbom: agent kata-agent: sha256 "` + strings.ToUpper(sumA[:63]) + `F" is not 64 hex digits`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Build() error = %v, want %q", err, tt.want)
			}
		})
	}
}

func hexSum16(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}
