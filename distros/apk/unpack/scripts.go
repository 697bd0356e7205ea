package unpack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"syscall"
)

// scriptDir is where the install scripts are put in the root while they run.
const scriptDir = ".rootfsc-apk-scripts"

// RunScripts runs the packages' install scripts inside root (chroot, the root's own /bin/sh
// for the #! line), as apk would after laying the files down: every .pre-install, then every
// .post-install, in the order of pkgs, each with the package's version as its argument, like
// a fresh install. The build step runs without network. A script that fails fails the install,
// naming the package, the script and what it printed. The scripts are removed afterwards.
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
	for _, kind := range []string{".pre-install", ".post-install"} {
		for _, p := range pkgs {
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
