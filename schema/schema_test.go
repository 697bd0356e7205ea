package schema

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"cuelang.org/go/cue"
)

func TestCompiled(t *testing.T) {
	for _, def := range []string{"#Manifest", "#Agent", "#Tarball", "#Binary", "#Modules", "#Policy", "#File", "#Output", "#Distro", "#Release"} {
		if v := Lookup(def); !v.Exists() {
			t.Errorf("Lookup(%q) = %v, want a definition", def, v)
		}
	}
	// An empty manifest is valid: an overlay with the default dir output.
	v := Lookup("#Manifest").Unify(Compiled().Context().CompileString("{}"))
	if err := v.Validate(cue.Concrete(true)); err != nil {
		t.Fatalf("empty manifest: %v", err)
	}
	var m Manifest
	if err := v.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Arch != "amd64" || len(m.Outputs) != 1 || m.Outputs[0].Type != "dir" || m.Outputs[0].Dest != "rootfs" {
		t.Errorf("defaults not applied: %+v", m)
	}
}

// TestGenerated checks that cue_types_gen.go is what gengotypes makes of
// schema.cue today; run `go generate ./schema` after editing the schema.
func TestGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go tool cue")
	}
	out, err := exec.Command("go", "tool", "cue", "exp", "gengotypes", "-o", "-", ".").Output()
	if err != nil {
		t.Skipf("gengotypes: %v", err)
	}
	have, err := os.ReadFile("cue_types_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, have) {
		t.Error("cue_types_gen.go is stale; run go generate ./schema")
	}
}
