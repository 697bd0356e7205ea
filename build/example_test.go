package build_test

import (
	"context"
	"fmt"
	"io/fs"
	"testing/fstest"

	"github.com/rootfsc/rootfsc/build"
)

// Prepare an overlay manifest (no distro, so no lock) read from memory: the pipeline checks its
// inputs inside the build context and names what the build will read.
func ExamplePrepare() {
	files := fstest.MapFS{
		"rootfs.cue":     {Data: []byte(`agent: {file: "bin/kata-agent", init: "agent"}` + "\n")},
		"bin/kata-agent": {Data: []byte("\x7fELF"), Mode: 0o755},
	}
	p, err := build.Prepare(context.Background(), build.Source{
		Manifest: files, Name: "rootfs.cue", Dir: "/work",
		Context: func(context.Context, []string) (fs.FS, error) { return files, nil },
	}, build.Opts{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.ContextPaths(), p.Platform().Architecture)
	// Output: [bin/kata-agent] amd64
}
