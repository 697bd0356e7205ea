package apk_test

import (
	"fmt"

	"github.com/rootfsc/rootfsc/distros/apk"
)

func ExampleParseIndex() {
	text := "C:Q1SfN2pR3Mx0yQX4iGOtPb5X1lAvs=\nP:busybox\nV:1.36.1-r29\nA:x86_64\nS:512345\nD:so:libc.musl-x86_64.so.1\np:cmd:busybox=1.36.1-r29 cmd:sh=1.36.1-r29\n\n"
	pkgs, err := apk.ParseIndex([]byte(text), "main")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range pkgs {
		fmt.Println(p.Name, p.Version, p.Repo, p.Depends, p.Provides)
	}
	// Output: busybox 1.36.1-r29 main [so:libc.musl-x86_64.so.1] [cmd:busybox=1.36.1-r29 cmd:sh=1.36.1-r29]
}
