// Command rootfsc-helper runs inside rootfsc's build steps (see package internal/helper), and as
// /init of the boot shim `rootfsc boot` puts in front of a disk image (package bootshim).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rootfsc/rootfsc/internal/bootshim"
	"github.com/rootfsc/rootfsc/internal/helper"
)

func main() {
	if bootshim.Active() {
		bootshim.Main()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := helper.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
