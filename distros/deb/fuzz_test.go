package deb

// Fuzzing of what a mirror sends before (InRelease) and after (Packages) verification: the
// parsers and the resolver over them must give a result or an error, never a panic or a hang.

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/google/go-cmp/cmp"
)

const seedRelease = `Origin: Debian
Label: Debian-Security
Suite: stable-security
Codename: bookworm-security
Date: Sat, 07 Oct 2023 10:00:00 UTC
Valid-Until: Sat, 14 Oct 2023 10:00:00 UTC
Acquire-By-Hash: yes
Architectures: amd64 arm64
Components: updates/main
SHA256:
 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1060 main/binary-amd64/Packages.xz
 fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210 5289 main/binary-amd64/Packages
`

func FuzzParseRelease(f *testing.F) {
	f.Add([]byte(seedRelease))
	f.Add([]byte("Date: Mon, 2 Jan 2006 15:04:05 -0700\nSHA256:\n x 1 y\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + seedRelease +
		"-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte("Suite: a\nDate: \nSHA256:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The plaintext as parsed after verification, and the clearsigned envelope decoded before it.
		for _, text := range [][]byte{b, plaintext(b)} {
			if text == nil {
				continue
			}
			rel, err := parseRelease(text)
			if err != nil {
				continue
			}
			if rel.date.IsZero() {
				t.Errorf("parseRelease() accepted a Release without a Date")
			}
			for name, h := range rel.sha256 {
				if h.size < 0 || !isSHA256(h.sha256) {
					t.Errorf("parseRelease() accepted size %d, sha256 %q for %s", h.size, h.sha256, name)
				}
			}
		}
	})
}

func plaintext(b []byte) []byte {
	block, _ := clearsign.Decode(b)
	if block == nil {
		return nil
	}
	return block.Plaintext
}

func FuzzParsePackages(f *testing.F) {
	for _, s := range []string{"stable", "stable-updates"} {
		b, err := os.ReadFile(filepath.Join("testdata/archive", s, "Packages"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Package: a\nArchitecture: all\nDepends: b (>= 1) | c, d:any [amd64] <!nocheck>\n\nPackage: b\nVersion: 1:2~3\nArchitecture: amd64\nProvides: c (= 2)\nEssential: yes\n"))
	f.Add([]byte("Package: x\nArchitecture: all\nDepends: y (\n"))
	f.Add([]byte("Package: x\nArchitecture: all\nSize: -1\n\n\n\nPackage:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return // the resolver below is quadratic in places; the parser is what is fuzzed
		}
		universe := map[string]*pkg{}
		var first string
		err := parsePackages(b, "fuzz", "amd64", func(p *pkg) {
			if p.Name == "" || p.Size < 0 || p.Architecture != "amd64" && p.Architecture != "all" {
				t.Errorf("parsePackages() emitted %+v", p)
			}
			if !bytes.Contains(b, []byte(p.Name)) {
				t.Errorf("parsePackages() emitted %q, which is not in the input", p.Name)
			}
			if first == "" {
				first = p.Name
			}
			p.version()
			universe[p.Name] = p
		})
		if err != nil || first == "" {
			return
		}
		// What a resolve does with a verified index: none of it may panic or loop.
		ix := newIndex(universe)
		sel, err := closure(ix, []string{first}, "fuzz")
		if err == nil {
			if _, err := essentialSet(ix, sel); err != nil {
				return
			}
		}
		resolveKernel(ix, first, "fuzz")
	})
}

func FuzzCheckXZ(f *testing.F) {
	one := xzCompress(f, []byte("Package: a\nArchitecture: all\n"))
	f.Add(one)
	f.Add(append(append(bytes.Clone(one), 0, 0, 0, 0), one...)) // two streams with padding
	f.Add(bigDictionary(f, one))
	f.Add([]byte("\xfd7zXZ\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkXZ(b) // refuses or accepts; the decoder refuses what is not xz
	})
}

// FuzzDecodeParsed: an entry of the parsed index cache whose checksum holds (one written by this
// user, damaged by a bug or a disk) decodes to packages or to an error, never a panic, and what
// it decodes to survives encoding again.
func FuzzDecodeParsed(f *testing.F) {
	key := strings.Repeat("ab", 32)
	for _, s := range []string{"stable", "stable-updates"} {
		b, err := os.ReadFile(filepath.Join("testdata/archive", s, "Packages"))
		if err != nil {
			f.Fatal(err)
		}
		var pkgs []*pkg
		if err := parsePackages(b, s, "amd64", func(p *pkg) { pkgs = append(pkgs, p) }); err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if err := encodeParsed(&buf, key, "amd64", pkgs); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes()[:buf.Len()-sha256.Size])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sum := sha256.Sum256(body)
		pkgs, err := decodeParsed(append(bytes.Clone(body), sum[:]...), key, "amd64", "s")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := encodeParsed(&buf, key, "amd64", pkgs); err != nil {
			t.Fatal(err)
		}
		again, err := decodeParsed(buf.Bytes(), key, "amd64", "s")
		if err != nil {
			t.Fatalf("decodeParsed() of its own encoding: %v", err)
		}
		if diff := cmp.Diff(pkgs, again, cmp.AllowUnexported(pkg{})); diff != "" {
			t.Errorf("decodeParsed() after encodeParsed() mismatch (-first +again):\n%s", diff)
		}
	})
}
