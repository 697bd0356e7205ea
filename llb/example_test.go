package llb_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/llb"
)

func ExampleLower() {
	l := &lock.Lock{
		Version: 1, Distro: "debian", Release: "bookworm", Arch: "amd64", SourceDateEpoch: 1700000000,
		Packages: []lock.Package{
			{Name: "base-files", Version: "12.4", Architecture: "amd64", Filename: "pool/main/b/base-files/base-files_12.4_amd64.deb",
				SHA256: strings.Repeat("a", 64), Suite: "bookworm", Essential: true},
		},
	}
	res, err := llb.Lower(context.Background(), llb.Input{
		Lock:    l,
		Mirrors: map[string]string{"bookworm": "http://mirror.invalid/debian"},
	}, llb.Opts{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(res.Def.Def), "ops")
	// Output: 6 ops
}
