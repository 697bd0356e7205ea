package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/rootfsc/rootfsc/distros/lock"
)

// PredicateType is the in-toto predicate type of an SPDX document, as BuildKit's own SBOM
// attestations carry it.
const PredicateType = "https://spdx.dev/Document"

// noAssertion is SPDX's "not stated" for a field.
const noAssertion = "NOASSERTION"

// Input is what the document lists.
type Input struct {
	// Name names the image (the manifest's name without .cue).
	Name string
	// Tool is the creator, "rootfsc-VERSION".
	Tool string
	// Epoch is the build's SOURCE_DATE_EPOCH: the document's creation time, so two builds of one
	// manifest and lock write the same bytes.
	Epoch int64
	// Lock holds the packages of the base and the kernel package (nil in overlay mode).
	Lock *lock.Lock
	// Supplier is the distribution that supplies the locked packages ("Debian").
	Supplier string
	// DownloadURL is where the build fetched a locked package from ("" when it cannot be told).
	DownloadURL func(*lock.Package) string
	// Components are the other inputs: agent, OPA, policy, a modules tree, files.
	Components []Component
	// Licenses are the License lines each installed package states in its machine-readable
	// (DEP-5) /usr/share/doc/PKG/copyright, by package name, read inside the build; a package
	// without them is NOASSERTION.
	Licenses map[string][]string
}

// Component is one input that is not a locked package.
type Component struct {
	// Role is what it is in the rootfs ("agent", "opa", "policy", "modules", "file"), Name its
	// name in the document ("kata-agent", "/etc/motd").
	Role, Name string
	Version    string
	// URL is where it was downloaded from; "" for a file of the build context.
	URL string
	// Path is its path in the build context ("" for a download or a built-in).
	Path string
	// SHA256 is the digest of its bytes, hex; for a folder, of its listing (see the caller).
	SHA256  string
	Comment string
}

// Result is the document and its JSON encoding.
type Result struct {
	Document *spdx.Document
	JSON     []byte
}

// Element IDs of the document.
const (
	documentID common.ElementID = "DOCUMENT"
	imageID    common.ElementID = "Image"
)

// Build makes the document: the image package the document DESCRIBES, CONTAINS every locked
// package (the kernel package's modules too) and every component, in sorted order; created at
// the epoch, with a namespace derived from the lock's input digest and the components' digests.
//
// A package's declared license is what its DEP-5 copyright file states ([Input.Licenses]),
// converted to an SPDX expression (names without an SPDX id become LicenseRefs of the
// document); the concluded license is NOASSERTION, since rootfsc concludes nothing. A package
// whose copyright file is prose, or missing, and every other input, are NOASSERTION: a
// document that guessed would be worse than one that says it does not know.
func Build(in Input) (*Result, error) {
	if in.Name == "" {
		return nil, errors.New("sbom: no image name")
	}
	if in.Tool == "" {
		in.Tool = "rootfsc"
	}
	image := &spdx.Package{
		PackageName:             in.Name,
		PackageSPDXIdentifier:   imageID,
		PackageDownloadLocation: noAssertion,
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PackageCopyrightText:    noAssertion,
		PrimaryPackagePurpose:   "OPERATING-SYSTEM",
		PackageComment:          "the guest root filesystem rootfsc built",
	}
	doc := &spdx.Document{
		SPDXVersion:    spdx.Version,
		DataLicense:    spdx.DataLicense,
		SPDXIdentifier: documentID,
		DocumentName:   in.Name,
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: in.Tool}},
			Created:  time.Unix(in.Epoch, 0).UTC().Format(time.RFC3339),
		},
		Packages: []*spdx.Package{image},
		Relationships: []*spdx.Relationship{{
			RefA:         common.MakeDocElementID("", string(documentID)),
			RefB:         common.MakeDocElementID("", string(imageID)),
			Relationship: common.TypeRelationshipDescribe,
		}},
	}
	// The namespace names this document: the same lock and inputs, the same name.
	ns := sha256.New()
	fmt.Fprintf(ns, "%s\n", in.Name)
	var pkgs []*spdx.Package
	if l := in.Lock; l != nil {
		fmt.Fprintf(ns, "lock %s\n", l.InputDigest)
		locked := slices.Clone(l.Packages)
		slices.SortFunc(locked, func(a, b lock.Package) int { return strings.Compare(a.Name, b.Name) })
		for i := range locked {
			p, err := debPackage(in, &locked[i], "")
			if err != nil {
				return nil, err
			}
			pkgs = append(pkgs, p)
		}
		if k := l.Kernel; k != nil {
			fmt.Fprintf(ns, "kernel %s\n", k.SHA256)
			p, err := debPackage(in, &k.Package, fmt.Sprintf("kernel modules: only /usr/lib/modules/%s of this package is in the rootfs", k.Release))
			if err != nil {
				return nil, err
			}
			p.PackageSPDXIdentifier = "Kernel-" + p.PackageSPDXIdentifier
			pkgs = append(pkgs, p)
		}
	}
	comps := slices.Clone(in.Components)
	slices.SortFunc(comps, func(a, b Component) int {
		return strings.Compare(a.Role+"\x00"+a.Name, b.Role+"\x00"+b.Name)
	})
	for i, c := range comps {
		if !isSHA256(c.SHA256) {
			return nil, fmt.Errorf("sbom: %s %s: sha256 %q is not 64 hex digits", c.Role, c.Name, c.SHA256)
		}
		fmt.Fprintf(ns, "%s %s %s\n", c.Role, c.Name, c.SHA256)
		p := &spdx.Package{
			PackageName: c.Name,
			// Components are numbered in their sorted order: names are paths, which SPDX ids
			// cannot spell.
			PackageSPDXIdentifier:   common.ElementID(fmt.Sprintf("%s-%d", idRole(c.Role), i+1)),
			PackageVersion:          c.Version,
			PackageFileName:         c.Path,
			PackageDownloadLocation: cmpOr(c.URL, noAssertion),
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: c.SHA256}},
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
			PackageComment:          c.Comment,
		}
		pkgs = append(pkgs, p)
	}
	refs := map[string]string{}
	for _, p := range pkgs {
		if lines := in.Licenses[p.PackageName]; len(lines) > 0 && strings.HasPrefix(string(p.PackageSPDXIdentifier), "Package-deb-") {
			expr, used := declared(lines)
			p.PackageLicenseDeclared = expr
			for id, name := range used {
				if _, ok := refs[id]; !ok {
					refs[id] = name
				}
			}
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", string(imageID)),
			RefB:         common.MakeDocElementID("", string(p.PackageSPDXIdentifier)),
			Relationship: common.TypeRelationshipContains,
		})
	}
	for _, id := range slices.Sorted(maps.Keys(refs)) {
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: id,
			LicenseName:       refs[id],
			ExtractedText: fmt.Sprintf("The license Debian's copyright files name %q (DEP-5 License field); "+
				"its text is in /usr/share/doc/PKG/copyright of the packages that declare it.", refs[id]),
		})
	}
	for _, name := range slices.Sorted(maps.Keys(in.Licenses)) {
		fmt.Fprintf(ns, "license %s %q\n", name, in.Licenses[name])
	}
	sum := ns.Sum(nil)
	doc.DocumentNamespace = "https://github.com/rootfsc/rootfsc/spdx/" + idSafe(in.Name) + "-" + hex.EncodeToString(sum[:16])
	var b bytes.Buffer
	if err := spdxjson.Write(doc, &b, spdxjson.Indent("  ")); err != nil {
		return nil, fmt.Errorf("sbom: encoding: %w", err)
	}
	return &Result{Document: doc, JSON: b.Bytes()}, nil
}

// debPackage is a locked package: its purl, where it was fetched from and its sha256.
func debPackage(in Input, p *lock.Package, comment string) (*spdx.Package, error) {
	id, err := debID(p.Name)
	if err != nil {
		return nil, err
	}
	if !isSHA256(p.SHA256) {
		return nil, fmt.Errorf("sbom: package %s: sha256 %q is not 64 hex digits", p.Name, p.SHA256)
	}
	distro := "debian"
	if in.Lock != nil && in.Lock.Distro != "" {
		distro = in.Lock.Distro
	}
	purl := packageurl.NewPackageURL(packageurl.TypeDebian, distro, p.Name, p.Version,
		packageurl.Qualifiers{{Key: "arch", Value: p.Architecture}}, "").ToString()
	where := noAssertion
	if in.DownloadURL != nil {
		where = cmpOr(in.DownloadURL(p), noAssertion)
	}
	c := fmt.Sprintf("architecture %s, suite %s", p.Architecture, p.Suite)
	if comment != "" {
		c = comment + "; " + c
	}
	out := &spdx.Package{
		PackageName:             p.Name,
		PackageSPDXIdentifier:   id,
		PackageVersion:          p.Version,
		PackageFileName:         p.Filename,
		PackageDownloadLocation: where,
		PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: p.SHA256}},
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PackageCopyrightText:    noAssertion,
		PackageComment:          c,
		PackageExternalReferences: []*spdx.PackageExternalReference{{
			Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl,
		}},
	}
	if in.Supplier != "" {
		out.PackageSupplier = &common.Supplier{SupplierType: "Organization", Supplier: in.Supplier}
	}
	return out, nil
}

// debID is a package's SPDX id. Debian names are [a-z0-9+.-]; SPDX ids allow [A-Za-z0-9.-], so
// '+' becomes 'P', which no Debian name holds: one id per name.
func debID(name string) (common.ElementID, error) {
	if name == "" {
		return "", errors.New("sbom: a locked package without a name")
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		case r == '+':
			b.WriteByte('P')
		default:
			return "", fmt.Errorf("sbom: package name %q: %q is not in a Debian package name", name, r)
		}
	}
	return common.ElementID("Package-deb-" + b.String()), nil
}

// idRole is a component's role as an id part.
func idRole(role string) string {
	return "Input-" + idSafe(role)
}

// idSafe keeps the characters SPDX ids allow, others become '-'.
func idSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
