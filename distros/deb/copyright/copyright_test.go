package copyright

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLicenses(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{{
		name: "DEP-5",
		text: `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: iproute2
Source: https://example.invalid/iproute2

Files: *
Copyright: 2004 Somebody
License: GPL-2+
 This program is free software; you can redistribute it.

Files: debian/*
Copyright: 2005 Somebody Else
License: GPL-2+

Files: lib/bpf*
License: GPL-2+ or BSD-2-clause

License: BSD-2-clause
 Redistribution and use in source and binary forms...
`,
		want: []string{"GPL-2+", "GPL-2+ or BSD-2-clause"},
	}, {
		name: "header license",
		text: "Format: http://dep.debian.net/deps/dep5\nLicense: Expat\n\nFiles: *\nCopyright: x\nLicense: Expat\n",
		want: []string{"Expat"},
	}, {
		name: "prose is not read",
		text: "This is the Debian prepackaged version of bash.\n\nLicense: GPL-3+\n",
		want: nil,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Licenses(strings.NewReader(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Licenses() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
