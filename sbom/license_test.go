package sbom

import (
	"testing"

	"github.com/rootfsc/rootfsc/distros/lock"

	"github.com/google/go-cmp/cmp"
)

func TestDeclared(t *testing.T) {
	tests := []struct {
		lines    []string
		want     string
		wantRefs map[string]string
	}{
		{[]string{"GPL-2+"}, "GPL-2.0-or-later", map[string]string{}},
		{[]string{"GPL-2"}, "GPL-2.0-only", map[string]string{}},
		{[]string{"LGPL-2.1+", "Expat"}, "LGPL-2.1-or-later AND MIT", map[string]string{}},
		{[]string{"GPL-2+ or Artistic"}, "GPL-2.0-or-later OR LicenseRef-Artistic", map[string]string{"LicenseRef-Artistic": "Artistic"}},
		{[]string{"GPL-2+ or Artistic", "public-domain"}, "(GPL-2.0-or-later OR LicenseRef-Artistic) AND LicenseRef-public-domain",
			map[string]string{"LicenseRef-Artistic": "Artistic", "LicenseRef-public-domain": "public-domain"}},
		{[]string{"GPL-2+ or BSD-3-clause, and Zlib"}, "(GPL-2.0-or-later OR BSD-3-Clause) AND Zlib", map[string]string{}},
		{[]string{"GPL-2 with OpenSSL exception"}, "LicenseRef-GPL-2-with-OpenSSL-exception",
			map[string]string{"LicenseRef-GPL-2-with-OpenSSL-exception": "GPL-2 with OpenSSL exception"}},
		{[]string{"GPL-2+ or BSD and MIT"}, "LicenseRef-GPL-2--or-BSD-and-MIT", map[string]string{"LicenseRef-GPL-2--or-BSD-and-MIT": "GPL-2+ or BSD and MIT"}},
		{[]string{"GPL-7"}, "LicenseRef-GPL-7", map[string]string{"LicenseRef-GPL-7": "GPL-7"}},
	}
	for _, tt := range tests {
		got, refs := declared(tt.lines)
		if got != tt.want {
			t.Errorf("declared(%q) = %q, want %q", tt.lines, got, tt.want)
		}
		if diff := cmp.Diff(tt.wantRefs, refs); diff != "" {
			t.Errorf("declared(%q) refs mismatch (-want +got):\n%s", tt.lines, diff)
		}
	}
}

// A package's DEP-5 lines become its declared license; the names without an SPDX id are the
// document's other licenses, once each; a package without lines stays NOASSERTION.
func TestBuildLicenses(t *testing.T) {
	lk := &lock.Lock{InputDigest: "sha256:abc", Distro: "debian", Packages: []lock.Package{
		{Name: "iproute2", Version: "6.1.0-3", Architecture: "amd64", SHA256: sumA},
		{Name: "perl-base", Version: "5.36.0-7", Architecture: "amd64", SHA256: sumB},
		{Name: "libc6", Version: "2.36-9", Architecture: "amd64", SHA256: sumK},
	}}
	res, err := Build(Input{Name: "r", Lock: lk, Licenses: map[string][]string{
		"iproute2":  {"GPL-2+", "public-domain"},
		"perl-base": {"GPL-1+ or Artistic", "public-domain"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, p := range res.Document.Packages {
		got[p.PackageName] = [2]string{p.PackageLicenseDeclared, p.PackageLicenseConcluded}
	}
	want := map[string][2]string{
		"r":         {"NOASSERTION", "NOASSERTION"},
		"iproute2":  {"GPL-2.0-or-later AND LicenseRef-public-domain", "NOASSERTION"},
		"perl-base": {"(GPL-1.0-or-later OR LicenseRef-Artistic) AND LicenseRef-public-domain", "NOASSERTION"},
		"libc6":     {"NOASSERTION", "NOASSERTION"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("licenses (declared, concluded) mismatch (-want +got):\n%s", diff)
	}
	var other []string
	for _, l := range res.Document.OtherLicenses {
		other = append(other, l.LicenseIdentifier+" "+l.LicenseName)
		if l.ExtractedText == "" {
			t.Errorf("%s has no extracted text", l.LicenseIdentifier)
		}
	}
	if diff := cmp.Diff([]string{"LicenseRef-Artistic Artistic", "LicenseRef-public-domain public-domain"}, other); diff != "" {
		t.Errorf("other licenses mismatch (-want +got):\n%s", diff)
	}
}
