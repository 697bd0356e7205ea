package qemu_test

import (
	"context"
	"fmt"
	"log"
	"os/exec"

	"github.com/rootfsc/rootfsc/internal/qemu"
)

// A VM started with the accelerator the probe chose; TCG is slower but boots where KVM cannot.
func ExampleDetect() {
	accel, err := qemu.Detect(context.Background(), qemu.Opts{CPU: "max"})
	if err != nil {
		log.Fatal(err)
	}
	if !accel.KVM() {
		fmt.Println("KVM unusable, using TCG:", accel.Reason)
	}
	args := append([]string{"-machine", "q35", "-cpu", "max", "-nographic"}, accel.Args()...)
	cmd := exec.Command(qemu.DefaultBinary, append(args, "-kernel", "vmlinuz")...)
	_ = cmd
}
