package deb

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rootfsc/rootfsc/distros/lock"
)

func TestStaleReason(t *testing.T) {
	l := &lock.Lock{Distro: "debian", Release: "bookworm", Arch: "amd64",
		Suites:   []lock.Suite{{Name: "bookworm"}},
		Packages: []lock.Package{{Name: "bash"}, {Name: "iproute2", Version: "6.1.0-3"}}}
	base := Request{Distro: "debian", Release: "bookworm", Arch: "amd64", Suites: []SuiteSource{{Name: "bookworm"}}}
	with := func(f func(r *Request)) Request { r := base; f(&r); return r }
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"same", with(func(r *Request) { r.Packages = []string{"iproute2"} }), ""},
		{"new package", with(func(r *Request) { r.Packages = []string{"less", "iproute2", "less"} }), "requested but not in the lock: less"},
		{"same pin", with(func(r *Request) { r.Packages = []string{"iproute2=6.1.0-3"} }), ""},
		{"other pin", with(func(r *Request) { r.Packages = []string{"iproute2=6.1.0-1"} }), "iproute2 is pinned to 6.1.0-1, the lock holds 6.1.0-3"},
		{"new pinned package", with(func(r *Request) { r.Packages = []string{"less=590-2"} }), "requested but not in the lock: less"},
		{"release", with(func(r *Request) { r.Release = "trixie" }), "the manifest asks for debian trixie/amd64, the lock holds debian bookworm/amd64"},
		{"suite", with(func(r *Request) { r.Suites = append(r.Suites, SuiteSource{Name: "bookworm-security"}) }), "suite bookworm-security is not in the lock"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, StaleReason(tt.req, l)); diff != "" {
			t.Errorf("%s: StaleReason() mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestStaleReasonKernel(t *testing.T) {
	kernel := &lock.Kernel{Package: lock.Package{Name: "linux-image-6.1.0-28-amd64"}, Release: "6.1.0-28-amd64", Requested: "linux-image-amd64"}
	direct := &lock.Kernel{Package: lock.Package{Name: "linux-image-6.1.0-28-amd64"}, Release: "6.1.0-28-amd64"}
	tests := []struct {
		name   string
		want   string // requested kernel package
		kernel *lock.Kernel
		reason string
	}{
		{"neither", "", nil, ""},
		{"same meta package", "linux-image-amd64", kernel, ""},
		{"added", "linux-image-amd64", nil, "kernel package linux-image-amd64 requested but not in the lock"},
		{"removed", "", kernel, "the manifest asks for no kernel package, the lock holds linux-image-amd64 (linux-image-6.1.0-28-amd64)"},
		{"changed", "linux-image-cloud-amd64", kernel, "the manifest asks for kernel package linux-image-cloud-amd64, the lock holds linux-image-amd64 (linux-image-6.1.0-28-amd64)"},
		{"lock without the requested name, same", "linux-image-6.1.0-28-amd64", direct, ""},
		{"lock without the requested name, changed", "linux-image-amd64", direct, "the manifest asks for kernel package linux-image-amd64, the lock holds linux-image-6.1.0-28-amd64"},
	}
	for _, tt := range tests {
		l := &lock.Lock{Distro: "debian", Release: "bookworm", Arch: "amd64",
			Suites: []lock.Suite{{Name: "bookworm"}}, Packages: []lock.Package{{Name: "bash"}}, Kernel: tt.kernel}
		req := Request{Distro: "debian", Release: "bookworm", Arch: "amd64", Suites: []SuiteSource{{Name: "bookworm"}},
			Packages: []string{"bash"}, Kernel: tt.want}
		if diff := cmp.Diff(tt.reason, StaleReason(req, l)); diff != "" {
			t.Errorf("%s: StaleReason() mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

// A pin is part of the resolver's inputs: changing it makes the lock stale.
func TestInputDigestPins(t *testing.T) {
	base := Request{Distro: "debian", Release: "bookworm", Arch: "amd64", Suites: []SuiteSource{{Name: "bookworm"}}}
	digests := map[string]string{}
	for _, pkgs := range [][]string{{"iptables"}, {"iptables=1.8.9-2"}, {"iptables=1.8.9-1"}} {
		r := base
		r.Packages = pkgs
		d := InputDigest(r)
		if prev, ok := digests[d]; ok {
			t.Errorf("InputDigest(%v) = InputDigest(%v) = %s", pkgs, prev, d)
		}
		digests[d] = pkgs[0]
	}
}
