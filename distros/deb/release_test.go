package deb

// Hostile mirrors: replayed, old and oversized index files, and a mirror in the middle of a sync.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rootfsc/rootfsc/distros/lock"
)

// setLimit lowers a size limit for one test.
func setLimit(t *testing.T, p *int64, v int64) {
	old := *p
	*p = v
	t.Cleanup(func() { *p = old })
}

func resolveFake(t *testing.T, o archiveOpts, opts Opts) (*lock.Lock, error) {
	t.Helper()
	uri, keyring := fakeArchive(t, o)
	opts.Now = func() time.Time { return testNow }
	return Resolve(context.Background(), fakeRequest(uri, keyring, "app"), opts)
}

func TestResolveReleaseOfAnotherSuite(t *testing.T) {
	// The mirror answers for stable-updates with stable's InRelease: validly signed, but it would
	// freeze stable-updates at whatever stable holds.
	_, err := resolveFake(t, archiveOpts{releaseOf: map[string]string{"stable-updates": "stable"}}, Opts{})
	const want = "/debian/dists/stable-updates/InRelease is the Release of suite stable (codename bolt), not stable-updates"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Resolve() error = %v, want containing %q", err, want)
	}
}

func TestResolveSuiteByCodename(t *testing.T) {
	uri, keyring := fakeArchive(t, archiveOpts{})
	req := fakeRequest(uri, keyring, "app")
	req.Suites[0].Name, req.Suites[1].Name = "bolt", "bolt-updates"
	if _, err := Resolve(context.Background(), req, Opts{Now: func() time.Time { return testNow }}); err != nil {
		t.Fatalf("Resolve() of suites named by codename: %v", err)
	}
}

func TestResolveDowngrade(t *testing.T) {
	l, err := resolveFake(t, archiveOpts{}, Opts{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resolveFake(t, archiveOpts{}, Opts{Previous: l}); err != nil {
		t.Fatalf("Resolve() against the Releases the previous lock was made from: %v", err)
	}
	// The previous lock was made from a newer stable-updates than the mirror now serves.
	newer := *l
	newer.Suites = append([]lock.Suite(nil), l.Suites...)
	newer.Suites[1].Date = "2026-01-06T00:00:00Z"
	_, err = resolveFake(t, archiveOpts{}, Opts{Previous: &newer})
	const want = "/debian/dists/stable-updates/InRelease is dated 2026-01-05T08:30:00Z, before the Release of 2026-01-06T00:00:00Z the previous lock was made from"
	if !errors.Is(err, ErrDowngrade) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Resolve() error = %v, want ErrDowngrade containing %q", err, want)
	}
	if _, err := resolveFake(t, archiveOpts{}, Opts{Previous: &newer, AllowDowngrade: true}); err != nil {
		t.Fatalf("Resolve() with AllowDowngrade: %v", err)
	}
}

func TestResolveFutureRelease(t *testing.T) {
	// Now is testNow, 2026-01-10T12:00:00Z.
	_, err := resolveFake(t, archiveOpts{updatesAt: testNow.Add(time.Hour)}, Opts{})
	const want = "/debian/dists/stable-updates/InRelease is dated 2026-01-10T13:00:00Z, after now (2026-01-10T12:00:00Z): not valid yet (is this machine's clock right?)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Resolve() error = %v, want %q", err, want)
	}
	// Within ten minutes is a clock's skew.
	if _, err := resolveFake(t, archiveOpts{updatesAt: testNow.Add(5 * time.Minute)}, Opts{}); err != nil {
		t.Fatalf("Resolve() of a Release dated five minutes ahead: %v", err)
	}
}

func TestResolveSizeLimits(t *testing.T) {
	huge := func(path string, n int) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path {
				return false
			}
			chunk := bytes.Repeat([]byte("Z"), 64<<10)
			for i := 0; i < n/len(chunk); i++ {
				if _, err := w.Write(chunk); err != nil {
					break
				}
			}
			return true
		}
	}
	tests := []struct {
		name    string
		o       archiveOpts
		release int64 // maxReleaseSize
		index   int64 // maxIndexSize
		wantErr string
	}{
		{
			name: "InRelease too large", release: 1 << 20,
			o:       archiveOpts{handle: huge("/debian/dists/stable/InRelease", 8<<20)},
			wantErr: "/debian/dists/stable/InRelease: larger than 1048576 bytes, the limit for a Release file",
		},
		{
			name:    "Packages.xz larger than the Release says",
			o:       archiveOpts{handle: huge("/debian/dists/stable/main/binary-amd64/Packages.xz", 8<<20)},
			wantErr: "/debian/dists/stable/main/binary-amd64/Packages.xz: larger than the ",
		},
		{
			name: "decompression bomb", index: 1 << 20,
			o:       archiveOpts{packages: map[string][]byte{"stable": bytes.Repeat([]byte("\n"), 8<<20)}},
			wantErr: "/debian/dists/stable/main/binary-amd64/Packages.xz: decompresses to more than 1048576 bytes, the limit for an index",
		},
		{
			name: "Release lists an index over the limit", index: 4000,
			o:       archiveOpts{listPlain: true, plainSize: 5000},
			wantErr: "suite stable: the Release lists main/binary-amd64/Packages as 5000 bytes, more than the 4000 bytes an index may have",
		},
		{
			name:    "decompresses to more than the Release lists",
			o:       archiveOpts{listPlain: true, plainSize: 100},
			wantErr: "/debian/dists/stable/main/binary-amd64/Packages.xz: decompresses to more than the 100 bytes the Release lists for main/binary-amd64/Packages",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.release != 0 {
				setLimit(t, &maxReleaseSize, tt.release)
			}
			if tt.index != 0 {
				setLimit(t, &maxIndexSize, tt.index)
			}
			_, err := resolveFake(t, tt.o, Opts{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve() error = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestResolveByHash(t *testing.T) {
	// Mid-sync, the plain Packages.xz is already the next one; only by-hash matches the Release.
	const byHash = "/debian/dists/stable/main/binary-amd64/by-hash/SHA256/"
	hits := map[string]int{}
	if _, err := resolveFake(t, archiveOpts{byHash: true, syncing: true, hits: hits, mu: &sync.Mutex{}}, Opts{}); err != nil {
		t.Fatalf("Resolve() from a syncing mirror with Acquire-By-Hash: %v", err)
	}
	n := 0
	for p, c := range hits {
		if strings.HasPrefix(p, byHash) {
			n += c
		}
	}
	if n != 1 || hits["/debian/dists/stable/main/binary-amd64/Packages.xz"] != 0 {
		t.Errorf("requests %v, want one by-hash fetch of stable's Packages.xz and no plain one", hits)
	}

	// Without Acquire-By-Hash the same mirror serves a file the Release does not list: what
	// by-hash exists for.
	_, err := resolveFake(t, archiveOpts{syncing: true}, Opts{})
	const want = "/debian/dists/stable/main/binary-amd64/Packages.xz: larger than the 1060 bytes the Release lists"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Resolve() error = %v, want containing %q", err, want)
	}

	// A mirror that says Acquire-By-Hash but has no by-hash files: the plain name is used.
	noByHash := func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/by-hash/") {
			http.NotFound(w, r)
			return true
		}
		return false
	}
	if _, err := resolveFake(t, archiveOpts{byHash: true, handle: noByHash}, Opts{}); err != nil {
		t.Fatalf("Resolve() falling back from by-hash to the plain name: %v", err)
	}
}

// bigDictionary rewrites an xz file's first block to ask for a 1 GiB LZMA2 dictionary; the data
// still decodes (a larger dictionary than needed is no error), but a decoder allocates it first.
func bigDictionary(t testing.TB, b []byte) []byte {
	b = bytes.Clone(b)
	hdr := (int(b[12]) + 1) * 4
	block := b[12 : 12+hdr]
	if block[1]&0xc3 != 0 || block[2] != 0x21 || block[3] != 1 {
		t.Fatalf("unexpected xz block header % x", block)
	}
	block[4] = 36 // 2 << (36/2 + 11) bytes
	binary.LittleEndian.PutUint32(block[hdr-4:], crc32.ChecksumIEEE(block[:hdr-4]))
	return b
}

func TestResolveXZDictionary(t *testing.T) {
	_, err := resolveFake(t, archiveOpts{editXZ: bigDictionary}, Opts{})
	const want = "/debian/dists/stable/main/binary-amd64/Packages.xz: xz data asks for a 1024 MiB dictionary, more than the 128 MiB allowed"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Resolve() error = %v, want containing %q", err, want)
	}
}

func TestCheckXZ(t *testing.T) {
	one := xzCompress(t, []byte("Package: a\nArchitecture: all\n"))
	big := bigDictionary(t, one)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, []byte{0, 0, 0, 0}) }
	tests := []struct {
		name string
		data []byte
		big  bool
	}{
		{"one stream", one, false},
		{"two streams", cat(one, one), false},
		{"big dictionary", big, true},
		{"big dictionary in the second stream", cat(one, big), true},
		{"big dictionary in the first stream", cat(big, one, one), true},
		{"not xz", []byte("Package: a\n"), false},
	}
	for _, tt := range tests {
		if err := checkXZ(tt.data); (err != nil) != tt.big {
			t.Errorf("%s: checkXZ() = %v, want refused %v", tt.name, err, tt.big)
		}
	}
}

func TestParseReleaseRefuses(t *testing.T) {
	const date = "Date: Sat, 07 Oct 2023 10:00:00 UTC\n"
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name, text, wantErr string
	}{
		{"negative size", date + "SHA256:\n " + hash + " -5 main/binary-amd64/Packages.xz\n", `bad SHA256 line " ` + hash + ` -5 main/binary-amd64/Packages.xz"`},
		{"signed size", date + "SHA256:\n " + hash + " +5 main/binary-amd64/Packages.xz\n", `bad SHA256 line " ` + hash + ` +5 main/binary-amd64/Packages.xz"`},
		{"hash not hex", date + "SHA256:\n ../../../x 5 main/binary-amd64/Packages.xz\n", `bad SHA256 line " ../../../x 5 main/binary-amd64/Packages.xz"`},
		{"short hash", date + "SHA256:\n abcd 5 main/binary-amd64/Packages.xz\n", `bad SHA256 line " abcd 5 main/binary-amd64/Packages.xz"`},
		{"no date", "Suite: stable\n", "Release has no Date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRelease([]byte(tt.text))
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("parseRelease() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestParsePackagesRefusesNegativeSize(t *testing.T) {
	err := parsePackages([]byte("Package: a\nArchitecture: all\nSize: -1\n"), "s", "amd64", func(*pkg) {})
	if want := `package a: bad Size "-1"`; err == nil || err.Error() != want {
		t.Fatalf("parsePackages() error = %v, want %q", err, want)
	}
}
