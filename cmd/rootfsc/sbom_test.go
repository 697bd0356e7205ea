package main

// The sbom output (issue 10): an SPDX 2.3 document that the SPDX project's library reads back
// and validates, listing every locked package and every input; image outputs carry the same
// document as an in-toto SBOM attestation, and the rootfs does not.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/lock"
)

func TestSBOMOutput(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	copyFile(t, filepath.Join(h.bin, "opa"), filepath.Join(dir, "opa"))
	writeFile(t, filepath.Join(dir, "motd"), "sbom\n")
	writeFile(t, filepath.Join(dir, "m.cue"), `distro:  "debian"
release: "bookworm"
packages: ["iproute2"]
agent: {file: "kata-agent", version: "3.2.0-standin"}
modules: package: "linux-image-amd64"
policy: {builtin: "allow-all", opa: file: "opa"}
files: "/etc/motd": source: "motd"
`)
	h.run(dir, true, "build", "--progress=plain", "-o", "type=sbom,dest=r.spdx.json",
		"-o", "type=oci,dest=r.oci.tar,name=rootfsc/rootfs:sbom", "-o", "type=tar,dest=r.tar", "m.cue")
	lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "r.spdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("reading the SBOM with tools-golang: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatalf("spdxlib.ValidateDocument: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Errorf("spdxVersion %q, want SPDX-2.3", doc.SPDXVersion)
	}
	if want := time.Unix(lk.SourceDateEpoch, 0).UTC().Format(time.RFC3339); doc.CreationInfo.Created != want {
		t.Errorf("created %s, want the lock's epoch %s", doc.CreationInfo.Created, want)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != "Image" {
		t.Fatalf("the document describes %v (%v), want the image package", described, err)
	}

	byName := map[string]*spdx.Package{}
	for _, p := range doc.Packages {
		byName[p.PackageName] = p
	}
	contained := map[spdx.ElementID]bool{}
	for _, r := range doc.Relationships {
		if r.Relationship == "CONTAINS" && r.RefA.ElementRefID == "Image" {
			contained[r.RefB.ElementRefID] = true
		}
	}
	srcs, err := deb.Mirrors()
	if err != nil {
		t.Fatal(err)
	}
	mirrors := map[string]string{}
	for _, s := range srcs {
		mirrors[s.Name] = strings.TrimSuffix(s.URI, "/")
	}
	type listed struct{ Version, PURL, SHA256, Download, Supplier string }
	check := func(pkg lock.Package) {
		t.Helper()
		p := byName[pkg.Name]
		if p == nil {
			t.Errorf("locked package %s is not in the SBOM", pkg.Name)
			return
		}
		got := listed{Version: p.PackageVersion, Download: p.PackageDownloadLocation}
		if p.PackageSupplier != nil {
			got.Supplier = p.PackageSupplier.SupplierType + ": " + p.PackageSupplier.Supplier
		}
		for _, c := range p.PackageChecksums {
			if c.Algorithm == "SHA256" {
				got.SHA256 = c.Value
			}
		}
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" {
				got.PURL = r.Locator
			}
		}
		want := listed{
			Version: pkg.Version,
			// The purl spec percent-encodes the name and version: '+' (an epoch's ':' may stay, and
			// packageurl-go leaves it).
			PURL:     fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s", purlEscape.Replace(pkg.Name), purlEscape.Replace(pkg.Version), pkg.Architecture),
			SHA256:   pkg.SHA256,
			Download: mirrors[pkg.Suite] + "/" + pkg.Filename,
			Supplier: "Organization: Debian",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("package %s mismatch (-want +got):\n%s", pkg.Name, diff)
		}
		if !contained[p.PackageSPDXIdentifier] {
			t.Errorf("the image does not CONTAIN %s", pkg.Name)
		}
	}
	for _, pkg := range lk.Packages {
		check(pkg)
	}
	if lk.Kernel == nil {
		t.Fatal("the lock has no kernel package")
	}
	check(lk.Kernel.Package)
	if n := len(lk.Packages) + 1 + 4 + 1; len(doc.Packages) != n {
		t.Errorf("the SBOM lists %d packages, want %d: the image, the lock's %d, the kernel, agent, OPA, policy and the motd",
			len(doc.Packages), n, len(lk.Packages))
	}
	// The inputs, with the digests of their bytes.
	for name, file := range map[string]string{"kata-agent": "kata-agent", "opa": "opa", "/etc/motd": "motd"} {
		p := byName[name]
		if p == nil {
			t.Errorf("input %s is not in the SBOM", name)
			continue
		}
		if len(p.PackageChecksums) != 1 || p.PackageChecksums[0].Value != fileSum(t, filepath.Join(dir, file)) {
			t.Errorf("input %s: checksums %+v, want the sha256 of %s", name, p.PackageChecksums, file)
		}
		if !contained[p.PackageSPDXIdentifier] {
			t.Errorf("the image does not CONTAIN %s", name)
		}
	}
	if p := byName["kata-agent"]; p != nil && p.PackageVersion != "3.2.0-standin" {
		t.Errorf("the agent's version is %q, want the manifest's", p.PackageVersion)
	}

	t.Run("attestation in the OCI archive", func(t *testing.T) {
		stmt := sbomAttestation(t, filepath.Join(dir, "r.oci.tar"))
		var want any
		if err := json.Unmarshal(text, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, stmt.Predicate); diff != "" {
			t.Errorf("the attestation's predicate is not the sbom output (-want +got):\n%s", diff)
		}
	})
	t.Run("not in the rootfs", func(t *testing.T) {
		for name := range tarEntries(t, filepath.Join(dir, "r.tar")) {
			if strings.Contains(name, "spdx") {
				t.Errorf("the tar output holds %s: the attestation leaked into the rootfs", name)
			}
		}
	})
	t.Run("licenses as the packages state them", func(t *testing.T) {
		// From the rootfs itself: a package whose copyright file is DEP-5 (a Format field first)
		// declares a license; one without, or in prose, is NOASSERTION.
		// A doc folder that links to another package's (of the same source) is that one's
		// statement, which the helper follows inside the rootfs: not compared here.
		copyrights, links := tarFiles(t, filepath.Join(dir, "r.tar"), "usr/share/doc/", "/copyright")
		stated := 0
		for _, pkg := range lk.Packages {
			p := byName[pkg.Name]
			if p == nil || links[pkg.Name] {
				continue
			}
			text, ok := copyrights[pkg.Name]
			dep5 := ok && strings.HasPrefix(text, "Format:") && strings.Contains(text, "\nLicense:")
			switch {
			case dep5 && p.PackageLicenseDeclared == "NOASSERTION":
				t.Errorf("%s states its licenses in DEP-5, the SBOM says NOASSERTION", pkg.Name)
			case !dep5 && p.PackageLicenseDeclared != "NOASSERTION":
				t.Errorf("%s has no DEP-5 copyright file, the SBOM declares %q", pkg.Name, p.PackageLicenseDeclared)
			case dep5:
				stated++
			}
			if p.PackageLicenseConcluded != "NOASSERTION" {
				t.Errorf("%s: concluded license %q, want NOASSERTION", pkg.Name, p.PackageLicenseConcluded)
			}
		}
		if stated == 0 {
			t.Error("no package of the lock declares a license")
		}
		t.Logf("%d of %d packages declare their licenses", stated, len(lk.Packages))
		refs := map[string]bool{}
		for _, l := range doc.OtherLicenses {
			refs[l.LicenseIdentifier] = true
		}
		for _, p := range doc.Packages {
			for _, w := range strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(p.PackageLicenseDeclared)) {
				if strings.HasPrefix(w, "LicenseRef-") && !refs[w] {
					t.Errorf("%s declares %s, which the document does not define", p.PackageName, w)
				}
			}
		}
	})
	t.Run("locked rebuild gives the same bytes", func(t *testing.T) {
		h.run(dir, true, "build", "--locked", "--progress=plain", "-o", "type=sbom,dest=again.spdx.json", "m.cue")
		if a, b := fileSum(t, filepath.Join(dir, "r.spdx.json")), fileSum(t, filepath.Join(dir, "again.spdx.json")); a != b {
			t.Errorf("two builds' SBOMs differ: %s vs %s", a, b)
		}
	})
}

// tarFiles are the regular files of a tar named prefix+NAME+suffix, by NAME, and the NAMEs that
// are symbolic links (prefix+NAME) or whose file is one.
func tarFiles(t *testing.T, archive, prefix, suffix string) (map[string]string, map[string]bool) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, links := map[string]string{}, map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, links
		}
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(strings.TrimPrefix(h.Name, "./"), prefix)
		if ok && h.Typeflag == tar.TypeSymlink {
			links[strings.TrimSuffix(strings.TrimSuffix(name, "/"), suffix)] = true
		}
		if name, ok2 := strings.CutSuffix(name, suffix); ok && ok2 && h.Typeflag == tar.TypeReg && !strings.Contains(name, "/") {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(b)
		}
	}
}

var purlEscape = strings.NewReplacer("+", "%2B")

// inToto is the part of an in-toto statement the test reads.
type inToto struct {
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate any `json:"predicate"`
}

// sbomAttestation finds, from the archive's index.json, the attestation manifest of the image
// and in it the SPDX statement, whose subject must be the image manifest (BuildKit names the
// subject after the image's name, which the archive is given).
func sbomAttestation(t *testing.T, archive string) inToto {
	t.Helper()
	blobs := map[string][]byte{}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		blobs[h.Name] = b
	}
	blob := func(d ocispecs.Descriptor, v any) []byte {
		t.Helper()
		b, ok := blobs["blobs/"+d.Digest.Algorithm().String()+"/"+d.Digest.Encoded()]
		if !ok {
			t.Fatalf("blob %s is not in the archive", d.Digest)
		}
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("blob %s: %v", d.Digest, err)
			}
		}
		return b
	}
	var index ocispecs.Index
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	// index.json names the image index, which lists the image and its attestation manifest.
	manifests := index.Manifests
	if len(manifests) == 1 && manifests[0].MediaType == ocispecs.MediaTypeImageIndex {
		var inner ocispecs.Index
		blob(manifests[0], &inner)
		manifests = inner.Manifests
	}
	var image, att *ocispecs.Descriptor
	for i, m := range manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			att = &manifests[i]
		} else {
			image = &manifests[i]
		}
	}
	if att == nil || image == nil {
		t.Fatalf("the archive's index lists no image and attestation manifest: %+v", manifests)
	}
	if att.Annotations["vnd.docker.reference.digest"] != image.Digest.String() {
		t.Errorf("the attestation manifest refers to %s, want the image %s", att.Annotations["vnd.docker.reference.digest"], image.Digest)
	}
	var m ocispecs.Manifest
	blob(*att, &m)
	for _, l := range m.Layers {
		if l.Annotations["in-toto.io/predicate-type"] != "https://spdx.dev/Document" {
			continue
		}
		var stmt inToto
		blob(l, &stmt)
		if stmt.PredicateType != "https://spdx.dev/Document" {
			t.Errorf("statement predicate type %q", stmt.PredicateType)
		}
		if len(stmt.Subject) != 1 || stmt.Subject[0].Digest["sha256"] != image.Digest.Encoded() {
			t.Errorf("statement subjects %+v, want the image manifest %s", stmt.Subject, image.Digest)
		}
		return stmt
	}
	t.Fatalf("the attestation manifest has no SPDX layer: %+v", m.Layers)
	return inToto{}
}
