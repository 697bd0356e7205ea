package apk

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/schema"
)

func TestStaleReason(t *testing.T) {
	def := &schema.Release{Suites: []string{"v3.20"}, Components: []string{"main", "community"}, Keys: map[string]string{"k": "pem"}}
	req := family.Request{Distro: "alpine", Release: "3.20", Arch: "amd64", Def: def, Packages: []string{"alpine-base", "iptables>=1.8"}}
	lk := &lock.Lock{Distro: "alpine", Release: "3.20", Arch: "x86_64",
		Suites:   []lock.Suite{{Name: "main", Archive: "v3.20"}, {Name: "community", Archive: "v3.20"}},
		Packages: []lock.Package{{Name: "alpine-base", Version: "3.20.3-r0"}, {Name: "iptables", Version: "1.8.10-r3"}}}
	for _, tc := range []struct {
		name   string
		change func(*family.Request)
		want   string
	}{
		{"same", func(*family.Request) {}, ""},
		{"new package", func(r *family.Request) { r.Packages = append(r.Packages, "bash", "!ssh") }, "requested but not in the lock: bash"},
		{"provided name", func(r *family.Request) { r.Packages = append(r.Packages, "cmd:bash") }, ""},
		{"pin", func(r *family.Request) { r.Packages = append(r.Packages, "alpine-base=3.20.2-r0") }, "alpine-base is pinned to 3.20.2-r0, the lock holds 3.20.3-r0"},
		{"pin held", func(r *family.Request) { r.Packages = append(r.Packages, "iptables=1.8.10-r3") }, ""},
		{"constraint", func(r *family.Request) { r.Packages = []string{"alpine-base", "iptables<1.8.10"} }, "iptables asks for <1.8.10, the lock holds 1.8.10-r3"},
		{"forbidden", func(r *family.Request) { r.Packages = append(r.Packages, "!iptables") }, "iptables is forbidden, the lock holds 1.8.10-r3"},
		{"other release", func(r *family.Request) {
			r.Release = "3.21"
			d := *def
			d.Suites = []string{"v3.21"}
			r.Def = &d
		}, "the manifest asks for alpine 3.21/x86_64, the lock holds alpine 3.20/x86_64; repository v3.21/main is not in the lock; repository v3.21/community is not in the lock"},
		{"arm64", func(r *family.Request) { r.Arch = "arm64" }, "the manifest asks for alpine 3.20/aarch64, the lock holds alpine 3.20/x86_64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req
			r.Packages = append([]string(nil), req.Packages...)
			tc.change(&r)
			if diff := cmp.Diff(tc.want, Family{}.StaleReason(r, lk)); diff != "" {
				t.Errorf("StaleReason() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInputDigest(t *testing.T) {
	base := Request{Distro: "alpine", Release: "3.20", Arch: "x86_64", Branch: "v3.20", Repos: []string{"main"},
		Keys: map[string]string{"k": "pem"}, Packages: []string{"b", "a"}, Mirror: "http://one.invalid"}
	same := base
	same.Packages, same.Mirror = []string{"a", "b", "a"}, "http://other.invalid"
	if InputDigest(base) != InputDigest(same) {
		t.Error("the digest depends on the mirror or the order of the packages")
	}
	for name, change := range map[string]func(*Request){
		"key":     func(r *Request) { r.Keys = map[string]string{"k": "other pem"} },
		"repo":    func(r *Request) { r.Repos = []string{"main", "community"} },
		"package": func(r *Request) { r.Packages = []string{"a", "b=1.0-r0"} },
		"arch":    func(r *Request) { r.Arch = "aarch64" },
	} {
		r := base
		change(&r)
		if InputDigest(r) == InputDigest(base) {
			t.Errorf("changing the %s leaves the digest as it was", name)
		}
	}
}

func TestExplain(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/busybox-1.36.1-r29.apk") {
			w.Write([]byte("other bytes"))
			return
		}
		if strings.HasSuffix(r.URL.Path, "/musl-1.2.5-r0.apk") {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	lk := lowerLock()
	lk.Packages = append(lk.Packages, lock.Package{Name: "musl", Version: "1.2.5-r0", Filename: "v3.20/main/x86_64/musl-1.2.5-r0.apk", SHA256: strings.Repeat("c", 64)})
	req := lowerRequest()
	req.Mirror = srv.URL + "/alpine"
	buildkit := func(sha string) error {
		return errors.New("failed to load cache key: digest mismatch sha256:" + sha + ": sha256:0123")
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"other bytes", buildkit(lk.Packages[0].SHA256), "package busybox 1.36.1-r29 (v3.20/main/x86_64/busybox-1.36.1-r29.apk): the mirror's bytes do not match the lock's sha256 " + lk.Packages[0].SHA256 + ": failed to load cache key"},
		{"no such file", buildkit(lk.Packages[1].SHA256), "package ip6tables 1.8.10-r3: the mirror has no such file: " + srv.URL + "/alpine/v3.20/community/x86_64/ip6tables-1.8.10-r3.apk (404 Not Found): failed to load cache key"},
		{"mirror fault", buildkit(strings.Repeat("c", 64)), "package musl 1.2.5-r0: GET " + srv.URL + "/alpine/v3.20/main/x86_64/musl-1.2.5-r0.apk: 503 Service Unavailable: the mirror failed to serve a file (failed to load cache key"},
		{"another error", errors.New("exit code 1"), "exit code 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Family{}.Explain(context.Background(), req, lk, tc.err)
			if !strings.HasPrefix(got.Error(), tc.want) {
				t.Errorf("Explain() = %q, want %q…", got, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("Explain() does not wrap BuildKit's error")
			}
			if fault := errors.Is(got, family.ErrMirrorFault); fault != (tc.name == "mirror fault") {
				t.Errorf("Explain() is a mirror fault: %v", fault)
			}
		})
	}
}
