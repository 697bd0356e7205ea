package deb

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// HelperMain is `rootfsc internal extract --root DIR [--usrmerge] [--only PREFIX]... DEB...`,
// run inside the build by the helper: [Bootstrap] with flags. It returns the exit code.
func HelperMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("internal extract", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	root := fs.String("root", "", "the root to extract into")
	usrmerge := fs.Bool("usrmerge", false, "make the merged-/usr links first")
	var only multiFlag
	fs.Var(&only, "only", "extract only entries under this path prefix (repeatable)")
	if err := fs.Parse(args); err != nil || *root == "" {
		fmt.Fprintln(stderr, "usage: rootfsc internal extract --root DIR [--usrmerge] [--only PREFIX]... DEB...")
		return 2
	}
	if err := Bootstrap(ctx, *root, fs.Args(), BootstrapOpts{UsrMerge: *usrmerge, Only: only}); err != nil {
		fmt.Fprintf(stderr, "rootfsc internal extract: %v\n", err)
		return 1
	}
	return 0
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
