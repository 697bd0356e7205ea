package family

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePackage(t *testing.T) {
	tests := []struct{ in, name, version string }{
		{"iptables", "iptables", ""},
		{"iptables=1.8.9-2", "iptables", "1.8.9-2"},
		{"libc6=2.36-9+deb12u9", "libc6", "2.36-9+deb12u9"},
		{"systemd=1:252", "systemd", "1:252"},
	}
	for _, tt := range tests {
		name, version := ParsePackage(tt.in)
		if diff := cmp.Diff([]string{tt.name, tt.version}, []string{name, version}); diff != "" {
			t.Errorf("ParsePackage(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"iptables", "ip6tables", "iproute2", "less", "lsof", "bash", "dash", "ca"}
	tests := []struct{ in, want string }{
		{"iptable", "iptables"},
		{"iproute", "iproute2"},
		{"lessx", "less"},
		{"cash", "bash"}, // a tie with dash goes to the smaller name
		{"zzzzzzzz", ""},
		{"cb", "ca"},
		{"less", ""}, // itself is no suggestion
	}
	for _, tt := range tests {
		if got := Suggest(tt.in, slices.Values(names)); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
