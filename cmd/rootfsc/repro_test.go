package main

// Reproducibility: two cold builds of each example and its lock, each with a daemon of its own
// (no shared cache), must write byte-identical tar, OCI, initrd, disk and sbom outputs; the second
// build runs with --check, which builds once more with the cache bypassed and compares too.

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rootfsc/rootfsc/engine"
)

func TestReproducible(t *testing.T) {
	bin := binDir(t)
	// The two examples as they are in the repository, with the files their context needs.
	examples := filepath.Join("..", "..", "examples")
	for _, example := range []string{"debian.cue", "agent-init.cue"} {
		t.Run(example, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			copyFile(t, filepath.Join(bin, "kata-agent-standin"), filepath.Join(dir, "bin", "kata-agent-standin"))
			copyFile(t, filepath.Join(bin, "opa"), filepath.Join(dir, "bin", "opa"))
			copyFile(t, filepath.Join(examples, example), filepath.Join(dir, "m.cue"))
			outputs := []struct{ typ, name, extra string }{
				{"tar", "rootfs.tar", ""},
				{"oci", "rootfs.oci.tar", ""},
				{"initrd", "rootfs.initrd", ""},
				{"disk", "rootfs.img", ",verity=true"},
				{"sbom", "rootfs.spdx.json", ""},
			}
			var files [2][]string
			for i := range 2 {
				h := newHarness(t) // a state directory of its own: a cold build
				args := []string{"build", "--progress=plain"}
				for _, o := range outputs {
					p := filepath.Join(dir, fmt.Sprintf("%d-%s", i, o.name))
					args = append(args, "-o", "type="+o.typ+",dest="+p+o.extra)
					files[i] = append(files[i], p)
					if o.typ == "disk" {
						files[i] = append(files[i], p+".verity-params")
					}
				}
				if i == 1 {
					args = append(args, "--check")
				}
				out := h.run(dir, true, append(args, "m.cue")...)
				if i == 1 && !strings.Contains(out, "check: the build without the cache gave the same rootfs and outputs") {
					t.Errorf("build --check did not say the builds are the same:\n%s", tail([]byte(out)))
				}
				// Stopped before the next daemon starts, so the two never share the CPU.
				if err := engine.Stop(h.state); err != nil {
					t.Log(err)
				}
			}
			for j, a := range files[0] {
				b := files[1][j]
				if x, y := fileSum(t, a), fileSum(t, b); x != y {
					msg := ""
					if strings.HasSuffix(a, ".tar") {
						msg = tarDiff(t, a, b)
					}
					t.Errorf("two cold builds differ: %s %s vs %s\n%s", filepath.Base(a), x, y, msg)
				}
			}
		})
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
