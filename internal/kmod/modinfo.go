package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Depends reads the depends= field of a module file's .modinfo section: the modules it needs
// loaded first (what depmod writes into modules.dep, for a tree that has none yet).
func Depends(file string) ([]string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", file)
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					out = append(out, normalize(d))
				}
			}
		}
	}
	return out, nil
}

// LoadOrder is the module files of the tree dir (lib/modules/RELEASE, plain .ko files) that the
// named modules need, dependencies first: what to load, in order, for them. A name the tree's
// modules.builtin lists is built into the kernel and needs nothing; any other name the tree
// lacks is an error.
func LoadOrder(dir string, names []string) ([]string, error) {
	files := map[string]string{} // module name -> path relative to dir
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		files[Name(rel)] = rel
		return nil
	})
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				builtin[Name(l)] = true
			}
		}
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string, string) error
	visit = func(name, from string) error {
		name = normalize(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s: a dependency cycle", name)
		case 2:
			return nil
		}
		f, ok := files[name]
		if !ok {
			if builtin[name] {
				state[name] = 2
				return nil
			}
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) is not in %s", name, from, dir)
			}
			return fmt.Errorf("module %s is not in %s", name, dir)
		}
		state[name] = 1
		deps, err := Depends(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, f)
		return nil
	}
	for _, n := range names {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}
