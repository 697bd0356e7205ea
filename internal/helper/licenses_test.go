package helper

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The licenses step reads the DEP-5 files of the root and follows no link out of it.
func TestLicenses(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	dep5 := "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: GPL-2+\n"
	write := func(p, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc := filepath.Join(root, "usr/share/doc")
	write(filepath.Join(doc, "a/copyright"), dep5)
	write(filepath.Join(doc, "prose/copyright"), "This is Debian's package of prose.\n\nLicense: GPL-3\n")
	write(filepath.Join(dir, "outside/copyright"), dep5)
	// A doc folder linking to another package's, inside the root, is followed.
	if err := os.Symlink("a", filepath.Join(doc, "liba")); err != nil {
		t.Fatal(err)
	}
	// Links out of the root, relative and absolute, are not.
	if err := os.Symlink("../../../../outside", filepath.Join(doc, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "outside"), filepath.Join(doc, "abs")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "licenses.json")
	var stderr bytes.Buffer
	if code := Main(context.Background(), []string{"licenses", "--root", root, "--out", out}, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("licenses: exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"a": {"GPL-2+"}, "liba": {"GPL-2+"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("licenses mismatch (-want +got):\n%s", diff)
	}
}
