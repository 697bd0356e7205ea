package deb

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros/lock"
)

func TestResolveFakeKernel(t *testing.T) {
	uri, keyring := fakeArchive(t, archiveOpts{})
	abi29 := func(requested string) *lock.Kernel {
		return &lock.Kernel{
			Package: lock.Package{
				Name: "linux-image-6.1.0-29-amd64", Version: "6.1.123-1", Architecture: "amd64",
				Filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-29-amd64_6.1.123-1_amd64.deb",
				Size:     70000029, SHA256: strings.Repeat("29", 32), Suite: "stable-updates",
			},
			Release: "6.1.0-29-amd64", Requested: requested,
		}
	}
	tests := []struct {
		name    string
		kernel  string
		want    *lock.Kernel
		wantErr string
	}{
		{name: "meta package from the newer suite", kernel: "linux-image-amd64", want: abi29("linux-image-amd64")},
		{name: "virtual name provided by the meta package", kernel: "linux-image-generic", want: abi29("linux-image-generic")},
		{name: "real package named directly", kernel: "linux-image-6.1.0-28-amd64", want: &lock.Kernel{
			Package: lock.Package{
				Name: "linux-image-6.1.0-28-amd64", Version: "6.1.119-1", Architecture: "amd64",
				Filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb",
				Size:     70000028, SHA256: strings.Repeat("28", 32), Suite: "stable",
			},
			Release: "6.1.0-28-amd64", Requested: "linux-image-6.1.0-28-amd64",
		}},
		{name: "unsigned package ships the signed release", kernel: "linux-image-6.1.0-29-amd64-unsigned", want: &lock.Kernel{
			Package: lock.Package{
				Name: "linux-image-6.1.0-29-amd64-unsigned", Version: "6.1.123-1", Architecture: "amd64",
				Filename: "pool/main/l/linux/linux-image-6.1.0-29-amd64-unsigned_6.1.123-1_amd64.deb",
				Size:     70000129, SHA256: strings.Repeat("39", 32), Suite: "stable-updates",
			},
			Release: "6.1.0-29-amd64", Requested: "linux-image-6.1.0-29-amd64-unsigned",
		}},
		{name: "unknown", kernel: "linux-image-6.1.0-27-amd64", wantErr: `unknown kernel package "linux-image-6.1.0-27-amd64" in stable, stable-updates`},
		{name: "debug symbols", kernel: "linux-image-amd64-dbg",
			wantErr: `kernel package "linux-image-amd64-dbg" leads to linux-image-6.1.0-29-amd64-dbg: linux-image-6.1.0-29-amd64-dbg holds debug symbols, not kernel modules`},
		{name: "no release in the name", kernel: "linux-image-amd64-signed-template",
			wantErr: `kernel package "linux-image-amd64-signed-template": linux-image-amd64-signed-template is not a kernel image package: its name does not end in a kernel release`},
		{name: "not a kernel", kernel: "libfoo", wantErr: `kernel package "libfoo": libfoo is not a kernel image package (linux-image-*)`},
		{name: "meta package pointing nowhere", kernel: "linux-image-broken-amd64",
			wantErr: `kernel package "linux-image-broken-amd64": linux-image-broken-amd64 1 depends on linux-image-6.1.0-99-amd64 (= 1), which no package in the suites satisfies`},
		{name: "meta packages in a loop", kernel: "linux-image-loop-a",
			wantErr: `kernel package "linux-image-loop-a": meta packages depend on each other in a loop at linux-image-loop-a`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := fakeRequest(uri, keyring, "app")
			req.Kernel = tt.kernel
			l, err := Resolve(context.Background(), req, Opts{Now: func() time.Time { return testNow }})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, l.Kernel); diff != "" {
				t.Errorf("Resolve() kernel mismatch (-want +got):\n%s", diff)
			}
			// The kernel is not installed: neither it nor its dependencies (kmod, initramfs-tools,
			// which the fake archive lacks) join the packages.
			want := []string{"app", "base-files", "libc6", "libfoo", "usr-is-merged"}
			if diff := cmp.Diff(want, lockNames(l)); diff != "" {
				t.Errorf("Resolve() packages mismatch (-want +got):\n%s", diff)
			}
			if l.InputDigest != InputDigest(req) {
				t.Errorf("lock InputDigest %s, want %s", l.InputDigest, InputDigest(req))
			}
		})
	}
}

func TestKernelRelease(t *testing.T) {
	tests := []struct {
		name, want, wantErr string
	}{
		{name: "linux-image-6.1.0-28-amd64", want: "6.1.0-28-amd64"},
		{name: "linux-image-6.1.0-28-cloud-amd64", want: "6.1.0-28-cloud-amd64"},
		{name: "linux-image-6.1.0-28-rt-amd64-unsigned", want: "6.1.0-28-rt-amd64"},
		{name: "linux-image-6.12.9+bpo-arm64", want: "6.12.9+bpo-arm64"},
		{name: "linux-image-6.1.0-28-amd64-dbg", wantErr: "holds debug symbols"},
		{name: "linux-image-amd64", wantErr: "does not end in a kernel release"},
		{name: "linux-image-", wantErr: "does not end in a kernel release"},
		{name: "linux-headers-6.1.0-28-amd64", wantErr: "is not a kernel image package (linux-image-*)"},
	}
	for _, tt := range tests {
		got, err := kernelRelease(tt.name)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("kernelRelease(%q) = %q, %v, want error containing %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("kernelRelease(%q) = %q, %v, want %q", tt.name, got, err, tt.want)
		}
	}
}
