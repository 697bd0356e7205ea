package deb

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/internal/llbdump"
	"github.com/rootfsc/rootfsc/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func sha(c byte) string { return strings.Repeat(string(c), 64) }

func lowerLock() *lock.Lock {
	return &lock.Lock{
		Version: 1, Distro: "debian", Release: "bookworm", Arch: "amd64", SourceDateEpoch: 1700000000,
		Packages: []lock.Package{
			{Name: "base-files", Version: "12.4+deb12u2", Architecture: "amd64", Filename: "pool/main/b/base-files/base-files_12.4+deb12u2_amd64.deb", SHA256: sha('a'), Suite: "bookworm", Essential: true},
			{Name: "chrony", Version: "4.3-2+deb12u1", Architecture: "amd64", Filename: "pool/main/c/chrony/chrony_4.3-2+deb12u1_amd64.deb", SHA256: sha('b'), Suite: "bookworm"},
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Filename: "pool/updates/main/o/openssl/libssl3_3.0.11-1~deb12u2_amd64.deb", SHA256: sha('c'), Suite: "bookworm-security"},
			{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Filename: "pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb", SHA256: sha('d'), Suite: "bookworm", Essential: true},
		},
	}
}

// The mirror uses the reserved .invalid TLD: never a real host.
func lowerRequest() family.Request {
	return family.Request{Distro: "debian", Release: "bookworm", Arch: "amd64", Mirror: "http://mirror.invalid/debian",
		Def: &schema.Release{Suites: []string{"bookworm", "bookworm-security"}, Components: []string{"main"},
			Archive: map[string]string{"bookworm": "debian", "bookworm-security": "debian-security"}}}
}

func lowerBase(t *testing.T, req family.Request, lk *lock.Lock) (*bkllb.Definition, error) {
	t.Helper()
	b, err := Family{}.Lower(req, lk, family.LowerOpts{Helper: bkllb.Local("rootfsc-helper", bkllb.LocalUniqueID("h"))})
	if err != nil {
		return nil, err
	}
	return b.State.Marshal(t.Context(), bkllb.LinuxAmd64)
}

func TestLowerGolden(t *testing.T) {
	def, err := lowerBase(t, lowerRequest(), lowerLock())
	if err != nil {
		t.Fatal(err)
	}
	again, err := lowerBase(t, lowerRequest(), lowerLock())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(def.Def, again.Def); diff != "" {
		t.Errorf("Lower() not deterministic (-first +second):\n%s", diff)
	}
	got, err := llbdump.Dump(def)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "base.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./distros/deb -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Lower() mismatch (-want +got):\n%s", diff)
	}
	// Every exec is hermetic.
	execs := 0
	for _, dt := range def.Def {
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
	if execs != 3 {
		t.Errorf("got %d exec ops, want 3 (extract, dpkg, drop ACLs)", execs)
	}
}

func TestLowerErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*family.Request, *lock.Lock)
		want   string
	}{
		{"bad mirror", func(r *family.Request, _ *lock.Lock) { r.Mirror = "ftp://x" }, `mirror "ftp://x": not an http(s) URL`},
		{"suite not in the release", func(_ *family.Request, l *lock.Lock) { l.Packages[2].Suite = "trixie" }, `package libssl3: no mirror for suite "trixie"`},
		{"no packages", func(_ *family.Request, l *lock.Lock) { l.Packages = nil }, "lock has no packages"},
		{"no essential", func(_ *family.Request, l *lock.Lock) {
			for i := range l.Packages {
				l.Packages[i].Essential = false
			}
		}, "lock has no essential packages"},
		{"bad sha256", func(_ *family.Request, l *lock.Lock) { l.Packages[0].SHA256 = "abc" }, `package base-files: bad sha256 "abc"`},
		{"unsafe version", func(_ *family.Request, l *lock.Lock) { l.Packages[0].Version = "1;rm -rf /" }, `package "base-files": bad name, version "1;rm -rf /"`},
		{"absolute filename", func(_ *family.Request, l *lock.Lock) { l.Packages[0].Filename = "/etc/passwd" }, "package base-files: bad filename"},
		{"duplicate", func(_ *family.Request, l *lock.Lock) { l.Packages[1] = l.Packages[0] }, "package base-files: listed twice"},
		{"underscore", func(_ *family.Request, l *lock.Lock) { l.Packages[1].Name = "base-files_12.4" }, `package "base-files_12.4": bad name`},
		{"no arch", func(_ *family.Request, l *lock.Lock) { l.Packages[1].Architecture = "" }, `package "chrony": bad name, version "4.3-2+deb12u1" or architecture ""`},
		{"kernel requested, none locked", func(r *family.Request, _ *lock.Lock) { r.Kernel = "linux-image-amd64" }, "the lock pins no kernel package"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, lk := lowerRequest(), lowerLock()
			tt.modify(&req, lk)
			_, err := lowerBase(t, req, lk)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Lower() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPlatform(t *testing.T) {
	for arch, want := range map[string]string{"amd64": "amd64", "arm64": "arm64", "armhf": "arm/v7", "ppc64el": "ppc64le", "i386": "386"} {
		p := Family{}.Platform(arch)
		got := p.Architecture
		if p.Variant != "" {
			got += "/" + p.Variant
		}
		if p.OS != "linux" || got != want {
			t.Errorf("Platform(%s) = %s/%s, want linux/%s", arch, p.OS, got, want)
		}
	}
}
