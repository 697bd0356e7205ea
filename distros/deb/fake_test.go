package deb

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/ulikunitz/xz"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

var (
	testNow  = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	keysOnce sync.Once
	goodKey  *openpgp.Entity
	evilKey  *openpgp.Entity
)

func testKeys(t *testing.T) (*openpgp.Entity, *openpgp.Entity) {
	keysOnce.Do(func() {
		cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return testNow.Add(-time.Hour) }}
		var err error
		if goodKey, err = openpgp.NewEntity("fake archive", "", "archive@example.invalid", cfg); err != nil {
			panic(err)
		}
		if evilKey, err = openpgp.NewEntity("evil", "", "evil@example.invalid", cfg); err != nil {
			panic(err)
		}
	})
	return goodKey, evilKey
}

type archiveOpts struct {
	signer     *openpgp.Entity // default: the good key
	validUntil time.Time       // zero: no Valid-Until
	updatesAt  time.Time       // stable-updates' Date (zero: 2026-01-05T08:30:00Z)
	corrupt    bool            // serve a Packages.xz that does not match the Release
	listPlain  bool            // list the uncompressed Packages in the Release too, as Debian does
	hits       map[string]int  // request counts by path, filled in
	mu         *sync.Mutex

	// releaseOf serves, for suite key, the validly signed InRelease of suite value (a replay).
	releaseOf map[string]string
	// byHash says Acquire-By-Hash: yes and also serves each Packages.xz under by-hash/SHA256/<hash>.
	byHash bool
	// syncing serves, under the plain name, a newer Packages.xz than the Release lists, as a mirror
	// does between updating its indexes and its InRelease.
	syncing bool
	// packages replaces testdata's plain Packages index of a suite.
	packages map[string][]byte
	// editXZ, when set, changes each compressed Packages index before it is listed and served.
	editXZ func(t testing.TB, xz []byte) []byte
	// plainSize, when set, is the size the Release lists for the plain Packages (with listPlain).
	plainSize int64
	// gz also lists and serves Packages.gz, as Debian does (corrupt then damages it instead).
	gz bool
	// handle serves a request instead of the archive when it returns true.
	handle func(w http.ResponseWriter, r *http.Request) bool
}

// codenames are the fake suites' Codename fields; the server also serves each suite under its codename.
var codenames = map[string]string{"stable": "bolt", "stable-updates": "bolt-updates"}

func xzCompress(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeArchive serves testdata/archive as a signed two-suite archive and returns its base URI and keyring path.
func fakeArchive(t *testing.T, o archiveOpts) (string, string) {
	t.Helper()
	good, _ := testKeys(t)
	if o.signer == nil {
		o.signer = good
	}
	files := map[string][]byte{}
	dates := map[string]time.Time{
		"stable":         time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC),
		"stable-updates": time.Date(2026, 1, 5, 8, 30, 0, 0, time.UTC),
	}
	if !o.updatesAt.IsZero() {
		dates["stable-updates"] = o.updatesAt
	}
	signed := map[string][]byte{}
	for suite, date := range dates {
		plain, ok := o.packages[suite]
		if !ok {
			var err error
			if plain, err = os.ReadFile(filepath.Join("testdata/archive", suite, "Packages")); err != nil {
				t.Fatal(err)
			}
		}
		xzb := xzCompress(t, plain)
		if o.editXZ != nil {
			xzb = o.editXZ(t, xzb)
		}
		sum := sha256.Sum256(xzb)
		var rel bytes.Buffer
		fmt.Fprintf(&rel, "Origin: Fake\nSuite: %s\nCodename: %s\nDate: %s\n", suite, codenames[suite], date.Format(time.RFC1123))
		if !o.validUntil.IsZero() {
			fmt.Fprintf(&rel, "Valid-Until: %s\n", o.validUntil.Format(time.RFC1123))
		}
		if o.byHash {
			fmt.Fprintf(&rel, "Acquire-By-Hash: yes\n")
		}
		fmt.Fprintf(&rel, "Architectures: amd64\nComponents: main\nSHA256:\n %s %d main/binary-amd64/Packages.xz\n",
			hex.EncodeToString(sum[:]), len(xzb))
		var gzb []byte
		if o.gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(plain)
			zw.Close()
			gzb = buf.Bytes()
			gsum := sha256.Sum256(gzb)
			fmt.Fprintf(&rel, " %s %d main/binary-amd64/Packages.gz\n", hex.EncodeToString(gsum[:]), len(gzb))
			if o.corrupt {
				gzb = bytes.Clone(gzb)
				gzb[len(gzb)-9] ^= 0xff // in the deflate data: the hash no longer matches
			}
			files["/debian/dists/"+suite+"/main/binary-amd64/Packages.gz"] = gzb
		}
		if o.listPlain {
			psum := sha256.Sum256(plain)
			size := int64(len(plain))
			if o.plainSize != 0 {
				size = o.plainSize
			}
			fmt.Fprintf(&rel, " %s %d main/binary-amd64/Packages\n", hex.EncodeToString(psum[:]), size)
		}
		var sb bytes.Buffer
		cw, err := clearsign.Encode(&sb, o.signer.PrivateKey, &packet.Config{Time: func() time.Time { return testNow.Add(-time.Minute) }})
		if err != nil {
			t.Fatal(err)
		}
		cw.Write(rel.Bytes())
		if err := cw.Close(); err != nil {
			t.Fatal(err)
		}
		signed[suite] = sb.Bytes()
		pk := xzb
		if o.corrupt && !o.gz {
			pk = append(bytes.Clone(pk[:len(pk)-1]), pk[len(pk)-1]^0xff)
		}
		if o.byHash {
			files["/debian/dists/"+suite+"/main/binary-amd64/by-hash/SHA256/"+hex.EncodeToString(sum[:])] = pk
		}
		if o.syncing {
			pk = xzCompress(t, append(bytes.Clone(plain), "\nPackage: newer\nVersion: 1\nArchitecture: all\n"...))
		}
		files["/debian/dists/"+suite+"/main/binary-amd64/Packages.xz"] = pk
	}
	for suite := range dates {
		from := suite
		if f, ok := o.releaseOf[suite]; ok {
			from = f
		}
		files["/debian/dists/"+suite+"/InRelease"] = signed[from]
	}
	for suite, code := range codenames { // like the codename symlinks under dists/ on a real mirror
		for p, b := range maps.Clone(files) {
			if rest, ok := strings.CutPrefix(p, "/debian/dists/"+suite+"/"); ok {
				files["/debian/dists/"+code+"/"+rest] = b
			}
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.hits != nil {
			o.mu.Lock()
			o.hits[r.URL.Path]++
			o.mu.Unlock()
		}
		if o.handle != nil && o.handle(w, r) {
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	var kr bytes.Buffer
	if err := good.Serialize(&kr); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(t.TempDir(), "keyring.gpg")
	if err := os.WriteFile(keyring, kr.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/debian", keyring
}

func fakeRequest(uri, keyring string, pkgs ...string) Request {
	return Request{
		Distro: "debian", Release: "stable", Arch: "amd64", Keyring: keyring, Packages: pkgs,
		Suites: []SuiteSource{
			{Name: "stable", URI: uri, Archive: "debian", Components: []string{"main"}},
			{Name: "stable-updates", URI: uri, Archive: "debian", Components: []string{"main"}},
		},
	}
}

func TestResolveFake(t *testing.T) {
	uri, keyring := fakeArchive(t, archiveOpts{})
	base := []string{"base-files", "libc6", "usr-is-merged"}
	tests := []struct {
		name     string
		packages []string
		want     []string // selected package names
		wantErr  string
	}{
		{name: "essential only", want: base},
		{name: "versioned dependency from the newer suite", packages: []string{"app"}, want: append([]string{"app", "libfoo"}, base...)},
		{name: "virtual with one provider after a missing alternative", packages: []string{"needs-mta"}, want: append([]string{"exim", "needs-mta"}, base...)},
		{name: "virtual satisfied by a selected provider", packages: []string{"awk-and-mawk"}, want: append([]string{"awk-and-mawk", "mawk"}, base...)},
		{name: "virtual requested through a provider", packages: []string{"needs-awk", "gawk"}, want: append([]string{"gawk", "needs-awk"}, base...)},
		{name: "virtual ambiguous", packages: []string{"needs-awk"}, wantErr: `needs-awk 1 depends on virtual package "awk" with several providers, none selected: gawk, mawk`},
		{name: "unsatisfiable version", packages: []string{"wants-new-foo"}, wantErr: "wants-new-foo 1 depends on libfoo (>= 3), which no package in the suites satisfies"},
		{name: "conflicts", packages: []string{"app", "clash"}, wantErr: "clash 1 conflicts with app, but both are selected (app 1.0)"},
		{name: "breaks", packages: []string{"app", "breaker"}, wantErr: "breaker 1 breaks libfoo (<< 3), but both are selected (libfoo 2.1)"},
		{name: "unknown package", packages: []string{"foo"}, wantErr: `unknown package "foo" in stable`},
		{name: "unknown package, did you mean", packages: []string{"libfo"}, wantErr: `unknown package "libfo" in stable (did you mean "libfoo"?)`},
		{name: "pin to the older suite's version", packages: []string{"libfoo=1.0"}, want: append([]string{"libfoo"}, base...)},
		{name: "pin too old for a dependent", packages: []string{"app", "libfoo=1.0"}, wantErr: "app 1.0 depends on libfoo (>= 2), which no package in the suites satisfies"},
		{name: "impossible pin", packages: []string{"libfoo=3.0"}, wantErr: `libfoo=3.0: package "libfoo" has no version "3.0" in stable (the index has 1.0, 2.1)`},
		{name: "pin of an unknown package", packages: []string{"libfo=1.0"}, wantErr: `unknown package "libfo" in stable (did you mean "libfoo"?)`},
		{name: "pinned twice", packages: []string{"libfoo=1.0", "libfoo=2.1"}, wantErr: `libfoo=2.1: package "libfoo" is pinned twice (also libfoo=1.0)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Resolve(context.Background(), fakeRequest(uri, keyring, tt.packages...), Opts{Now: func() time.Time { return testNow }})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string(nil), tt.want...)
			sortStrings(want)
			if diff := cmp.Diff(want, lockNames(l)); diff != "" {
				t.Errorf("Resolve() packages mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestResolveFakeLock(t *testing.T) {
	for _, listPlain := range []bool{false, true} {
		t.Run(fmt.Sprintf("listPlain=%v", listPlain), func(t *testing.T) { testResolveFakeLock(t, listPlain) })
	}
}

func testResolveFakeLock(t *testing.T, listPlain bool) {
	hits := map[string]int{}
	uri, keyring := fakeArchive(t, archiveOpts{hits: hits, mu: &sync.Mutex{}, validUntil: testNow.Add(time.Hour), listPlain: listPlain})
	req := fakeRequest(uri, keyring, "app")
	opts := Opts{Now: func() time.Time { return testNow }, CacheDir: t.TempDir()}
	l, err := Resolve(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Suites {
		if len(l.Suites[i].ReleaseSHA256) != 64 {
			t.Errorf("suite %s: ReleaseSHA256 %q", l.Suites[i].Name, l.Suites[i].ReleaseSHA256)
		}
		l.Suites[i].ReleaseSHA256 = "" // signatures are not deterministic
	}
	want := &lock.Lock{
		Version: 1, InputDigest: InputDigest(req), Distro: "debian", Release: "stable", Arch: "amd64",
		SourceDateEpoch: time.Date(2026, 1, 5, 8, 30, 0, 0, time.UTC).Unix(),
		Suites: []lock.Suite{
			{Name: "stable", Archive: "debian", Date: "2026-01-01T10:00:00Z"},
			{Name: "stable-updates", Archive: "debian", Date: "2026-01-05T08:30:00Z"},
		},
		Packages: []lock.Package{
			{Name: "app", Version: "1.0", Architecture: "amd64", Filename: "pool/main/a/app/app_1.0_amd64.deb", Size: 10, SHA256: strings.Repeat("7", 64), Suite: "stable"},
			{Name: "base-files", Version: "12", Architecture: "amd64", Filename: "pool/main/b/base-files/base-files_12_amd64.deb", Size: 100, SHA256: strings.Repeat("1", 64), Suite: "stable", Essential: true},
			{Name: "libc6", Version: "2.36-9", Architecture: "amd64", Filename: "pool/main/g/glibc/libc6_2.36-9_amd64.deb", Size: 200, SHA256: strings.Repeat("2", 64), Suite: "stable", Essential: true},
			{Name: "libfoo", Version: "2.1", Architecture: "amd64", Filename: "pool/main/f/foo/libfoo_2.1_amd64.deb", Size: 11, SHA256: strings.Repeat("02", 32), Suite: "stable-updates"},
			{Name: "usr-is-merged", Version: "35", Architecture: "all", Filename: "pool/main/u/usrmerge/usr-is-merged_35_all.deb", Size: 10, SHA256: strings.Repeat("4", 64), Suite: "stable", Essential: true},
		},
	}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("Resolve() mismatch (-want +got):\n%s", diff)
	}
	// A second resolve takes the indexes from the cache.
	if _, err := Resolve(context.Background(), req, opts); err != nil {
		t.Fatal(err)
	}
	if n := hits["/debian/dists/stable/main/binary-amd64/Packages.xz"]; n != 1 {
		t.Errorf("Packages.xz fetched %d times, want 1 (cached)", n)
	}
}

func TestResolveFakeArchiveErrors(t *testing.T) {
	_, evil := testKeys(t)
	tests := []struct {
		name    string
		opts    archiveOpts
		wantErr string
	}{
		{"bad signature", archiveOpts{signer: evil}, "suite stable: bad signature on http://127.0.0.1"},
		{"expired", archiveOpts{validUntil: testNow.Add(-time.Hour)}, "expired: Valid-Until 2026-01-10T11:00:00Z"},
		{"hash mismatch", archiveOpts{corrupt: true}, "main/binary-amd64/Packages.xz: sha256 mismatch"},
		{"hash mismatch of Packages.gz", archiveOpts{corrupt: true, gz: true}, "main/binary-amd64/Packages.gz: sha256 mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri, keyring := fakeArchive(t, tt.opts)
			_, err := Resolve(context.Background(), fakeRequest(uri, keyring), Opts{Now: func() time.Time { return testNow }})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve() error = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestResolvePrefersGzip: with Packages.gz and Packages.xz listed, the resolver fetches the
// gzip index alone (it decompresses ten times faster) and locks what the xz index gives.
func TestResolvePrefersGzip(t *testing.T) {
	opts := Opts{Now: func() time.Time { return testNow }}
	uri, keyring := fakeArchive(t, archiveOpts{})
	want, err := Resolve(context.Background(), fakeRequest(uri, keyring), opts)
	if err != nil {
		t.Fatal(err)
	}
	o := archiveOpts{gz: true, hits: map[string]int{}, mu: &sync.Mutex{}}
	uri, keyring = fakeArchive(t, o)
	got, err := Resolve(context.Background(), fakeRequest(uri, keyring), opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Packages, got.Packages); diff != "" {
		t.Errorf("lock from Packages.gz differs from the one from Packages.xz (-xz +gz):\n%s", diff)
	}
	var fetched []string
	for p := range o.hits {
		if strings.Contains(p, "/Packages") {
			fetched = append(fetched, p)
		}
	}
	sortStrings(fetched)
	wantFetched := []string{"/debian/dists/stable-updates/main/binary-amd64/Packages.gz", "/debian/dists/stable/main/binary-amd64/Packages.gz"}
	if diff := cmp.Diff(wantFetched, fetched); diff != "" {
		t.Errorf("indexes fetched (-want +got):\n%s", diff)
	}
}

func TestInputDigest(t *testing.T) {
	a := fakeRequest("http://one.invalid/debian", "", "b", "a", "a")
	b := fakeRequest("http://two.invalid/debian", "/other", "a", "b")
	b.Suites[0], b.Suites[1] = b.Suites[1], b.Suites[0]
	if InputDigest(a) != InputDigest(b) {
		t.Errorf("InputDigest depends on mirror, keyring, order or duplicates")
	}
	c := fakeRequest("http://one.invalid/debian", "", "a", "b", "c")
	if InputDigest(a) == InputDigest(c) {
		t.Errorf("InputDigest ignores packages")
	}
	if !strings.HasPrefix(InputDigest(a), "sha256:") {
		t.Errorf("InputDigest = %q", InputDigest(a))
	}
	k := fakeRequest("http://one.invalid/debian", "", "a", "b")
	k.Kernel = "linux-image-amd64"
	if InputDigest(a) == InputDigest(k) {
		t.Errorf("InputDigest ignores the kernel package")
	}
	k2 := k
	k2.Kernel = "linux-image-cloud-amd64"
	if InputDigest(k) == InputDigest(k2) {
		t.Errorf("InputDigest ignores which kernel package")
	}
}

// Locks written before requests had a kernel package must stay current: without one, the digest
// is the one those versions computed.
func TestInputDigestWithoutKernelUnchanged(t *testing.T) {
	req := fakeRequest("http://one.invalid/debian", "", "iptables", "chrony")
	const want = "sha256:b82a685192d5f89a153521b623c9d67374a1b9c2fdd8d220f5a2db1aacebcb82"
	if diff := cmp.Diff(want, InputDigest(req)); diff != "" {
		t.Errorf("InputDigest() mismatch (-want +got):\n%s", diff)
	}
}

// A pinned package is locked at the pinned version, from the suite that has it, and an error
// about a requested package carries it as requested so that the caller can find it in the manifest.
func TestResolvePin(t *testing.T) {
	uri, keyring := fakeArchive(t, archiveOpts{})
	l, err := Resolve(context.Background(), fakeRequest(uri, keyring, "libfoo=1.0"), Opts{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	var got lock.Package
	for _, p := range l.Packages {
		if p.Name == "libfoo" {
			got = p
		}
	}
	want := lock.Package{Name: "libfoo", Version: "1.0", Suite: "stable"}
	if diff := cmp.Diff(want, lock.Package{Name: got.Name, Version: got.Version, Suite: got.Suite}); diff != "" {
		t.Errorf("Resolve() libfoo mismatch (-want +got):\n%s", diff)
	}

	for _, requested := range []string{"libfoo=9", "libfo"} {
		_, err = Resolve(context.Background(), fakeRequest(uri, keyring, "app", requested), Opts{Now: func() time.Time { return testNow }})
		var pe *family.PackageError
		if !errors.As(err, &pe) || pe.Package != requested {
			t.Errorf("Resolve(%s) error = %v, want a family.PackageError for %q", requested, err, requested)
		}
	}
}
