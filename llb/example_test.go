package llb_test

import (
	"context"
	"fmt"

	bkllb "github.com/moby/buildkit/client/llb"

	"github.com/rootfsc/rootfsc/llb"
	"github.com/rootfsc/rootfsc/schema"
)

// An overlay (no distro): the agent as init and a built-in policy, merged as two layers.
func ExampleLower() {
	res, err := llb.Lower(context.Background(), llb.Input{
		Manifest: &schema.Manifest{Arch: "amd64",
			Agent:  &schema.Agent{File: "bin/kata-agent", Init: "agent"},
			Policy: &schema.Policy{Builtin: "allow-all", Engine: "agent-builtin"}},
		BuiltinPolicy: []byte("package agent_policy\n"),
	}, llb.Opts{Helper: bkllb.Local("rootfsc-helper")})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Layers)
	// Output: [kata glue policy agent]
}
