package apk

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/internal/llbdump"
	"github.com/rootfsc/rootfsc/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func lowerLock() *lock.Lock {
	sha := func(c byte) string { return strings.Repeat(string(c), 64) }
	return &lock.Lock{
		Version: 1, Distro: "alpine", Release: "3.20", Arch: "x86_64", SourceDateEpoch: 1717200000,
		Packages: []lock.Package{
			{Name: "busybox", Version: "1.36.1-r29", Architecture: "x86_64", Filename: "v3.20/main/x86_64/busybox-1.36.1-r29.apk", Size: 500000, SHA256: sha('a'), Suite: "main", Checksum: "Q1aaaaaaaaaaaaaaaaaaaaaaaaaaa="},
			{Name: "ip6tables", Version: "1.8.10-r3", Architecture: "x86_64", Filename: "v3.20/community/x86_64/ip6tables-1.8.10-r3.apk", Size: 1000, SHA256: sha('b'), Suite: "community", Checksum: "Q1bbbbbbbbbbbbbbbbbbbbbbbbbbb="},
		},
	}
}

// The mirror uses the reserved .invalid TLD: never a real host.
func lowerRequest() family.Request {
	return family.Request{Distro: "alpine", Release: "3.20", Arch: "amd64", Mirror: "http://mirror.invalid/alpine/",
		Packages: []string{"busybox", "ip6tables"},
		Def: &schema.Release{Suites: []string{"v3.20"}, Components: []string{"main", "community"},
			Keys: map[string]string{"test.rsa.pub": "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"}}}
}

func TestLowerGolden(t *testing.T) {
	lower := func() *bkllb.Definition {
		b, err := Family{}.Lower(lowerRequest(), lowerLock(), family.LowerOpts{Helper: bkllb.Local("rootfsc-helper", bkllb.LocalUniqueID("h"))})
		if err != nil {
			t.Fatal(err)
		}
		if b.DownloadBytes != 501000 {
			t.Errorf("DownloadBytes = %d, want 501000", b.DownloadBytes)
		}
		def, err := b.State.Marshal(t.Context(), bkllb.LinuxAmd64)
		if err != nil {
			t.Fatal(err)
		}
		return def
	}
	def, again := lower(), lower()
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
		t.Fatalf("%v (run go test ./distros/apk -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Lower() mismatch (-want +got):\n%s", diff)
	}
}

func TestLowerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*lock.Lock, *family.Request)
		want   string
	}{
		{"path in filename", func(l *lock.Lock, _ *family.Request) { l.Packages[0].Filename = "v3.20/../../etc/passwd" },
			`lock: package "busybox": bad version "1.36.1-r29", filename "v3.20/../../etc/passwd"`},
		{"name with a slash", func(l *lock.Lock, _ *family.Request) { l.Packages[0].Name = "../busybox" }, `lock: package "../busybox": bad version`},
		{"no checksum", func(l *lock.Lock, _ *family.Request) { l.Packages[0].Checksum = "" }, `checksum ""`},
		{"twice", func(l *lock.Lock, _ *family.Request) { l.Packages[1] = l.Packages[0] }, "lock: package busybox: listed twice"},
		{"kernel", func(_ *lock.Lock, r *family.Request) { r.Kernel = "linux-lts" }, "alpine: kernel packages are not supported by the apk family yet (give modules: dir)"},
		{"key name", func(_ *lock.Lock, r *family.Request) { r.Def.Keys = map[string]string{"../x": ""} }, `alpine 3.20: bad key name "../x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lk, req := lowerLock(), lowerRequest()
			tc.change(lk, &req)
			_, err := Family{}.Lower(req, lk, family.LowerOpts{Helper: bkllb.Local("rootfsc-helper")})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Lower() error = %v, want %q", err, tc.want)
			}
		})
	}
}
