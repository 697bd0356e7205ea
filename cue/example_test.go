package cue_test

import (
	"context"
	"fmt"
	"os"

	"github.com/rootfsc/rootfsc/cue"
)

func ExampleLoad() {
	r, err := cue.LoadFile(context.Background(), "testdata/valid.cue", cue.Opts{})
	if err != nil {
		wd, _ := os.Getwd()
		fmt.Print(cue.FormatError(err, wd))
		return
	}
	fmt.Println(r.Manifest.Distro, r.Manifest.Release, r.Manifest.Arch, r.Manifest.Packages)
	fmt.Println(r.Release.Suites, r.Release.Archive["bookworm-security"])
	fmt.Println(r.Manifest.Outputs[0].Type, r.Manifest.Outputs[0].Dest)
	// Output:
	// debian bookworm amd64 [iptables curl]
	// [bookworm bookworm-updates bookworm-security] debian-security
	// dir rootfs
}

func ExampleFormatError() {
	_, err := cue.LoadFile(context.Background(), "testdata/typo.cue", cue.Opts{})
	wd, _ := os.Getwd()
	fmt.Print(cue.FormatError(err, wd))
	// Output:
	// testdata/typo.cue:3:1: pakages: field not allowed
}
