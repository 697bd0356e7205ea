package build

// The fingerprint of an in-process build's result, which lets the engine leave a dir output
// that already holds it untouched (engine.Opts.Fingerprint).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	bkllb "github.com/moby/buildkit/client/llb"
	"golang.org/x/sys/unix"
)

// localFiles is a local the build sends: its folder and the paths in it the build reads.
type localFiles struct {
	dir   string
	paths []string
}

// fingerprint digests everything the result of building p in-process depends on: the ops of
// the definition [WriteDefinition] writes (the same lowering the frontend makes), rootfsc's
// version and the epoch, the frontend options, and the metadata and content of every file of
// every local the client sends — a local's content is not in the definition — plus the running
// rootfsc, whose code is the in-process frontend. locals maps each local's name to its folder
// and the paths read from it.
func (p *Plan) fingerprint(ctx context.Context, attrs map[string]string, locals map[string]localFiles) (string, error) {
	var buf bytes.Buffer
	if _, err := WriteDefinition(ctx, p, &buf); err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	// The ops alone: the definition's metadata is a map, marshalled in no fixed order, and holds
	// names and progress groups, nothing the result depends on.
	def, err := bkllb.ReadFrom(&buf)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "rootfsc %s\nepoch %d\n", Version, p.Epoch)
	for _, op := range def.Def {
		fmt.Fprintf(h, "op %x\n", sha256.Sum256(op))
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		fmt.Fprintf(h, "attr %q=%q\n", k, attrs[k])
	}
	for _, name := range slices.Sorted(maps.Keys(locals)) {
		l := locals[name]
		for _, rel := range slices.Sorted(slices.Values(l.paths)) {
			fmt.Fprintf(h, "local %q path %q\n", name, rel)
			if err := digestTree(h, filepath.Join(l.dir, filepath.FromSlash(rel))); err != nil {
				return "", fmt.Errorf("fingerprint: local %s: %w", name, err)
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		fmt.Fprintf(h, "executable\n")
		if err := digestTree(h, exe); err != nil {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// digestTree writes into h every entry under root (root itself when it is a file; a link at
// root is followed, as a local's path is): its path, type, mode, owner, size, mtime, link target
// and content. A missing root is written as missing.
func digestTree(h hash.Hash, root string) error {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(h, "missing\n")
		return nil
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%q %o %d:%d %d %d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano())
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q", target)
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			c := sha256.New()
			_, err = io.Copy(c, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			fmt.Fprintf(h, " %x", c.Sum(nil))
		}
		fmt.Fprintln(h)
		return nil
	})
}
