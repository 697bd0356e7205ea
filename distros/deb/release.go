package deb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ulikunitz/xz"
)

// DefaultKeyring is the keyring used when [Request.Keyring] is empty.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

type fileHash struct {
	size   int64
	sha256 string
}

type release struct {
	date       time.Time
	validUntil time.Time
	sha256     map[string]fileHash // path relative to dists/<suite>/ -> hash
	raw        []byte              // the InRelease bytes as fetched
}

func readKeyring(path string) (openpgp.EntityList, error) {
	if path == "" {
		path = DefaultKeyring
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	if bytes.Contains(b, []byte("-----BEGIN PGP")) {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("read keyring %s: %w", path, err)
		}
		return el, nil
	}
	// A binary keyring may be several concatenated keys; ReadKeyRing reads them all.
	el, err := openpgp.ReadKeyRing(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("read keyring %s: %w", path, err)
	}
	return el, nil
}

func httpGet(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return b, nil
}

// fetchRelease downloads dists/<suite>/InRelease, checks its signature against keyring and its Valid-Until against now.
func fetchRelease(ctx context.Context, c *http.Client, s SuiteSource, keyring openpgp.KeyRing, now time.Time) (*release, error) {
	url := s.URI + "/dists/" + s.Name + "/InRelease"
	raw, err := httpGet(ctx, c, url)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", s.Name, err)
	}
	block, _ := clearsign.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("suite %s: %s is not a clearsigned InRelease", s.Name, url)
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	if _, err := block.VerifySignature(keyring, cfg); err != nil {
		return nil, fmt.Errorf("suite %s: bad signature on %s: %w", s.Name, url, err)
	}
	rel, err := parseRelease(block.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %s: %w", s.Name, url, err)
	}
	if !rel.validUntil.IsZero() && now.After(rel.validUntil) {
		return nil, fmt.Errorf("suite %s: %s expired: Valid-Until %s is before now (%s)", s.Name, url,
			rel.validUntil.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	rel.raw = raw
	return rel, nil
}

var dateLayouts = []string{
	time.RFC1123, time.RFC1123Z,
	"Mon, _2 Jan 2006 15:04:05 MST", "Mon, _2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700",
}

func parseDate(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse date %q", s)
}

func parseRelease(b []byte) (*release, error) {
	rel := &release{sha256: map[string]fileHash{}}
	var field string
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if field != "sha256" {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 3 {
				return nil, fmt.Errorf("bad SHA256 line %q", line)
			}
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad SHA256 line %q", line)
			}
			rel.sha256[f[2]] = fileHash{size: size, sha256: f[0]}
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		field = strings.ToLower(k)
		v = strings.TrimSpace(v)
		var err error
		switch field {
		case "date":
			rel.date, err = parseDate(v)
		case "valid-until":
			rel.validUntil, err = parseDate(v)
		}
		if err != nil {
			return nil, fmt.Errorf("Release %s: %w", k, err)
		}
	}
	if rel.date.IsZero() {
		return nil, fmt.Errorf("Release has no Date")
	}
	return rel, nil
}

// fetchPackages returns the decompressed Packages index of one component, verified against the
// Release SHA256 list. Verified indexes are cached under cacheDir/sha256/<hex>: the decompressed
// index when the Release lists its hash (the usual case), else the compressed one. A cached file is
// re-verified before use, so a damaged cache only costs a download.
func fetchPackages(ctx context.Context, c *http.Client, s SuiteSource, rel *release, comp, arch, cacheDir string) ([]byte, error) {
	plainName := comp + "/binary-" + arch + "/Packages"
	name := plainName + ".xz"
	want, ok := rel.sha256[name]
	if !ok {
		return nil, fmt.Errorf("suite %s: Release lists no %s", s.Name, name)
	}
	plainWant, havePlain := rel.sha256[plainName]
	cached := func(h fileHash) []byte {
		if cacheDir == "" {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(cacheDir, "sha256", h.sha256))
		if err != nil || checkHash(b, h) != nil {
			return nil
		}
		return b
	}
	if havePlain {
		if b := cached(plainWant); b != nil {
			return b, nil
		}
	}
	url := s.URI + "/dists/" + s.Name + "/" + name
	data := cached(want)
	if data == nil {
		b, err := httpGet(ctx, c, url)
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", s.Name, err)
		}
		if err := checkHash(b, want); err != nil {
			return nil, fmt.Errorf("suite %s: %s: %w", s.Name, url, err)
		}
		data = b
		if cacheDir != "" && !havePlain {
			if err := writeFileAtomic(filepath.Join(cacheDir, "sha256", want.sha256), b); err != nil {
				return nil, fmt.Errorf("cache %s: %w", url, err)
			}
		}
	}
	r, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("suite %s: %s: %w", s.Name, url, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %s: %w", s.Name, url, err)
	}
	if havePlain {
		if err := checkHash(out, plainWant); err != nil {
			return nil, fmt.Errorf("suite %s: %s decompressed: %w", s.Name, url, err)
		}
		if cacheDir != "" {
			if err := writeFileAtomic(filepath.Join(cacheDir, "sha256", plainWant.sha256), out); err != nil {
				return nil, fmt.Errorf("cache %s: %w", url, err)
			}
		}
	}
	return out, nil
}

func checkHash(b []byte, want fileHash) error {
	if int64(len(b)) != want.size {
		return fmt.Errorf("size mismatch: got %d bytes, Release says %d", len(b), want.size)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want.sha256 {
		return fmt.Errorf("sha256 mismatch: got %s, Release says %s", got, want.sha256)
	}
	return nil
}

func writeFileAtomic(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}
