package apk

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros/apk/apktest"
)

func testKey(t *testing.T, name string) *apktest.Key {
	t.Helper()
	k, err := apktest.NewKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyIndex(t *testing.T) {
	key, other := testKey(t, "test@rootfsc-1.rsa.pub"), testKey(t, "test@rootfsc-2.rsa.pub")
	b, err := apktest.Build(apktest.Package{Name: "hello", Version: "1.0-r0", Provides: []string{"cmd:hello=1.0-r0"}, ProviderPriority: 10, BuildDate: 1700000000}, key)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := apktest.Index([]*apktest.Built{b}, "v3.20 main", key)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeys(map[string]string{key.Name: key.PublicPEM()})
	if err != nil {
		t.Fatal(err)
	}
	text, err := VerifyIndex(idx, keys)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := ParseIndex(text, "main")
	if err != nil {
		t.Fatal(err)
	}
	want := []*Pkg{{
		Name: "hello", Version: "1.0-r0", Arch: "x86_64", Size: int64(len(b.APK)), Description: "",
		URL: "https://example.invalid/hello", License: "MIT", Origin: "hello", Maintainer: "rootfsc tests",
		BuildDate: 1700000000, Provides: []string{"cmd:hello=1.0-r0"}, ProviderPriority: 10, Checksum: b.Checksum, Repo: "main",
	}}
	if diff := cmp.Diff(want, pkgs); diff != "" {
		t.Errorf("ParseIndex() mismatch (-want +got):\n%s", diff)
	}

	// The index member of one file behind the signature member of another.
	b2, _ := apktest.Build(apktest.Package{Name: "evil", Version: "1.0-r0"}, key)
	idx2, _ := apktest.Index([]*apktest.Built{b2}, "v3.20 main", key)
	sigLen := len(idx) - len(indexMember(t, idx))
	swapped := append(append([]byte{}, idx[:sigLen]...), indexMember(t, idx2)...)
	otherKeys, _ := ParseKeys(map[string]string{other.Name: other.PublicPEM()})
	wrongKey, _ := ParseKeys(map[string]string{key.Name: other.PublicPEM()})
	for _, tc := range []struct {
		name  string
		data  []byte
		keys  Keys
		want  string
		cause error
	}{
		{"tampered index", swapped, keys, "bad signature by key test@rootfsc-1.rsa.pub", ErrBadSignature},
		{"other key of that name", idx, wrongKey, "bad signature by key test@rootfsc-1.rsa.pub", ErrBadSignature},
		{"unknown key", idx, otherKeys, `signed by an unknown key "test@rootfsc-1.rsa.pub" (the distro definition holds test@rootfsc-2.rsa.pub)`, ErrUnknownKey},
		{"unsigned", indexMember(t, idx), keys, `not a signed index: first entry is "DESCRIPTION", not a .SIGN. file`, nil},
		{"not gzip", []byte("<html><body>Not Found</body></html>"), keys, "not a signed index: gzip: invalid header", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyIndex(tc.data, tc.keys)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("VerifyIndex() error = %v, want %q", err, tc.want)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Fatalf("VerifyIndex() error = %v, want %v", err, tc.cause)
			}
		})
	}
}

// indexMember cuts the signature member off an index.
func indexMember(t *testing.T, idx []byte) []byte {
	t.Helper()
	// The index member starts at the second gzip header (1f 8b 08).
	i := strings.Index(string(idx[3:]), "\x1f\x8b\x08")
	if i < 0 {
		t.Fatal("no second member")
	}
	return idx[i+3:]
}

func TestParseIndexErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"P:a\nV:1\n\nP:b\nbad\n", `APKINDEX:5: bad line "bad"`},
		{"P:a\nV:1\nS:big\n", `APKINDEX:3: S: strconv.ParseInt: parsing "big": invalid syntax`},
		{"P:a\n\n", "APKINDEX:2: stanza without P: or V:"},
	} {
		if _, err := ParseIndex([]byte(tc.text), "main"); err == nil || err.Error() != tc.want {
			t.Errorf("ParseIndex(%q) error = %v, want %q", tc.text, err, tc.want)
		}
	}
}
