package deb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
)

// DefaultKeyring is the keyring used when [Request.Keyring] is empty.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// ErrDowngrade is returned (wrapped) by [Resolve] when a suite's Release is older than the one
// [Opts.Previous] was made from and [Opts.AllowDowngrade] is not set.
var ErrDowngrade = errors.New("Release is older than the lock's")

// Limits on what is read from a mirror, so that a hostile one cannot exhaust memory before a
// signature or hash has been checked. Debian's InRelease files are a few hundred KiB and its
// largest Packages index (sid, amd64, main) is under 100 MiB uncompressed. Variables for tests.
var (
	maxReleaseSize int64 = 16 << 20  // an InRelease file
	maxIndexSize   int64 = 512 << 20 // a Packages index, compressed or not
)

// The retry schedule of index downloads: attempts in all, the pause before the second (doubling
// after each), how long a download may go without receiving a byte, and how long one attempt may
// take in all (Debian's largest index at 100 KB/s takes 2 minutes). Variables for tests.
var (
	fetchAttempts = 4
	fetchBackoff  = 250 * time.Millisecond
	fetchStall    = 30 * time.Second
	fetchTimeout  = 10 * time.Minute
)

// downgradeError is an [ErrDowngrade] with the suite, the URL and both dates.
type downgradeError string

func (e downgradeError) Error() string        { return string(e) }
func (e downgradeError) Is(target error) bool { return target == ErrDowngrade }

type fileHash struct {
	size   int64
	sha256 string
}

type release struct {
	suite, codename string
	date            time.Time
	validUntil      time.Time
	byHash          bool                // Acquire-By-Hash: yes
	sha256          map[string]fileHash // path relative to dists/<suite>/ -> hash
	raw             []byte              // the InRelease bytes as fetched
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

// tooLarge is a download cut off at its size limit; what says what the limit is.
type tooLarge struct{ what string }

func (e tooLarge) Error() string { return "larger than " + e.what }

// FetchError is a download from a mirror that failed, after retries when the failure looked
// transient (no connection, a reset, a stall, a 5xx answer).
type FetchError struct {
	URL string
	// Status is the HTTP status of the last answer, 0 when there was none.
	Status   int
	Attempts int
	Err      error
}

func (e *FetchError) Error() string {
	host := e.URL
	if u, err := neturl.Parse(e.URL); err == nil {
		host = u.Host
	}
	if e.Status == http.StatusNotFound {
		return fmt.Sprintf("mirror %s has no such file: %s (%v)", host, e.URL, e.Err)
	}
	msg := fmt.Sprintf("mirror %s: GET %s: %v", host, e.URL, e.Err)
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" (gave up after %d attempts)", e.Attempts)
	}
	return msg
}

func (e *FetchError) Unwrap() error { return e.Err }

// Is makes a 404 match [ErrNotFound].
func (e *FetchError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// ErrNotFound matches a [FetchError] for a file the mirror does not have.
var ErrNotFound = errors.New("no such file on the mirror")

// errStalled ends a download that received nothing for [fetchStall], errSlow one that took
// longer than [fetchTimeout].
var errStalled, errSlow = errors.New("stalled"), errors.New("too slow")

// httpGet downloads url, refusing a body larger than limit bytes (what says what the limit is,
// for the error). Transient failures are retried [fetchAttempts] times in all, with a doubling pause.
func httpGet(ctx context.Context, c *http.Client, url string, limit int64, what string) ([]byte, error) {
	pause := fetchBackoff
	for attempt := 1; ; attempt++ {
		b, status, err := httpGetOnce(ctx, c, url, limit, what)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: %w", url, context.Cause(ctx))
		}
		fe := &FetchError{URL: url, Status: status, Attempts: attempt, Err: err}
		if attempt >= fetchAttempts || !transient(status, err) {
			return nil, fe
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("GET %s: %w", url, context.Cause(ctx))
		case <-t.C:
		}
		pause *= 2
	}
}

// transient reports whether a failed download may succeed when tried again.
func transient(status int, err error) bool {
	var tl tooLarge
	var cert *tls.CertificateVerificationError
	switch {
	case errors.As(err, &tl), errors.As(err, &cert):
		return false
	case status == 0: // refused, reset, timed out, stalled or cut short
		return true
	}
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// httpGetOnce is one attempt of [httpGet]; status is the HTTP status when the answer was not 200.
func httpGetOnce(ctx context.Context, c *http.Client, url string, limit int64, what string) ([]byte, int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A mirror that accepts the connection and then sends nothing would otherwise hold the
	// resolve forever; a whole-request timeout would cut off large indexes on slow links.
	watchdog := time.AfterFunc(fetchStall, func() { cancel(errStalled) })
	defer watchdog.Stop()
	deadline := time.AfterFunc(fetchTimeout, func() { cancel(errSlow) })
	defer deadline.Stop()
	stalled := func(err error) error {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errStalled):
			return fmt.Errorf("no data for %s", fetchStall)
		case errors.Is(cause, errSlow):
			return fmt.Errorf("not complete after %s", fetchTimeout)
		}
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the FetchError already
		}
		return nil, 0, stalled(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // lets the connection be reused
		return nil, resp.StatusCode, errors.New(resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, 0, tooLarge{what}
	}
	body := &progressReader{r: io.LimitReader(resp.Body, limit+1), watchdog: watchdog}
	// With the length known (and within the limit), the body is read into one buffer of its
	// size instead of one that doubles as it fills: a 12 MB index would otherwise take 26 MB.
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, 0, stalled(err)
	}
	b := buf.Bytes()
	if int64(len(b)) > limit {
		return nil, 0, tooLarge{what}
	}
	return b, 0, nil
}

// progressReader restarts the stall watchdog whenever bytes arrive.
type progressReader struct {
	r        io.Reader
	watchdog *time.Timer
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.watchdog.Reset(fetchStall)
	}
	return n, err
}

// fetchRelease downloads dists/<suite>/InRelease and checks its signature against keyring, that it
// is the Release of that suite, its Valid-Until against now and its Date against the previous
// lock's (prev, zero for none).
func fetchRelease(ctx context.Context, c *http.Client, s SuiteSource, keyring openpgp.KeyRing, now, prev time.Time) (*release, error) {
	url := s.URI + "/dists/" + s.Name + "/InRelease"
	raw, err := httpGet(ctx, c, url, maxReleaseSize, fmt.Sprintf("%d bytes, the limit for a Release file", maxReleaseSize))
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
	// A mirror may answer for one suite with another's validly signed Release: stable's for
	// stable-security would freeze the security updates. Debian names a suite by either field
	// (bookworm-security is Suite: stable-security, Codename: bookworm-security).
	if s.Name != rel.suite && s.Name != rel.codename {
		return nil, fmt.Errorf("suite %s: %s is the Release of suite %s (codename %s), not %s",
			s.Name, url, orNone(rel.suite), orNone(rel.codename), s.Name)
	}
	if !rel.validUntil.IsZero() && now.After(rel.validUntil) {
		return nil, fmt.Errorf("suite %s: %s expired: Valid-Until %s is before now (%s)", s.Name, url,
			rel.validUntil.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	// apt refuses a Release dated after now (Acquire::Check-Date): a clock set back, or a
	// Release not meant to be served yet, would otherwise pass the Valid-Until and rollback checks.
	if rel.date.After(now.Add(maxFutureDate)) {
		return nil, fmt.Errorf("suite %s: %s is dated %s, after now (%s): not valid yet (is this machine's clock right?)", s.Name, url,
			rel.date.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !prev.IsZero() && rel.date.Before(prev) {
		return nil, downgradeError(fmt.Sprintf("suite %s: %s is dated %s, before the Release of %s the previous lock was made from",
			s.Name, url, rel.date.UTC().Format(time.RFC3339), prev.UTC().Format(time.RFC3339)))
	}
	rel.raw = raw
	return rel, nil
}

// maxFutureDate is how far a Release's Date may be ahead of this machine's clock.
const maxFutureDate = 10 * time.Minute

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
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
			// The hash goes into by-hash URLs and the size bounds a download: both must be plain.
			size, err := parseSize(f[1])
			if err != nil || !isSHA256(f[0]) {
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
		case "suite":
			rel.suite = v
		case "codename":
			rel.codename = v
		case "acquire-by-hash":
			rel.byHash = strings.EqualFold(v, "yes")
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

// fetchPackages returns the packages for arch of the Packages index of one component, verified
// against the Release SHA256 list. Verified compressed indexes are cached under
// cacheDir/sha256/<hex>, and what the resolver needs of each index in the parsed index cache
// (indexcache.go), keyed by the same signed hashes. A cached file is verified before use, so a
// damaged or tampered cache only costs a download or a parse; warn is why an entry of the cache
// was not used ("" when none was refused). The index is parsed as it is decompressed, never held
// whole, and nothing is read past the size the Release lists, or past [maxIndexSize], so a hostile
// mirror cannot exhaust memory.
func fetchPackages(ctx context.Context, c *http.Client, s SuiteSource, rel *release, comp, arch, cacheDir string) (pkgs []*pkg, warn string, err error) {
	dir := comp + "/binary-" + arch + "/"
	plainName := dir + "Packages"
	// Packages.gz when the Release lists it: it decompresses about ten times faster than
	// Packages.xz (0.2 s against 2 s for bookworm's main on these machines, the largest part of a
	// cold resolve) for 3 MB more on the wire; Packages.xz otherwise.
	name := plainName + ".gz"
	want, ok := rel.sha256[name]
	if !ok {
		name = plainName + ".xz"
		if want, ok = rel.sha256[name]; !ok {
			return nil, "", fmt.Errorf("suite %s: Release lists neither %s.gz nor %s.xz", s.Name, plainName, plainName)
		}
	}
	plainWant, havePlain := rel.sha256[plainName]
	for _, h := range []struct {
		name string
		fileHash
		ok bool
	}{{name, want, true}, {plainName, plainWant, havePlain}} {
		if h.ok && h.size > maxIndexSize {
			return nil, "", fmt.Errorf("suite %s: the Release lists %s as %d bytes, more than the %d bytes an index may have", s.Name, h.name, h.size, maxIndexSize)
		}
	}
	// The parsed entry is keyed by the hash of what it was parsed from and checked against.
	key := want.sha256
	if havePlain {
		key = plainWant.sha256
	}
	parsed := parsedPath(cacheDir, key, arch)
	if parsed != "" {
		pkgs, err := readParsed(parsed, key, arch, s.Name)
		if err == nil && pkgs != nil {
			return pkgs, "", nil
		}
		if err != nil {
			warn = fmt.Sprintf("index cache: %v; parsing the index again", err)
		}
	}
	// keep writes the parsed entry. The packages are right without it: an entry that cannot be
	// written (a folder another user may write to) is a warning, said once.
	keep := func(pkgs []*pkg) ([]*pkg, string, error) {
		if parsed != "" {
			if err := writeParsed(parsed, key, arch, pkgs); err != nil && warn == "" {
				warn = fmt.Sprintf("index cache: %v; not kept", err)
			}
		}
		return pkgs, warn, nil
	}
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
	if havePlain && cacheDir != "" {
		// Earlier versions cached the decompressed index: parsed as it is read and used only if
		// its hash holds, so that its 50 MB are never held whole either.
		if f, err := os.Open(filepath.Join(cacheDir, "sha256", plainWant.sha256)); err == nil {
			var pkgs []*pkg
			hr := &hashingReader{r: io.LimitReader(f, plainWant.size+1), h: sha256.New()}
			err := scanPackages(hr, s.Name, arch, func(p *pkg) { pkgs = append(pkgs, p) })
			f.Close()
			if err == nil && checkSum(hr.n, hr.h.Sum(nil), plainWant) == nil {
				return keep(pkgs)
			}
		}
	}
	base := s.URI + "/dists/" + s.Name + "/"
	url := base + name
	data := cached(want)
	if data == nil {
		// While a mirror syncs, the plain name may already hold the next index; by-hash holds
		// the one this Release lists. Mirrors without by-hash files answer 404.
		urls := []string{url}
		if rel.byHash {
			urls = []string{base + dir + "by-hash/SHA256/" + want.sha256, url}
		}
		var err error
		for i, u := range urls {
			url = u
			data, err = httpGet(ctx, c, u, want.size, fmt.Sprintf("the %d bytes the Release lists", want.size))
			if err == nil || i == len(urls)-1 || !errors.Is(err, ErrNotFound) {
				break
			}
		}
		if err != nil {
			return nil, "", fmt.Errorf("suite %s: %w", s.Name, err)
		}
		if err := checkHash(data, want); err != nil {
			return nil, "", fmt.Errorf("suite %s: %s: %w", s.Name, url, err)
		}
		if cacheDir != "" {
			if err := writeFileAtomic(filepath.Join(cacheDir, "sha256", want.sha256), data); err != nil {
				return nil, "", fmt.Errorf("cache %s: %w", url, err)
			}
		}
	}
	r, err := decompressIndex(name, data)
	if err != nil {
		return nil, "", fmt.Errorf("suite %s: %s: %w", s.Name, url, err)
	}
	limit, what := maxIndexSize, fmt.Sprintf("%d bytes, the limit for an index", maxIndexSize)
	if havePlain {
		limit, what = plainWant.size, fmt.Sprintf("the %d bytes the Release lists for %s", plainWant.size, plainName)
	}
	counted := &hashingReader{r: io.LimitReader(r, limit+1), h: sha256.New()}
	err = scanPackages(counted, s.Name, arch, func(p *pkg) { pkgs = append(pkgs, p) })
	// Past the limit, a parse error is only a symptom of the cut.
	if counted.n > limit {
		return nil, "", fmt.Errorf("suite %s: %s: decompresses to more than %s", s.Name, url, what)
	}
	if err != nil {
		return nil, "", fmt.Errorf("suite %s: %s: %w", s.Name, url, err)
	}
	if havePlain {
		if err := checkSum(counted.n, counted.h.Sum(nil), plainWant); err != nil {
			return nil, "", fmt.Errorf("suite %s: %s decompressed: %w", s.Name, url, err)
		}
	}
	return keep(pkgs)
}

// hashingReader counts and hashes what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(b []byte) (int, error) {
	n, err := h.r.Read(b)
	h.n += int64(n)
	h.h.Write(b[:n])
	return n, err
}

// decompressIndex reads a Packages.gz (as gunzip does; klauspost's decoder, about twice as fast
// as the standard library's) or a Packages.xz with a sane dictionary.
func decompressIndex(name string, data []byte) (io.Reader, error) {
	if strings.HasSuffix(name, ".gz") {
		r, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	if err := checkXZ(data); err != nil {
		return nil, err
	}
	return xz.NewReader(bytes.NewReader(data))
}

// parseSize parses a decimal size without a sign.
func parseSize(s string) (int64, error) {
	n, err := strconv.ParseUint(s, 10, 63)
	return int64(n), err
}

// isSHA256 reports whether s is a sha256 digest in lowercase hex.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func checkHash(b []byte, want fileHash) error {
	sum := sha256.Sum256(b)
	return checkSum(int64(len(b)), sum[:], want)
}

// checkSum checks the size n and sha256 sum of some bytes against what the Release lists.
func checkSum(n int64, sum []byte, want fileHash) error {
	if n != want.size {
		return fmt.Errorf("size mismatch: got %d bytes, Release says %d", n, want.size)
	}
	if got := hex.EncodeToString(sum); got != want.sha256 {
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

// maxXZDict bounds the LZMA2 dictionary an xz index may ask for. The decoder allocates the
// dictionary a file names before it decodes a byte, so a small file naming 1.5 GiB would take
// that much memory; xz's largest preset (-9) uses 64 MiB.
var maxXZDict int64 = 128 << 20

// checkXZ walks the structure of xz data (streams, their indexes and block headers) without
// decompressing it and refuses a block whose LZMA2 dictionary is larger than [maxXZDict]. Anything
// it cannot walk is left to the decoder to refuse.
func checkXZ(b []byte) error {
	end := len(b)
	for end > 0 {
		for end >= 4 && b[end-1] == 0 && b[end-2] == 0 && b[end-3] == 0 && b[end-4] == 0 {
			end -= 4 // stream padding
		}
		if end < 24 || string(b[end-2:end]) != "YZ" {
			return nil
		}
		footer := end - 12
		indexSize := (int(b[footer+4]) | int(b[footer+5])<<8 | int(b[footer+6])<<16 | int(b[footer+7])<<24 + 1) * 4
		index := footer - indexSize
		if index < 12 || b[index] != 0 {
			return nil
		}
		p := index + 1
		n, ok := uvarint(b, &p, footer)
		if !ok {
			return nil
		}
		var blocks []int // the blocks' sizes in the stream, padding included
		total := 0
		for i := uint64(0); i < n; i++ {
			unpadded, ok1 := uvarint(b, &p, footer)
			_, ok2 := uvarint(b, &p, footer)
			if !ok1 || !ok2 || unpadded > uint64(len(b)) {
				return nil
			}
			size := (int(unpadded) + 3) &^ 3
			blocks = append(blocks, size)
			if total += size; total > index {
				return nil
			}
		}
		start := index - total - 12
		if start < 0 || string(b[start:start+6]) != "\xfd7zXZ\x00" {
			return nil
		}
		off := start + 12
		for _, size := range blocks {
			if err := checkXZBlock(b[off : off+size]); err != nil {
				return err
			}
			off += size
		}
		end = start
	}
	return nil
}

// checkXZBlock checks the filters of one xz block's header.
func checkXZBlock(b []byte) error {
	if len(b) < 2 || b[0] == 0 {
		return nil
	}
	hdr := (int(b[0]) + 1) * 4
	if hdr > len(b) {
		return nil
	}
	flags := b[1]
	p := 2
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, ok := uvarint(b, &p, hdr); !ok {
				return nil
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := uvarint(b, &p, hdr)
		n, ok2 := uvarint(b, &p, hdr)
		if !ok1 || !ok2 || n > uint64(hdr-p) {
			return nil
		}
		if id == 0x21 && n == 1 { // LZMA2; its one property byte encodes the dictionary size
			d := b[p]
			var dict int64 = 1<<32 - 1
			if d < 40 {
				dict = int64(2|d&1) << (d/2 + 11)
			}
			if dict > maxXZDict {
				return fmt.Errorf("xz data asks for a %d MiB dictionary, more than the %d MiB allowed", dict>>20, maxXZDict>>20)
			}
		}
		p += int(n)
	}
	return nil
}

// uvarint reads an xz variable-length integer at b[*p:end] (at most 9 bytes, little-endian base 128).
func uvarint(b []byte, p *int, end int) (uint64, bool) {
	var v uint64
	for i := 0; i < 9; i++ {
		if *p >= end || *p >= len(b) {
			return 0, false
		}
		c := b[*p]
		*p++
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, true
		}
	}
	return 0, false
}
