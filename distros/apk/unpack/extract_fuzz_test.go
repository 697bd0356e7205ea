package unpack

// FuzzExtract feeds the .apk extractor (gzip members, then tar) arbitrary packages. Whatever the
// bytes, it must not panic, must stay within its bounds (small here, so a decompression bomb is
// refused quickly), and must leave a directory next to the root as it was. Run it longer with
//
//	go test -run '^$' -fuzz FuzzExtract -parallel 1 ./distros/apk/unpack

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsc/rootfsc/distros/apk/apktest"
)

func FuzzExtract(f *testing.F) {
	// Unsigned seeds: the extractor does not check signatures (the lock's checksum vouches for a
	// package), and RSA key generation under the fuzzer's coverage instrumentation can take
	// minutes.
	for _, p := range []apktest.Package{
		{Name: "a", Version: "1-r0", Files: []apktest.File{{Path: "usr", Dir: true}, {Path: "usr/bin/a", Mode: 0o4755, Data: []byte("#!/bin/sh\n")}, {Path: "bin/a", Hardlink: "usr/bin/a"}, {Path: "etc/l", Link: "/etc/alternatives/l"}}},
		{Name: "h", Version: "1-r0", Files: []apktest.File{{Path: "a", Link: "/tmp"}, {Path: "a/x", Data: []byte("x")}, {Path: "s", Link: "../../x"}, {Path: "../up", Data: []byte("x")}}},
	} {
		b, err := apktest.Build(p, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b.APK)
	}
	f.Fuzz(func(t *testing.T, apk []byte) {
		host := t.TempDir()
		root := filepath.Join(host, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(host, "x"), []byte("outside"), 0o644); err != nil {
			t.Fatal(err)
		}
		extract(context.Background(), bytes.NewReader(apk), root, "", 1000, 4<<20)
		var outside []string
		filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
			if p == root {
				return filepath.SkipDir
			}
			outside = append(outside, p)
			return nil
		})
		if len(outside) != 2 {
			t.Fatalf("extract() wrote next to the root: %q", outside)
		}
		if b, _ := os.ReadFile(filepath.Join(host, "x")); string(b) != "outside" {
			t.Fatal("extract() changed a file next to the root")
		}
	})
}
