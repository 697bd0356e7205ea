// Package kmod selects kernel modules: the modules a manifest's modules.include names, and what
// they depend on, are kept in a modules tree; every other module file goes. It runs inside the
// build (`rootfsc internal modules`), between two depmod runs, over a tree that came from a
// package: every path it removes is one modules.dep lists, opened beneath the tree.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Result is what [Select] kept and removed.
type Result struct {
	// Kept are the module files kept, relative to the tree, sorted.
	Kept []string
	// Removed counts the module files removed.
	Removed int
}

// maxDepLine bounds one line of modules.dep (a module and its dependencies' paths).
const maxDepLine = 1 << 20

// Select keeps, in the modules tree dir (lib/modules/RELEASE, with the modules.dep of a depmod
// run over it), the modules whose names match a pattern of include and what they depend on, and
// removes every other module file modules.dep lists, then the folders that leaves empty. A
// pattern is a shell glob ([path.Match]) over module names, where - and _ are the same, as for
// modprobe; a pattern that matches no module is an error.
func Select(dir string, include []string) (*Result, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	deps, err := readDeps(root)
	if err != nil {
		return nil, err
	}
	names := make(map[string][]string) // module name -> its files (one, unless the tree is odd)
	for file := range deps {
		n := Name(file)
		names[n] = append(names[n], file)
	}
	keep := map[string]bool{}
	var visit func(string)
	visit = func(file string) {
		if keep[file] {
			return
		}
		keep[file] = true
		for _, d := range deps[file] {
			visit(d)
		}
	}
	for _, p := range include {
		pat := normalize(p)
		if _, err := path.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("modules.include %q: %w", p, err)
		}
		matched := false
		for n, files := range names {
			if ok, _ := path.Match(pat, n); ok {
				matched = true
				for _, f := range files {
					visit(f)
				}
			}
		}
		if !matched {
			return nil, fmt.Errorf("modules.include %q: no module of %s has that name", p, path.Base(dir))
		}
	}
	res := &Result{}
	dirs := map[string]bool{}
	for file := range deps {
		if keep[file] {
			res.Kept = append(res.Kept, file)
			continue
		}
		if err := root.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("removing %s: %w", file, err)
		}
		res.Removed++
		for d := path.Dir(file); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	// The deepest folders first; a folder that still holds something stays.
	empty := make([]string, 0, len(dirs))
	for d := range dirs {
		empty = append(empty, d)
	}
	slices.SortFunc(empty, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range empty {
		if ents, err := fs.ReadDir(root.FS(), d); err == nil && len(ents) == 0 {
			root.Remove(d)
		}
	}
	slices.Sort(res.Kept)
	return res, nil
}

// readDeps parses modules.dep: "kernel/x/a.ko: kernel/y/b.ko kernel/z/c.ko" a line, paths
// relative to the tree; each must be a clean relative path to a module file.
func readDeps(root *os.Root) (map[string][]string, error) {
	f, err := root.Open("modules.dep")
	if err != nil {
		return nil, fmt.Errorf("%w (depmod must run over the tree first)", err)
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxDepLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("modules.dep:%d: no colon", n)
		}
		fields := append([]string{mod}, strings.Fields(rest)...)
		for _, p := range fields {
			if !fs.ValidPath(p) || !isModule(p) {
				return nil, fmt.Errorf("modules.dep:%d: %q is not a module file in the tree", n, p)
			}
		}
		deps[mod] = fields[1:]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	return deps, nil
}

// isModule says whether p names a module file: .ko, compressed or not.
func isModule(p string) bool {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// Name is the module name of a module file: its base name without the .ko extension, with -
// made _ (modprobe's spelling).
func Name(file string) string {
	b := path.Base(file)
	if i := strings.Index(b, ".ko"); i > 0 {
		b = b[:i]
	}
	return normalize(b)
}

func normalize(s string) string { return strings.ReplaceAll(s, "-", "_") }
