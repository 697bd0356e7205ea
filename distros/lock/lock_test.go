package lock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sample() *Lock {
	return &Lock{
		Version: 1, InputDigest: "sha256:abc", Distro: "debian", Release: "bookworm", Arch: "amd64",
		SourceDateEpoch: 1700000000,
		Suites: []Suite{
			{Name: "bookworm-updates", Archive: "debian", Date: "2023-11-14T22:13:20Z", ReleaseSHA256: "22"},
			{Name: "bookworm", Archive: "debian", Date: "2023-10-07T10:00:00Z", ReleaseSHA256: "11"},
		},
		Packages: []Package{
			{Name: "zlib1g", Version: "1:1.2.13", Architecture: "amd64", Filename: "pool/main/z/zlib/zlib1g.deb", Size: 10, SHA256: "aa", Suite: "bookworm", Essential: true},
			{Name: "base-files", Version: "12.4", Architecture: "amd64", Filename: "pool/main/b/base-files/base-files.deb", Size: 20, SHA256: "bb", Suite: "bookworm", Essential: true},
		},
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	p := Path(filepath.Join(dir, "m.cue"))
	if want := filepath.Join(dir, "m.cue.lock.json"); p != want {
		t.Fatalf("Path() = %q, want %q", p, want)
	}
	l := sample()
	if err := l.Write(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasSuffix(s, "}\n") || !strings.Contains(s, "\n  \"version\": 1,") {
		t.Errorf("unexpected encoding:\n%s", s)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.Sort()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read() mismatch (-want +got):\n%s", diff)
	}
	// Writing what was read gives identical bytes.
	if err := got.Write(p); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(p)
	if diff := cmp.Diff(s, string(b2)); diff != "" {
		t.Errorf("rewrite mismatch (-want +got):\n%s", diff)
	}
}

func withKernel() *Lock {
	l := sample()
	l.Kernel = &Kernel{
		Package: Package{Name: "linux-image-6.1.0-28-amd64", Version: "6.1.119-1", Architecture: "amd64",
			Filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb",
			Size:     70000028, SHA256: "cc", Suite: "bookworm"},
		Release:   "6.1.0-28-amd64",
		Requested: "linux-image-amd64",
	}
	return l
}

func TestWriteReadKernel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.cue.lock.json")
	if err := withKernel().Write(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The package fields sit next to the release, not under a nested object.
	const wantJSON = `  "kernel": {
    "name": "linux-image-6.1.0-28-amd64",
    "version": "6.1.119-1",
    "architecture": "amd64",
    "filename": "pool/main/l/linux-signed-amd64/linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb",
    "size": 70000028,
    "sha256": "cc",
    "suite": "bookworm",
    "essential": false,
    "release": "6.1.0-28-amd64",
    "requested": "linux-image-amd64"
  }
}
`
	if !strings.HasSuffix(string(b), wantJSON) {
		t.Errorf("kernel encoding: got\n%s\nwant it to end in\n%s", b, wantJSON)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	want := withKernel()
	want.Sort()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read() mismatch (-want +got):\n%s", diff)
	}
	if err := got.Verify("sha256:abc"); err != nil {
		t.Errorf("Verify() = %v", err)
	}
}

// A lock without a kernel package is written and read exactly as before kernels existed.
func TestWriteReadNoKernel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.cue.lock.json")
	if err := sample().Write(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if strings.Contains(string(b), "kernel") {
		t.Errorf("lock without a kernel mentions one:\n%s", b)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kernel != nil {
		t.Errorf("Read() Kernel = %+v, want nil", got.Kernel)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string
	}{
		{"version", `{"version": 2}`, "unsupported version 2"},
		{"unknown field", `{"version": 1, "bogus": true}`, "unknown field"},
		{"garbage", `nope`, "invalid character"},
		{"trailing data", `{"version": 1}{"version": 1, "packages": []}`, "read lock %s: data after the lock's JSON object"},
		{"trailing garbage", `{"version": 1} nope`, "read lock %s: data after the lock's JSON object"},
		{"too large", `{"version": 1, "distro": "` + strings.Repeat("x", maxSize) + `"}`, "read lock %s: larger than 16777216 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".json")
			os.WriteFile(p, []byte(tt.content), 0o644)
			_, err := Read(p)
			if want := strings.ReplaceAll(tt.want, "%s", p); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Read() error = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Lock)
		digest string
		stale  bool
	}{
		{"fresh", func(*Lock) {}, "sha256:abc", false},
		{"digest", func(*Lock) {}, "sha256:def", true},
		{"version", func(l *Lock) { l.Version = 0 }, "sha256:abc", true},
		{"empty", func(l *Lock) { l.Packages = nil }, "sha256:abc", true},
		{"kernel", func(l *Lock) { l.Kernel = withKernel().Kernel }, "sha256:abc", false},
		{"kernel without release", func(l *Lock) { l.Kernel = withKernel().Kernel; l.Kernel.Release = "" }, "sha256:abc", true},
		{"kernel without sha256", func(l *Lock) { l.Kernel = withKernel().Kernel; l.Kernel.SHA256 = "" }, "sha256:abc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := sample()
			tt.mutate(l)
			err := l.Verify(tt.digest)
			if got := errors.Is(err, ErrStale); got != tt.stale {
				t.Errorf("Verify() = %v, stale want %v", err, tt.stale)
			}
		})
	}
}
