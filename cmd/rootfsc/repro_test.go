package main

// Reproducibility: two cold builds of one manifest and lock, each with a daemon of its own (no
// shared cache), must write byte-identical tar, OCI and sbom outputs.

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsc/rootfsc/engine"
)

func TestReproducible(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join(bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	copyFile(t, filepath.Join(bin, "opa"), filepath.Join(dir, "opa"))
	writeFile(t, filepath.Join(dir, "m.cue"), `distro:  "debian"
release: "bookworm"
agent: file: "kata-agent"
modules: package: "linux-image-amd64"
policy: {builtin: "allow-all", opa: file: "opa"}
files: "/etc/motd": content: "reproducible\n"
`)
	var tars, ocis, sboms []string
	for i := 1; i <= 2; i++ {
		h := newHarness(t) // a state directory of its own: a cold build
		out := filepath.Join(dir, fmt.Sprintf("rootfs%d.tar", i))
		oci := filepath.Join(dir, fmt.Sprintf("rootfs%d.oci.tar", i))
		sbom := filepath.Join(dir, fmt.Sprintf("rootfs%d.spdx.json", i))
		h.run(dir, true, "build", "--progress=plain", "-o", "type=tar,dest="+out, "-o", "type=oci,dest="+oci,
			"-o", "type=sbom,dest="+sbom, "m.cue")
		ocis = append(ocis, oci)
		sboms = append(sboms, sbom)
		// Stopped before the next daemon starts, so the two never share the CPU.
		if err := engine.Stop(h.state); err != nil {
			t.Log(err)
		}
		tars = append(tars, out)
	}
	if a, b := fileSum(t, tars[0]), fileSum(t, tars[1]); a != b {
		t.Errorf("two cold builds differ: %s vs %s\n%s", a, b, tarDiff(t, tars[0], tars[1]))
	}
	// The image too: every layer, the config and the manifest.
	if a, b := fileSum(t, ocis[0]), fileSum(t, ocis[1]); a != b {
		t.Errorf("two cold builds' OCI archives differ: %s vs %s\n%s", a, b, tarDiff(t, ocis[0], ocis[1]))
	}
	if a, b := fileSum(t, sboms[0]), fileSum(t, sboms[1]); a != b {
		t.Errorf("two cold builds' SBOMs differ: %s vs %s", a, b)
	}
}

// tarDiff lists the entries whose header or content differ between two tar files.
func tarDiff(t *testing.T, a, b string) string {
	t.Helper()
	ea, eb := tarEntries(t, a), tarEntries(t, b)
	var out string
	n := 0
	for name, x := range ea {
		if y, ok := eb[name]; !ok || x != y {
			out += fmt.Sprintf("  %s: %s | %s\n", name, x, eb[name])
			if n++; n == 20 {
				break
			}
		}
	}
	for name := range eb {
		if _, ok := ea[name]; !ok {
			out += fmt.Sprintf("  %s: only in the second\n", name)
		}
	}
	if out == "" {
		out = "  (same entries: the order or the tar framing differs)"
	}
	return out
}

func tarEntries(t *testing.T, p string) map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.New()
		io.Copy(sum, tr)
		entries[h.Name] = fmt.Sprintf("mode %o %d:%d mtime %d link %q sha256 %s", h.Mode, h.Uid, h.Gid,
			h.ModTime.Unix(), h.Linkname, hex.EncodeToString(sum.Sum(nil))[:16])
	}
}
