// Command rootfsc-helper runs inside rootfsc's build steps; see package internal/helper.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rootfsc/rootfsc/internal/helper"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := helper.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
