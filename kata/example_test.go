package kata_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rootfsc/rootfsc/kata"
)

// An overlay tree (the Kata layers alone) whose agent lost its execute bit
// and whose kata-agent.service is a folder.
func ExampleCheck() {
	root, err := os.MkdirTemp("", "rootfs")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	files := map[string]os.FileMode{
		"usr/bin/kata-agent":                                           0o644,
		"usr/lib/systemd/system/kata-containers.target":                0o644,
		"etc/systemd/system/basic.target.wants/kata-containers.target": 0o644,
	}
	for p, mode := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, nil, mode)
		os.Chmod(full, mode) // whatever the umask
	}
	os.MkdirAll(filepath.Join(root, "usr/lib/systemd/system/kata-agent.service"), 0o755)

	err = kata.Check(root, kata.CheckOpts{Init: "systemd", Overlay: true})
	var ce *kata.CheckError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// /usr/bin/kata-agent: kata-agent is not executable (mode 0644)
	// /usr/lib/systemd/system/kata-agent.service: kata-agent.service is not a regular file
}
