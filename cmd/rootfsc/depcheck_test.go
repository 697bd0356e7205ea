package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection enforces DESIGN.md's package rules: only engine imports BuildKit's client,
// llb imports only client/llb (and pb) from BuildKit, stage packages never import each other, the
// CLI is flags and printing over build (no distros/deb, llb or BuildKit client packages), and only
// the distros registry imports a package family.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/rootfsc/rootfsc/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/rootfsc/rootfsc/"
	stages := map[string]bool{"cue": true, "distros/deb": true, "llb": true, "engine": true, "policies": true, "kata": true, "sbom": true}
	seen := 0
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		self := strings.TrimPrefix(p.ImportPath, mod)
		if self == "cli" || self == "build" {
			seen++
		}
		for _, imp := range p.Imports {
			if imp == "github.com/moby/buildkit/client" && self != "engine" {
				t.Errorf("%s imports BuildKit's client: only engine may", self)
			}
			if self == "llb" && strings.HasPrefix(imp, "github.com/moby/buildkit/") &&
				imp != "github.com/moby/buildkit/client/llb" && imp != "github.com/moby/buildkit/solver/pb" {
				t.Errorf("llb imports %s: only client/llb and solver/pb", imp)
			}
			if other := strings.TrimPrefix(imp, mod); stages[self] && stages[other] && other != self {
				t.Errorf("stage %s imports stage %s: build composes stages", self, other)
			}
			if self == "cli" && (imp == mod+"distros/deb" || imp == mod+"llb" || strings.HasPrefix(imp, "github.com/moby/buildkit/client")) {
				t.Errorf("cli imports %s: the CLI is flags, one call into build, and printing", imp)
			}
			if imp == mod+"distros/deb" && self != "distros" {
				t.Errorf("%s imports distros/deb: families are reached through distros.Family", self)
			}
		}
	}
	if seen != 2 {
		t.Errorf("go list saw %d of the cli and build packages, want 2", seen)
	}
}
