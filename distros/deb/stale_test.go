package deb

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rootfsc/rootfsc/distros/lock"
)

func TestStaleReason(t *testing.T) {
	l := &lock.Lock{Distro: "debian", Release: "bookworm", Arch: "amd64",
		Suites:   []lock.Suite{{Name: "bookworm"}},
		Packages: []lock.Package{{Name: "bash"}, {Name: "iproute2"}}}
	base := Request{Distro: "debian", Release: "bookworm", Arch: "amd64", Suites: []SuiteSource{{Name: "bookworm"}}}
	with := func(f func(r *Request)) Request { r := base; f(&r); return r }
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"same", with(func(r *Request) { r.Packages = []string{"iproute2"} }), ""},
		{"new package", with(func(r *Request) { r.Packages = []string{"less", "iproute2", "less"} }), "requested but not in the lock: less"},
		{"release", with(func(r *Request) { r.Release = "trixie" }), "the manifest asks for debian trixie/amd64, the lock holds debian bookworm/amd64"},
		{"suite", with(func(r *Request) { r.Suites = append(r.Suites, SuiteSource{Name: "bookworm-security"}) }), "suite bookworm-security is not in the lock"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, StaleReason(tt.req, l)); diff != "" {
			t.Errorf("%s: StaleReason() mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}
