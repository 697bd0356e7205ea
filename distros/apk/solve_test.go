package apk

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pk is an index entry for the solver tables: "name-version" with fields.
func pk(name, version string, f ...func(*Pkg)) *Pkg {
	p := &Pkg{Name: name, Version: version, Repo: "main"}
	for _, fn := range f {
		fn(p)
	}
	return p
}

func deps(d ...string) func(*Pkg)      { return func(p *Pkg) { p.Depends = d } }
func provides(d ...string) func(*Pkg)  { return func(p *Pkg) { p.Provides = d } }
func installIf(d ...string) func(*Pkg) { return func(p *Pkg) { p.InstallIf = d } }
func priority(n int) func(*Pkg)        { return func(p *Pkg) { p.ProviderPriority = n } }

func TestSolve(t *testing.T) {
	index := []*Pkg{
		pk("musl", "1.2.5-r0", provides("so:libc.musl-x86_64.so.1=1")),
		pk("busybox", "1.36.1-r29", deps("so:libc.musl-x86_64.so.1"), provides("cmd:busybox=1.36.1-r29", "cmd:sh=1.36.1-r29")),
		pk("busybox", "1.36.1-r5", deps("so:libc.musl-x86_64.so.1")),
		pk("bash", "5.2.26-r0", deps("/bin/sh", "so:libc.musl-x86_64.so.1", "so:libreadline.so.8"), provides("cmd:bash=5.2.26-r0")),
		pk("busybox-binsh", "1.36.1-r29", deps("busybox=1.36.1-r29"), provides("/bin/sh", "cmd:sh=1.36.1-r29"), priority(100)),
		pk("dash-binsh", "0.5.12-r3", provides("/bin/sh", "cmd:sh=0.5.12-r3"), priority(60)),
		pk("readline", "8.2.10-r0", deps("so:libc.musl-x86_64.so.1", "so:libncursesw.so.6"), provides("so:libreadline.so.8=8.2")),
		pk("ncurses-libs", "6.4_p20240420-r0", provides("so:libncursesw.so.6=6.4")),
		pk("ncurses-libs-old", "6.3-r0", provides("so:libncursesw.so.6=6.3")),
		pk("iptables", "1.8.10-r3", deps("so:libc.musl-x86_64.so.1", "!iptables-legacy")),
		pk("iptables-legacy", "1.8.10-r3"),
		pk("iptables-openrc", "1.8.10-r3", installIf("iptables=1.8.10-r3", "openrc")),
		pk("openrc", "0.54-r1"),
		pk("pkgconf", "2.2.0-r0", provides("pc:libpkgconf=2.2.0")),
		pk("libfoo-dev", "1.0-r0", deps("pc:libpkgconf>=2")),
		pk("old-dev", "1.0-r0", deps("pc:libpkgconf<2")),
		pk("mta-a", "1-r0", provides("mta")),
		pk("mta-b", "1-r0", provides("mta")),
		pk("pinned", "1.0-r0", deps("busybox<1.36.1-r10")),
	}
	names := func(ps []*Pkg) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name+"-"+p.Version)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		want []string
		got  []string
		err  string
	}{
		{name: "so: provide", want: []string{"busybox"}, got: []string{"busybox-1.36.1-r29", "musl-1.2.5-r0"}},
		{name: "highest provider_priority, then highest provided version", want: []string{"bash"},
			got: []string{"bash-5.2.26-r0", "busybox-1.36.1-r29", "busybox-binsh-1.36.1-r29", "musl-1.2.5-r0", "ncurses-libs-6.4_p20240420-r0", "readline-8.2.10-r0"}},
		{name: "a chosen package meets a later dependency", want: []string{"dash-binsh", "bash"},
			got: []string{"bash-5.2.26-r0", "dash-binsh-0.5.12-r3", "musl-1.2.5-r0", "ncurses-libs-6.4_p20240420-r0", "readline-8.2.10-r0"}},
		{name: "cmd: provide", want: []string{"cmd:busybox"}, got: []string{"busybox-1.36.1-r29", "musl-1.2.5-r0"}},
		{name: "version constraint picks an older package", want: []string{"busybox<1.36.1-r10"}, got: []string{"busybox-1.36.1-r5", "musl-1.2.5-r0"}},
		{name: "a pin comes before an unpinned request of the name", want: []string{"busybox", "busybox=1.36.1-r5"}, got: []string{"busybox-1.36.1-r5", "musl-1.2.5-r0"}},
		{name: "fuzzy", want: []string{"busybox~1.36.1"}, got: []string{"busybox-1.36.1-r29", "musl-1.2.5-r0"}},
		{name: "pc: with a version", want: []string{"libfoo-dev"}, got: []string{"libfoo-dev-1.0-r0", "pkgconf-2.2.0-r0"}},
		{name: "install_if", want: []string{"iptables", "openrc"}, got: []string{"iptables-1.8.10-r3", "iptables-openrc-1.8.10-r3", "musl-1.2.5-r0", "openrc-0.54-r1"}},
		{name: "install_if unmet", want: []string{"iptables"}, got: []string{"iptables-1.8.10-r3", "musl-1.2.5-r0"}},
		{name: "conflict", want: []string{"iptables", "iptables-legacy"}, err: "iptables forbids !iptables-legacy, which iptables-legacy-1.8.10-r3 is: conflict"},
		{name: "unknown", want: []string{"iptable"}, err: `no package provides "iptable"`},
		{name: "unknown dependency", want: []string{"old-dev"}, err: `no package provides "pc:libpkgconf<2" (required by old-dev)`},
		{name: "impossible pin", want: []string{"busybox=1.0-r0"}, err: `no version of "busybox" satisfies "busybox=1.0-r0" (the indexes have 1.36.1-r29, 1.36.1-r5)`},
		{name: "two versions of one name", want: []string{"busybox", "pinned"}, err: "pinned needs busybox<1.36.1-r10, but busybox-1.36.1-r29 is chosen"},
		{name: "ambiguous virtual", want: []string{"mta"}, err: `"mta" is provided by mta-a and mta-b, neither with a higher provider_priority: name one in packages`},
		{name: "ambiguity settled by naming one", want: []string{"mta-b", "mta"}, got: []string{"mta-b-1-r0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := solve(newDB(index), tc.want)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("solve() error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.got, names(got)); diff != "" {
				t.Errorf("solve() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	_, err := solve(newDB(index), []string{"iptable"})
	var ue *UnknownError
	if !errors.As(err, &ue) || ue.Dep != "iptable" {
		t.Errorf("solve() error = %#v, want an *UnknownError for iptable", err)
	}
}
