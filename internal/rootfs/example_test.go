package rootfs_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// A merged-/usr root: lib is a link to usr/lib, so lib/modules lives in usr/lib/modules.
func ExampleResolve() {
	root, err := os.MkdirTemp("", "rootfs")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	if err := os.Symlink("/usr/lib", filepath.Join(root, "lib")); err != nil {
		panic(err)
	}
	p, err := rootfs.Resolve(root, "lib/modules/6.1.0", true)
	if err != nil {
		panic(err)
	}
	rel, _ := filepath.Rel(root, p)
	fmt.Println(rel)
	// Output: usr/lib/modules/6.1.0
}
