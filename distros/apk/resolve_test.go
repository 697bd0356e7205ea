package apk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros/apk/apktest"
	"github.com/rootfsc/rootfsc/distros/apk/unpack"
	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// fixture is a signed two-repository mirror served on 127.0.0.1; files may be changed before
// a request.
type fixture struct {
	key   *apktest.Key
	files map[string][]byte
	pkgs  map[string]*apktest.Built
	old   *apktest.Built // busybox 1.36.1-r20
	url   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{key: testKey(t, "test@rootfsc-1.rsa.pub"), pkgs: map[string]*apktest.Built{}}
	mk := func(p apktest.Package) *apktest.Built {
		b, err := apktest.Build(p, f.key)
		if err != nil {
			t.Fatal(err)
		}
		f.pkgs[p.Name] = b
		return b
	}
	main := []*apktest.Built{
		mk(apktest.Package{Name: "musl", Version: "1.2.5-r0", BuildDate: 1700000100, Provides: []string{"so:libc.musl-x86_64.so.1=1"},
			Files: []apktest.File{{Path: "lib", Dir: true}, {Path: "lib/ld-musl-x86_64.so.1", Mode: 0o755, Data: []byte("musl")}}}),
		mk(apktest.Package{Name: "busybox", Version: "1.36.1-r29", BuildDate: 1700000200, Depends: []string{"so:libc.musl-x86_64.so.1"},
			Provides: []string{"cmd:busybox=1.36.1-r29"}, Files: []apktest.File{{Path: "bin", Dir: true}, {Path: "bin/busybox", Mode: 0o755, Data: []byte("busybox")}}}),
		mk(apktest.Package{Name: "alpine-base", Version: "3.20.3-r0", BuildDate: 1700000300, Depends: []string{"busybox"}}),
	}
	// An older busybox beside the newest, for pins (f.pkgs names the newest).
	old, err := apktest.Build(apktest.Package{Name: "busybox", Version: "1.36.1-r20", BuildDate: 1700000000, Depends: []string{"so:libc.musl-x86_64.so.1"},
		Files: []apktest.File{{Path: "bin", Dir: true}, {Path: "bin/busybox", Mode: 0o755, Data: []byte("old busybox")}}}, f.key)
	if err != nil {
		t.Fatal(err)
	}
	main = append(main, old)
	f.old = old
	community := []*apktest.Built{
		mk(apktest.Package{Name: "hello", Version: "2.0-r1", BuildDate: 1700000400, Depends: []string{"cmd:busybox"}}),
	}
	files, err := apktest.Mirror("v3.20", "x86_64", map[string][]*apktest.Built{"main": main, "community": community}, f.key)
	if err != nil {
		t.Fatal(err)
	}
	f.files = files
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := f.files[strings.TrimPrefix(r.URL.Path, "/alpine/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/alpine"
	return f
}

func (f *fixture) request() Request {
	return Request{
		Distro: "alpine", Release: "3.20", Arch: "x86_64", Branch: "v3.20", Repos: []string{"main", "community"},
		Mirror: f.url, Keys: map[string]string{f.key.Name: f.key.PublicPEM()}, Packages: []string{"alpine-base", "hello"},
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	lk, err := Resolve(context.Background(), f.request(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(name, repo string) lock.Package {
		b := f.pkgs[name]
		return lock.Package{Name: name, Version: b.Version, Architecture: "x86_64", Filename: "v3.20/" + repo + "/x86_64/" + b.FileName(),
			Size: int64(len(b.APK)), SHA256: b.SHA256(), Suite: repo, Checksum: b.Checksum}
	}
	want := &lock.Lock{
		Version: lock.CurrentVersion, InputDigest: InputDigest(f.request()), Distro: "alpine", Release: "3.20", Arch: "x86_64",
		SourceDateEpoch: 1700000400,
		Suites: []lock.Suite{
			{Name: "community", Archive: "v3.20", Date: "2023-11-14T22:20:00Z", ReleaseSHA256: sha(f.files["v3.20/community/x86_64/APKINDEX.tar.gz"])},
			{Name: "main", Archive: "v3.20", Date: "2023-11-14T22:18:20Z", ReleaseSHA256: sha(f.files["v3.20/main/x86_64/APKINDEX.tar.gz"])},
		},
		Packages: []lock.Package{entry("alpine-base", "main"), entry("busybox", "main"), entry("hello", "community"), entry("musl", "main")},
	}
	if diff := cmp.Diff(want, lk); diff != "" {
		t.Errorf("Resolve() mismatch (-want +got):\n%s", diff)
	}
}

func TestResolveRefuses(t *testing.T) {
	var tampered string // the tampered package's control checksum
	for _, tc := range []struct {
		name   string
		change func(f *fixture)
		want   string
		cause  error
	}{
		{"bad index signature", func(f *fixture) {
			other := testKey(t, f.key.Name)
			idx, err := apktest.Index([]*apktest.Built{f.pkgs["hello"]}, "v3.20 community", other)
			if err != nil {
				t.Fatal(err)
			}
			f.files["v3.20/community/x86_64/APKINDEX.tar.gz"] = idx
		}, "/alpine/v3.20/community/x86_64/APKINDEX.tar.gz: bad signature by key test@rootfsc-1.rsa.pub", ErrBadSignature},
		{"tampered apk", func(f *fixture) {
			// Another build of busybox: its own signature is good, but it is not the package the
			// signed index names.
			b, err := apktest.Build(apktest.Package{Name: "busybox", Version: "1.36.1-r29", BuildDate: 1, Depends: []string{"so:libc.musl-x86_64.so.1"}}, f.key)
			if err != nil {
				t.Fatal(err)
			}
			tampered = b.Checksum
			b.APK = append(b.APK, make([]byte, len(f.pkgs["busybox"].APK)-len(b.APK))...)
			f.files["v3.20/main/x86_64/busybox-1.36.1-r29.apk"] = b.APK
		}, "package busybox 1.36.1-r29: ", unpack.ErrChecksum},
		{"no mirror", func(f *fixture) { f.url = "" }, "no mirror for alpine: name one in the manifest (mirror:), with --mirror or with ROOTFSC_MIRROR", nil},
		{"missing index", func(f *fixture) { delete(f.files, "v3.20/main/x86_64/APKINDEX.tar.gz") }, "/alpine/v3.20/main/x86_64/APKINDEX.tar.gz: 404 Not Found", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.change(f)
			_, err := Resolve(context.Background(), f.request(), Opts{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve() error = %v, want %q", err, tc.want)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Fatalf("Resolve() error = %v, want %v", err, tc.cause)
			}
			if tc.name == "tampered apk" {
				want := "/alpine/v3.20/main/x86_64/busybox-1.36.1-r29.apk: control member " + tampered + " does not match the signed index's " + f.pkgs["busybox"].Checksum
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("Resolve() error = %v, want %q", err, want)
				}
			}
		})
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestResolveDowngrade(t *testing.T) {
	f := newFixture(t)
	lk, err := Resolve(context.Background(), f.request(), Opts{})
	if err != nil {
		t.Fatal(err)
	}
	// The lock was made from a community index with a package from a day later than the
	// mirror's now.
	prev := *lk
	prev.Suites = append([]lock.Suite(nil), lk.Suites...)
	prev.Suites[0].Date = "2023-11-15T22:20:00Z"
	_, err = Resolve(context.Background(), f.request(), Opts{Previous: &prev})
	want := f.url + "/v3.20/community/x86_64/APKINDEX.tar.gz: index is older than the lock's: its newest package is from 2023-11-14T22:20:00Z, the lock's index had one from 2023-11-15T22:20:00Z (rootfsc lock --allow-downgrade accepts it)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrDowngrade) {
		t.Fatalf("Resolve() error = %v, want %q", err, want)
	}
	if _, err := Resolve(context.Background(), f.request(), Opts{Previous: &prev, AllowDowngrade: true}); err != nil {
		t.Errorf("Resolve() with AllowDowngrade: %v", err)
	}
	if _, err := Resolve(context.Background(), f.request(), Opts{Previous: lk}); err != nil {
		t.Errorf("Resolve() against its own lock: %v", err)
	}
}

// TestResolvePackages: a requested package that the indexes do not have, or a pin they cannot
// meet, is a [family.PackageError] carrying the package as requested (for its place in the
// manifest), with the closest name or the versions the index has; a pin picks its version.
func TestResolvePackages(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name     string
		packages []string
		want     error
		busybox  string // the locked version when want is nil
	}{
		{"newest", []string{"alpine-base"}, nil, "1.36.1-r29"},
		{"pin picks an older version", []string{"alpine-base", "busybox=1.36.1-r20"}, nil, "1.36.1-r20"},
		{"pin of the newest", []string{"busybox=1.36.1-r29", "alpine-base"}, nil, "1.36.1-r29"},
		{"impossible pin", []string{"alpine-base", "busybox=1.0-r0"},
			&family.PackageError{Package: "busybox=1.0-r0", Msg: `busybox=1.0-r0: package "busybox" has no version "1.0-r0" in 3.20 (the index has 1.36.1-r20, 1.36.1-r29)`}, ""},
		{"impossible constraint", []string{"busybox<1.0"},
			&family.PackageError{Package: "busybox<1.0", Msg: `busybox<1.0: nothing in 3.20 satisfies "busybox<1.0" (the index has busybox 1.36.1-r20, 1.36.1-r29)`}, ""},
		{"impossible provided version", []string{"cmd:busybox=2.0"},
			&family.PackageError{Package: "cmd:busybox=2.0", Msg: `cmd:busybox=2.0: nothing in 3.20 satisfies "cmd:busybox=2.0" (the index has cmd:busybox 1.36.1-r29)`}, ""},
		{"pinned twice", []string{"busybox=1.36.1-r20", "busybox=1.36.1-r29"},
			&family.PackageError{Package: "busybox=1.36.1-r29", Msg: `busybox=1.36.1-r29: busybox-1.36.1-r20 is chosen by another request`}, ""},
		{"misspelt", []string{"alpine-base", "bussybox"},
			&family.PackageError{Package: "bussybox", Msg: `unknown package "bussybox" in 3.20 (did you mean "busybox"?)`}, ""},
		{"misspelt pin", []string{"bussybox=1.36.1-r29"},
			&family.PackageError{Package: "bussybox=1.36.1-r29", Msg: `unknown package "bussybox" in 3.20 (did you mean "busybox"?)`}, ""},
		{"nothing close", []string{"kubernetes"},
			&family.PackageError{Package: "kubernetes", Msg: `unknown package "kubernetes" in 3.20`}, ""},
		{"malformed", []string{"busybox="},
			&family.PackageError{Package: "busybox=", Msg: `dependency "busybox=": no version after "="`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request()
			req.Packages = tc.packages
			lk, err := Resolve(context.Background(), req, Opts{})
			if tc.want != nil {
				var pe *family.PackageError
				if !errors.As(err, &pe) {
					t.Fatalf("Resolve() error = %v, want a *family.PackageError", err)
				}
				if diff := cmp.Diff(tc.want, pe); diff != "" {
					t.Errorf("Resolve() error mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(lk.Packages, func(p lock.Package) bool { return p.Name == "busybox" })
			if i < 0 || lk.Packages[i].Version != tc.busybox {
				t.Fatalf("locked busybox: %+v, want %s", lk.Packages, tc.busybox)
			}
			if tc.busybox == f.old.Version && (lk.Packages[i].SHA256 != f.old.SHA256() || lk.Packages[i].Checksum != f.old.Checksum) {
				t.Errorf("locked busybox %s with sha256 %s and checksum %s, want the older package's %s and %s",
					tc.busybox, lk.Packages[i].SHA256, lk.Packages[i].Checksum, f.old.SHA256(), f.old.Checksum)
			}
		})
	}
}
