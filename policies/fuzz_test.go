package policies

// Fuzzing of the policy checker: Check runs on policies from manifests written by other
// people, so arbitrary text must give a result or a CheckError, never a panic or a hang.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzCheck(f *testing.F) {
	for _, name := range BuiltinNames() {
		b, _ := Builtin(name)
		f.Add(string(b))
	}
	seeds, _ := filepath.Glob("testdata/*.rego")
	broken, _ := filepath.Glob("testdata/broken/*.rego")
	for _, p := range append(seeds, broken...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("")
	f.Add("package agent_policy\n\ndefault CreateContainerRequest := true\n")
	f.Add("package agent_policy\nimport rego.v1\nExecProcessRequest if { input.process.Args[_] == \"sh\" }\n")
	dir := f.TempDir() // one per worker process, whose inputs run one at a time
	f.Fuzz(func(t *testing.T, text string) {
		p := filepath.Join(dir, "p.rego")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := Check(context.Background(), []string{p}, Opts{})
		if d := time.Since(start); d > 10*time.Second && len(text) < 4096 {
			t.Errorf("Check took %s on %d bytes", d, len(text))
		}
		if err != nil {
			var ce *CheckError
			if !errors.As(err, &ce) || len(ce.Errors) == 0 {
				t.Fatalf("Check() error %T %v, want a *CheckError with messages", err, err)
			}
			for _, m := range ce.Errors {
				if !strings.HasPrefix(m, p+":") {
					t.Errorf("message %q does not start with the file's position", m)
				}
			}
		}
		if res == nil {
			t.Fatal("Check() returned no result")
		}
	})
}
