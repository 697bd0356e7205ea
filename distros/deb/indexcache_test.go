package deb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// indexFetches counts the requests for Packages indexes (by name or by hash) in hits.
func indexFetches(o archiveOpts) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for p, c := range o.hits {
		if strings.Contains(p, "/binary-amd64/") {
			n += c
		}
	}
	return n
}

// lockBytes resolves "app" (and the kernel-free default set) and returns the lock as written.
func lockBytes(t *testing.T, uri, keyring string, opts Opts) []byte {
	t.Helper()
	opts.Now = func() time.Time { return testNow }
	l, err := Resolve(context.Background(), fakeRequest(uri, keyring, "app", "needs-mta", "awk-and-mawk"), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResolveParsedCache: a lock resolved with the parsed index cache cold, warm, and warm with
// the compressed indexes gone (so only the parsed entries can serve) is byte for byte the lock
// resolved from the network without a cache, for each way an archive lists its indexes.
func TestResolveParsedCache(t *testing.T) {
	tests := []struct {
		name string
		o    archiveOpts
	}{
		{"Packages.xz", archiveOpts{}},
		{"Packages.gz", archiveOpts{gz: true}},
		{"with the plain Packages listed", archiveOpts{gz: true, listPlain: true}},
		{"by hash", archiveOpts{byHash: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.hits, o.mu = map[string]int{}, &sync.Mutex{}
			uri, keyring := fakeArchive(t, o)
			want := lockBytes(t, uri, keyring, Opts{})
			cache := t.TempDir()
			var warnings []string
			opts := Opts{CacheDir: cache, Warn: func(m string) { warnings = append(warnings, m) }}

			before := indexFetches(o)
			cold := lockBytes(t, uri, keyring, opts)
			if got := indexFetches(o) - before; got != 2 {
				t.Errorf("cold cache: %d index downloads, want 2 (one per suite)", got)
			}
			entries, _ := filepath.Glob(filepath.Join(cache, "parsed", "*-amd64"))
			if len(entries) != 2 {
				t.Fatalf("parsed entries %q, want one per suite", entries)
			}
			warm := lockBytes(t, uri, keyring, opts)
			// Only the parsed entries are left: a resolve that still needs no download used them.
			if err := os.RemoveAll(filepath.Join(cache, "sha256")); err != nil {
				t.Fatal(err)
			}
			before = indexFetches(o)
			parsedOnly := lockBytes(t, uri, keyring, opts)
			if got := indexFetches(o) - before; got != 0 {
				t.Errorf("with the parsed entries: %d index downloads, want 0", got)
			}
			for _, got := range []struct {
				name string
				b    []byte
			}{{"cold cache", cold}, {"warm cache", warm}, {"parsed entries alone", parsedOnly}} {
				if diff := cmp.Diff(string(want), string(got.b)); diff != "" {
					t.Errorf("lock with %s differs from the lock from the network (-network +cache):\n%s", got.name, diff)
				}
			}
			if len(warnings) != 0 {
				t.Errorf("warnings %q, want none", warnings)
			}
		})
	}
}

// TestResolveParsedCacheRefused: a damaged or foreign entry of the parsed index cache is refused
// with a warning naming why, the index is parsed again from the verified compressed index in the
// cache (no download), the lock is the one from the network, and the entry is made again.
func TestResolveParsedCacheRefused(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, entry, other string)
		want   string // in the warning
		root   bool   // needs root (chown)
	}{
		{
			name:   "a byte changed",
			tamper: func(t *testing.T, entry, _ string) { flipByte(t, entry, 0.5) },
			want:   "checksum mismatch: the entry was changed after it was written",
		},
		{
			name: "libfoo's version changed, the checksum not recomputed",
			tamper: func(t *testing.T, entry, _ string) {
				editFile(t, entry, func(b []byte) []byte { return bytes.Replace(b, []byte("\x032.1"), []byte("\x039.1"), 1) })
			},
			want: "checksum mismatch",
		},
		{
			name:   "truncated",
			tamper: func(t *testing.T, entry, _ string) { editFile(t, entry, func(b []byte) []byte { return b[:len(b)/2] }) },
			want:   "checksum mismatch",
		},
		{
			name: "not an entry",
			tamper: func(t *testing.T, entry, _ string) {
				editFile(t, entry, func([]byte) []byte { return []byte("Package: app\n") })
			},
			want: "not a parsed index of this rootfsc version",
		},
		{
			name: "another index's entry, intact",
			tamper: func(t *testing.T, entry, other string) {
				b, err := os.ReadFile(other)
				if err != nil {
					t.Fatal(err)
				}
				editFile(t, entry, func([]byte) []byte { return b })
			},
			want: "made from index", // with both keys, below
		},
		{
			name:   "writable by others",
			tamper: func(t *testing.T, entry, _ string) { chmod(t, entry, 0o666) },
			want:   "writable by others (mode 0666)",
		},
		{
			name: "a symlink",
			tamper: func(t *testing.T, entry, other string) {
				if err := os.Remove(entry); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(other, entry); err != nil {
					t.Fatal(err)
				}
			},
			want: "not a regular file (a symbolic link)",
		},
		{
			name: "owned by another user",
			root: true,
			tamper: func(t *testing.T, entry, _ string) {
				if err := os.Chown(entry, 4242, 4242); err != nil {
					t.Fatal(err)
				}
			},
			want: "owned by uid 4242, not by this user",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			o := archiveOpts{gz: true, hits: map[string]int{}, mu: &sync.Mutex{}}
			uri, keyring := fakeArchive(t, o)
			want := lockBytes(t, uri, keyring, Opts{})
			cache := t.TempDir()
			var warnings []string
			opts := Opts{CacheDir: cache, Warn: func(m string) { warnings = append(warnings, m) }}
			lockBytes(t, uri, keyring, opts)
			entries, _ := filepath.Glob(filepath.Join(cache, "parsed", "*-amd64"))
			if len(entries) != 2 {
				t.Fatalf("parsed entries %q, want one per suite", entries)
			}
			// The entry of stable-updates, whose libfoo 2.1 the lock takes, is the one tampered with.
			entry, other := entryOf(t, entries, "libfoo_2.1"), entryOf(t, entries, "libfoo_1.0")
			tt.tamper(t, entry, other)
			wantWarn := tt.want
			if wantWarn == "made from index" {
				key := strings.TrimSuffix(filepath.Base(other), "-amd64")
				wantWarn = "made from index " + key + " for amd64, not from " + strings.TrimSuffix(filepath.Base(entry), "-amd64") + " for amd64"
			}

			before := indexFetches(o)
			got := lockBytes(t, uri, keyring, opts)
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("lock with a tampered cache differs from the lock from the network (-network +cache):\n%s", diff)
			}
			if n := indexFetches(o) - before; n != 0 {
				t.Errorf("%d index downloads, want 0 (parsed again from the cached compressed index)", n)
			}
			if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "suite stable-updates: index cache: "+entry+": ") ||
				!strings.Contains(warnings[0], wantWarn) || !strings.HasSuffix(warnings[0], "; parsing the index again") {
				t.Fatalf("warnings %q, want one for stable-updates' entry %s saying %q", warnings, entry, wantWarn)
			}

			// The entry was made again: the next resolve uses it without a word.
			warnings = nil
			if got := lockBytes(t, uri, keyring, opts); !bytes.Equal(got, want) {
				t.Errorf("lock after the entry was made again differs from the lock from the network")
			}
			if len(warnings) != 0 {
				t.Errorf("warnings after the entry was made again: %q, want none", warnings)
			}
		})
	}
}

// TestResolveParsedCacheSharedFolder: a folder of parsed entries that another user may write
// to is not read or written; the lock is right, with a warning saying why.
func TestResolveParsedCacheSharedFolder(t *testing.T) {
	o := archiveOpts{gz: true, hits: map[string]int{}, mu: &sync.Mutex{}}
	uri, keyring := fakeArchive(t, o)
	want := lockBytes(t, uri, keyring, Opts{})
	cache := t.TempDir()
	dir := filepath.Join(cache, "parsed")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, dir, 0o777)
	var warnings []string
	got := lockBytes(t, uri, keyring, Opts{CacheDir: cache, Warn: func(m string) { warnings = append(warnings, m) }})
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("lock differs from the lock from the network (-network +cache):\n%s", diff)
	}
	wantWarn := []string{
		"suite stable: index cache: " + dir + ": writable by others (mode 0777); parsing the index again",
		"suite stable-updates: index cache: " + dir + ": writable by others (mode 0777); parsing the index again",
	}
	if diff := cmp.Diff(wantWarn, warnings); diff != "" {
		t.Errorf("warnings mismatch (-want +got):\n%s", diff)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*")); len(entries) != 0 {
		t.Errorf("entries %q written to a folder others may write to", entries)
	}
}

// TestDecodeParsed: what decodeParsed refuses in an entry whose checksum holds.
func TestDecodeParsed(t *testing.T) {
	key := strings.Repeat("ab", 32)
	pkgs := []*pkg{
		{Name: "a", Version: "1:2.0-1", Architecture: "amd64", Filename: "pool/a.deb", SHA256: strings.Repeat("1", 64), Size: 12345,
			Priority: "required", Essential: true, Depends: "b (>= 1) | c", PreDepends: "d", Conflicts: "e", Breaks: "f (<< 2)", Provides: "g (= 1)"},
		{Name: "b", Version: "1", Architecture: "all"},
	}
	var buf bytes.Buffer
	if err := encodeParsed(&buf, key, "amd64", pkgs); err != nil {
		t.Fatal(err)
	}
	got, err := decodeParsed(buf.Bytes(), key, "amd64", "stable")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		p.Suite = "stable"
	}
	if diff := cmp.Diff(pkgs, got, cmp.AllowUnexported(pkg{})); diff != "" {
		t.Errorf("decodeParsed() mismatch (-want +got):\n%s", diff)
	}
	tests := []struct {
		name, key, arch, want string
	}{
		{"another index", strings.Repeat("cd", 32), "amd64", "made from index " + key + " for amd64, not from " + strings.Repeat("cd", 32) + " for amd64"},
		{"another architecture", key, "arm64", "made from index " + key + " for amd64, not from " + key + " for arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeParsed(buf.Bytes(), tt.key, tt.arch, "stable")
			if err == nil || err.Error() != tt.want {
				t.Fatalf("decodeParsed() error = %v, want %q", err, tt.want)
			}
		})
	}
}

// entryOf returns the one entry whose content holds s.
func entryOf(t *testing.T, entries []string, s string) string {
	t.Helper()
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, e)
		}
	}
	if len(out) != 1 {
		t.Fatalf("entries holding %q: %q, want one", s, out)
	}
	return out[0]
}

func editFile(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nb := edit(bytes.Clone(b))
	if bytes.Equal(b, nb) {
		t.Fatalf("edit of %s changed nothing", path)
	}
	if err := os.WriteFile(path, nb, 0o600); err != nil {
		t.Fatal(err)
	}
}

// flipByte inverts the byte at fraction at of the file.
func flipByte(t *testing.T, path string, at float64) {
	editFile(t, path, func(b []byte) []byte {
		i := int(float64(len(b)) * at)
		b[i] ^= 0xff
		return b
	})
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestResolveEarlierCache: the decompressed indexes an earlier rootfsc cached (when the Release
// lists them) still serve: no download, the same lock, and the parsed entries made from them.
func TestResolveEarlierCache(t *testing.T) {
	o := archiveOpts{gz: true, listPlain: true, hits: map[string]int{}, mu: &sync.Mutex{}}
	uri, keyring := fakeArchive(t, o)
	want := lockBytes(t, uri, keyring, Opts{})
	cache := t.TempDir()
	for _, s := range []string{"stable", "stable-updates"} {
		b, err := os.ReadFile(filepath.Join("testdata/archive", s, "Packages"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if err := writeFileAtomic(filepath.Join(cache, "sha256", hex.EncodeToString(sum[:])), b); err != nil {
			t.Fatal(err)
		}
	}
	before := indexFetches(o)
	got := lockBytes(t, uri, keyring, Opts{CacheDir: cache})
	if n := indexFetches(o) - before; n != 0 {
		t.Errorf("%d index downloads, want 0 (the earlier cache)", n)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("lock from the earlier cache differs from the lock from the network (-network +cache):\n%s", diff)
	}
	if entries, _ := filepath.Glob(filepath.Join(cache, "parsed", "*-amd64")); len(entries) != 2 {
		t.Errorf("parsed entries %q, want one per suite", entries)
	}

	// A damaged one is downloaded again.
	if err := os.RemoveAll(filepath.Join(cache, "parsed")); err != nil {
		t.Fatal(err)
	}
	plain, _ := filepath.Glob(filepath.Join(cache, "sha256", "*"))
	for _, p := range plain {
		flipByte(t, p, 0.5)
	}
	before = indexFetches(o)
	got = lockBytes(t, uri, keyring, Opts{CacheDir: cache})
	if n := indexFetches(o) - before; n != 2 {
		t.Errorf("%d index downloads with the earlier cache damaged, want 2", n)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("lock with the earlier cache damaged differs from the lock from the network (-network +cache):\n%s", diff)
	}
}
