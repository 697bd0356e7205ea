package cli

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"rootfsc": func() { os.Exit(Main()) },
	})
}

// TestScripts runs the CLI's testscript cases in testdata/script. Cases that need the network
// start with `[short] skip`.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			for _, k := range []string{"ROOTFSC_MIRROR", "ROOTFSC_CACHE_DIR", "HOME"} {
				if v := os.Getenv(k); v != "" {
					e.Setenv(k, v)
				}
			}
			return nil
		},
	})
}
