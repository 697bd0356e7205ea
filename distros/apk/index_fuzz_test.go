package apk

// FuzzIndex feeds the index reader arbitrary APKINDEX.tar.gz files and texts: no panic, and a
// text that parses yields stanzas with a name and a version.

import (
	"testing"

	"github.com/rootfsc/rootfsc/distros/apk/apktest"
)

func FuzzIndex(f *testing.F) {
	key, err := apktest.NewKey("fuzz.rsa.pub")
	if err != nil {
		f.Fatal(err)
	}
	b, err := apktest.Build(apktest.Package{Name: "a", Version: "1-r0", Depends: []string{"so:libc.musl-x86_64.so.1", "!b"}, Provides: []string{"cmd:a=1-r0"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	idx, err := apktest.Index([]*apktest.Built{b}, "fuzz", key)
	if err != nil {
		f.Fatal(err)
	}
	keys, err := ParseKeys(map[string]string{key.Name: key.PublicPEM()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(idx)
	f.Add([]byte(apktest.IndexText([]*apktest.Built{b})))
	f.Fuzz(func(t *testing.T, data []byte) {
		VerifyIndex(data, keys)
		pkgs, err := ParseIndex(data, "main")
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("ParseIndex() = a stanza without name or version: %+v", p)
			}
			for _, d := range p.Depends {
				parseDep(d)
			}
		}
		solve(newDB(pkgs), []string{"a"})
	})
}
