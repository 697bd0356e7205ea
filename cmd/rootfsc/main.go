// Command rootfsc builds Kata Containers guest root filesystems from a CUE manifest through BuildKit.
package main

import (
	"os"

	"github.com/rootfsc/rootfsc/cli"
)

func main() { os.Exit(cli.Main()) }
