package llb

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/internal/llbdump"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The mirror uses the reserved .invalid TLD: never a real host.
const testMirror = "http://mirror.invalid/debian"

func fakeSHA(c byte) string { return strings.Repeat(string(c), 64) }

func testLock() *lock.Lock {
	return &lock.Lock{
		Version: 1, InputDigest: "sha256:" + fakeSHA('0'), Distro: "debian", Release: "bookworm", Arch: "amd64",
		SourceDateEpoch: 1700000000,
		Suites: []lock.Suite{
			{Name: "bookworm", Archive: "debian", Date: "2023-10-07T10:00:00Z", ReleaseSHA256: fakeSHA('1')},
			{Name: "bookworm-security", Archive: "debian-security", Date: "2023-11-14T22:13:20Z", ReleaseSHA256: fakeSHA('2')},
		},
		Packages: []lock.Package{
			{Name: "base-files", Version: "12.4+deb12u2", Architecture: "amd64", Filename: "pool/main/b/base-files/base-files_12.4+deb12u2_amd64.deb", Size: 70000, SHA256: fakeSHA('a'), Suite: "bookworm", Essential: true},
			{Name: "chrony", Version: "4.3-2+deb12u1", Architecture: "amd64", Filename: "pool/main/c/chrony/chrony_4.3-2+deb12u1_amd64.deb", Size: 290000, SHA256: fakeSHA('b'), Suite: "bookworm"},
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Filename: "pool/updates/main/o/openssl/libssl3_3.0.11-1~deb12u2_amd64.deb", Size: 2000000, SHA256: fakeSHA('c'), Suite: "bookworm-security"},
			{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Filename: "pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb", Size: 90000, SHA256: fakeSHA('d'), Suite: "bookworm", Essential: true},
		},
	}
}

func testInput() Input {
	return Input{
		Lock: testLock(),
		Mirrors: map[string]string{
			"bookworm":          testMirror,
			"bookworm-security": "http://mirror.invalid/debian-security/",
		},
	}
}

func TestLowerGolden(t *testing.T) {
	res, err := Lower(context.Background(), testInput(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	got := dump(t, res.Def)

	// Lowering twice gives the same bytes.
	res2, err := Lower(context.Background(), testInput(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Def.Def, res2.Def.Def); diff != "" {
		t.Errorf("Lower() not deterministic (-first +second):\n%s", diff)
	}

	golden := filepath.Join("testdata", "debian.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./llb -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Lower() mismatch (-want +got):\n%s", diff)
	}
}

func TestLowerErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Input)
		want   string
	}{
		{"missing mirror", func(in *Input) { delete(in.Mirrors, "bookworm-security") }, `package libssl3: no mirror for suite "bookworm-security"`},
		{"no lock", func(in *Input) { in.Lock = nil }, "no lock"},
		{"no packages", func(in *Input) { in.Lock.Packages = nil }, "lock has no packages"},
		{"no essential", func(in *Input) {
			for i := range in.Lock.Packages {
				in.Lock.Packages[i].Essential = false
			}
		}, "lock has no essential packages"},
		{"bad sha256", func(in *Input) { in.Lock.Packages[0].SHA256 = "abc" }, `package base-files: bad sha256 "abc"`},
		{"unsafe version", func(in *Input) { in.Lock.Packages[0].Version = "1;rm -rf /" }, `package "base-files": bad name, version "1;rm -rf /"`},
		{"absolute filename", func(in *Input) { in.Lock.Packages[0].Filename = "/etc/passwd" }, "package base-files: bad filename"},
		{"duplicate", func(in *Input) { in.Lock.Packages[1] = in.Lock.Packages[0] }, "package base-files: listed twice"},
		{"underscore", func(in *Input) { in.Lock.Packages[1].Name = "base-files_12.4" }, `package "base-files_12.4": bad name`},
		{"no arch", func(in *Input) { in.Lock.Packages[1].Architecture = "" }, `package "chrony": bad name, version "4.3-2+deb12u1" or architecture ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.modify(&in)
			_, err := Lower(context.Background(), in, Opts{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Lower() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLowerExecsHaveNoNetwork(t *testing.T) {
	res, err := Lower(context.Background(), testInput(), Opts{HelperLocal: "h"})
	if err != nil {
		t.Fatal(err)
	}
	execs := 0
	for _, dt := range res.Def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil {
			execs++
			if e.Network != pb.NetMode_NONE {
				t.Errorf("exec %q: network %v, want NONE", e.Meta.Args, e.Network)
			}
		}
	}
	if execs != 2 {
		t.Errorf("got %d exec ops, want 2", execs)
	}
}

func TestLowerPlatform(t *testing.T) {
	tests := []struct {
		arch string
		opt  ocispecs.Platform
		want string
	}{
		{"amd64", ocispecs.Platform{}, "linux/amd64"},
		{"arm64", ocispecs.Platform{}, "linux/arm64"},
		{"armhf", ocispecs.Platform{}, "linux/arm/v7"},
		{"arm64", ocispecs.Platform{OS: "linux", Architecture: "riscv64"}, "linux/riscv64"},
		{"amd64", ocispecs.Platform{Architecture: "arm64"}, "linux/arm64"},
	}
	for _, tt := range tests {
		in := testInput()
		in.Lock.Arch = tt.arch
		res, err := Lower(context.Background(), in, Opts{Platform: tt.opt})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, dt := range res.Def.Def {
			var op pb.Op
			if err := op.UnmarshalVT(dt); err != nil {
				t.Fatal(err)
			}
			if op.GetExec() != nil {
				got = append(got, platformString(op.Platform))
			}
		}
		if diff := cmp.Diff([]string{tt.want, tt.want}, got); diff != "" {
			t.Errorf("arch %s, opt %v: exec platforms mismatch (-want +got):\n%s", tt.arch, tt.opt, diff)
		}
	}
}

// dump renders a definition as stable text: ops numbered in a depth-first,
// inputs-in-order walk from the terminal op, so the numbers do not depend on
// digests or map order.
func dump(t *testing.T, def *bkllb.Definition) string {
	t.Helper()
	s, err := llbdump.Dump(def)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
