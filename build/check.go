package build

// `rootfsc build --check`, as `nix build --check`: the manifest is built a second time with
// every step run again, ignoring the cache, and the two rootfs (as tar streams) and every file
// output are compared.

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rootfsc/rootfsc/engine"
)

// Difference is one way the build without the cache differs from the first.
type Difference struct {
	// Path is the rootfs path ("/etc/ssh/ssh_host_ed25519_key"), or an output's destination.
	Path string
	// What says how: "content (sha256 … then …)", "mode 0644 then 0600", "owner 0:0 then 0:1",
	// "mtime … then …", "xattrs …", "type …", "link target …", "only in the first build", ….
	What string
}

// CheckError lists how a build without the cache differed from the first.
type CheckError struct {
	Differences []Difference
}

// maxShown bounds the differences the error's text lists.
const maxShown = 40

func (e *CheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "build --check: the build without the cache differs from the first in %d place(s):", len(e.Differences))
	for i, d := range e.Differences {
		if i == maxShown {
			fmt.Fprintf(&b, "\n  … and %d more", len(e.Differences)-maxShown)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %s", d.Path, d.What)
	}
	return b.String()
}

// checkBuild builds again without the cache into a temporary folder and compares: the rootfs
// as a tar against first (the first build's tar), and each file output against its destination.
func checkBuild(ctx context.Context, eo engine.Opts, outputs []engine.Output, first, dir string) error {
	attrs := maps.Clone(eo.FrontendAttrs)
	attrs[OptNoCache] = ""
	eo.FrontendAttrs = attrs
	second := filepath.Join(dir, "second.tar")
	again := []engine.Output{{Type: "tar", Dest: second}}
	type pair struct{ dest, again string }
	var files []pair
	for i, o := range outputs {
		switch o.Type {
		case "tar", "initrd", "sbom", "oci", "docker", "disk":
			p := filepath.Join(dir, fmt.Sprintf("%d.%s", i, o.Type))
			again = append(again, engine.Output{Type: o.Type, Dest: p, Attrs: o.Attrs})
			files = append(files, pair{o.Dest, p})
			if o.Type == "disk" {
				// and the verity parameters beside the image, when it has them
				if _, err := os.Stat(o.Dest + ".verity-params"); err == nil {
					files = append(files, pair{o.Dest + ".verity-params", p + ".verity-params"})
				}
			}
		}
	}
	if err := diskAttrs(again, attrs); err != nil {
		return err
	}
	if _, err := engine.Build(ctx, Frontend, again, eo); err != nil {
		return fmt.Errorf("build --check: the build without the cache: %w", err)
	}
	diffs, err := DiffTars(first, second)
	if err != nil {
		return fmt.Errorf("build --check: %w", err)
	}
	for _, f := range files {
		a, err := fileSHA256(f.dest)
		if err != nil {
			return fmt.Errorf("build --check: %w", err)
		}
		b, err := fileSHA256(f.again)
		if err != nil {
			return fmt.Errorf("build --check: %w", err)
		}
		if a != b {
			diffs = append(diffs, Difference{f.dest, fmt.Sprintf("the output's bytes (sha256 %s then %s)", a[:12], b[:12])})
		}
	}
	if len(diffs) > 0 {
		return &CheckError{Differences: diffs}
	}
	return nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tarEntry is what DiffTars compares of one entry.
type tarEntry struct {
	hdr *tar.Header
	sum string // sha256 of a regular file's content
}

// DiffTars lists how the tar streams a and b differ, entry by entry: what is only in one, and
// for the others the type, content, mode, owner, mtime, link target and xattrs (PAX records).
func DiffTars(a, b string) ([]Difference, error) {
	ea, order, err := readTar(a)
	if err != nil {
		return nil, err
	}
	eb, orderB, err := readTar(b)
	if err != nil {
		return nil, err
	}
	var diffs []Difference
	for _, name := range order {
		x, y := ea[name], eb[name]
		p := "/" + strings.TrimPrefix(strings.TrimSuffix(name, "/"), "./")
		if y == nil {
			diffs = append(diffs, Difference{p, "only in the first build"})
			continue
		}
		for _, w := range entryDiff(x, y) {
			diffs = append(diffs, Difference{p, w})
		}
	}
	for _, name := range orderB {
		if ea[name] == nil {
			diffs = append(diffs, Difference{"/" + strings.TrimPrefix(strings.TrimSuffix(name, "/"), "./"), "only in the build without the cache"})
		}
	}
	return diffs, nil
}

func entryDiff(x, y *tarEntry) []string {
	var out []string
	hx, hy := x.hdr, y.hdr
	if hx.Typeflag != hy.Typeflag {
		return []string{fmt.Sprintf("type %q then %q", hx.Typeflag, hy.Typeflag)}
	}
	if x.sum != y.sum {
		out = append(out, fmt.Sprintf("content (sha256 %s then %s)", short(x.sum), short(y.sum)))
	}
	if hx.Mode != hy.Mode {
		out = append(out, fmt.Sprintf("mode %04o then %04o", hx.Mode, hy.Mode))
	}
	if hx.Uid != hy.Uid || hx.Gid != hy.Gid {
		out = append(out, fmt.Sprintf("owner %d:%d then %d:%d", hx.Uid, hx.Gid, hy.Uid, hy.Gid))
	}
	if !hx.ModTime.Equal(hy.ModTime) {
		out = append(out, fmt.Sprintf("mtime %s then %s", hx.ModTime.UTC().Format(time.RFC3339Nano), hy.ModTime.UTC().Format(time.RFC3339Nano)))
	}
	if hx.Linkname != hy.Linkname {
		out = append(out, fmt.Sprintf("link target %q then %q", hx.Linkname, hy.Linkname))
	}
	if hx.Devmajor != hy.Devmajor || hx.Devminor != hy.Devminor {
		out = append(out, fmt.Sprintf("device %d:%d then %d:%d", hx.Devmajor, hx.Devminor, hy.Devmajor, hy.Devminor))
	}
	if px, py := records(hx), records(hy); px != py {
		out = append(out, fmt.Sprintf("xattrs [%s] then [%s]", px, py))
	}
	return out
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// records are an entry's xattrs (its SCHILY.xattr. PAX records), sorted, in words.
func records(h *tar.Header) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(h.PAXRecords)) {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			kv = append(kv, fmt.Sprintf("%s=%q", strings.TrimPrefix(k, "SCHILY.xattr."), h.PAXRecords[k]))
		}
	}
	return strings.Join(kv, " ")
}

func readTar(p string) (map[string]*tarEntry, []string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	entries := map[string]*tarEntry{}
	var order []string
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, order, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		e := &tarEntry{hdr: hdr}
		if hdr.Typeflag == tar.TypeReg {
			h := sha256.New()
			if _, err := io.Copy(h, tr); err != nil {
				return nil, nil, fmt.Errorf("%s: %s: %w", p, hdr.Name, err)
			}
			e.sum = hex.EncodeToString(h.Sum(nil))
		}
		if _, dup := entries[hdr.Name]; !dup {
			order = append(order, hdr.Name)
		}
		entries[hdr.Name] = e
	}
}
