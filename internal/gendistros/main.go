// Command gendistros writes schema/distros.cue, the built-in distro definitions in the schema's
// package for `cue vet` (see [distros.Published]); `go generate ./schema` runs it.
package main

import (
	"fmt"
	"os"

	"github.com/rootfsc/rootfsc/distros"
)

func main() {
	src, err := distros.Published()
	if err == nil {
		err = os.WriteFile("distros.cue", src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendistros:", err)
		os.Exit(1)
	}
}
