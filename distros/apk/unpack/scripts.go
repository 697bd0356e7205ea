package unpack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"
	"syscall"
)

// scriptDir is where the install scripts are put in the root while they run.
const scriptDir = ".rootfsc-apk-scripts"

// RunScripts runs the packages' install scripts inside root (chroot, the root's own /bin/sh
// for the #! line) once all files are down: package by package in dependency order (what a
// package depends on first, as apk installs them; see [Order]), its .pre-install and then its
// .post-install, each with the package's version as its argument, like a fresh install. The
// build step runs without network. A script that fails fails the install, naming the package,
// the script and what it printed. The scripts are removed afterwards.
func RunScripts(ctx context.Context, root string, pkgs []*Package) error {
	var any bool
	for _, p := range pkgs {
		any = any || p.Scripts[".pre-install"] != nil || p.Scripts[".post-install"] != nil
	}
	if !any {
		return nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Mkdir(scriptDir, 0o700); err != nil {
		return fmt.Errorf("install scripts: %w", err)
	}
	defer r.RemoveAll(scriptDir)
	for _, p := range Order(pkgs) {
		for _, kind := range []string{".pre-install", ".post-install"} {
			script, ok := p.Scripts[kind]
			if !ok {
				continue
			}
			name := path.Join(scriptDir, p.Name+kind)
			if err := r.WriteFile(name, script, 0o700); err != nil {
				return fmt.Errorf("%s %s: %w", p.Name, kind, err)
			}
			cmd := exec.CommandContext(ctx, "/"+name, p.Version)
			cmd.Dir = "/"
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s %s %s: %w\n%s", p.Name, p.Version, kind, err, out.Bytes())
			}
		}
	}
	return nil
}

// Order sorts packages so that each comes after the packages it depends on (by name or by what
// they provide), keeping the given order otherwise; a dependency cycle is broken where it is
// met, as apk does.
func Order(pkgs []*Package) []*Package {
	byName := map[string]int{}
	for i, p := range pkgs {
		for _, pr := range p.Provides {
			name, _, _ := strings.Cut(pr, "=")
			if _, ok := byName[name]; !ok {
				byName[name] = i
			}
		}
	}
	for i, p := range pkgs {
		byName[p.Name] = i // a package's own name wins over another's provide
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(pkgs))
	out := make([]*Package, 0, len(pkgs))
	var visit func(i int)
	visit = func(i int) {
		if state[i] != unseen {
			return
		}
		state[i] = visiting
		for _, d := range pkgs[i].Depends {
			if strings.HasPrefix(d, "!") {
				continue
			}
			name := d
			if j := strings.IndexAny(d, "<>=~"); j >= 0 {
				name = d[:j]
			}
			if j, ok := byName[name]; ok && j != i {
				visit(j)
			}
		}
		state[i] = done
		out = append(out, pkgs[i])
	}
	for i := range pkgs {
		visit(i)
	}
	return out
}
