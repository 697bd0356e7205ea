package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Explain implements [family.Family]. BuildKit reports a package whose bytes are not the lock's
// as "digest mismatch sha256:…", which means nothing to a user, and reports a 404 the same way
// (it hashes the empty body): the package is named by its sha256 in the message, and the mirror
// is asked whether it has the file at all.
//
// Downloads that failed after retries ([*family.DownloadError]) are named by the package whose
// URL is in BuildKit's message, else by asking the mirror for each file until one fails.
func (Family) Explain(ctx context.Context, r family.Request, lk *lock.Lock, err error) error {
	var de *family.DownloadError
	if errors.As(err, &de) {
		return explainDownload(ctx, r, lk, de, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "digest mismatch") {
		return err
	}
	var pkg *lock.Package
	what := "package"
	if k := lk.Kernel; k != nil && strings.Contains(msg, "sha256:"+k.SHA256) {
		pkg, what = &k.Package, "kernel package"
	}
	for i := range lk.Packages {
		if pkg == nil && strings.Contains(msg, "sha256:"+lk.Packages[i].SHA256) {
			pkg = &lk.Packages[i]
		}
	}
	if pkg == nil {
		return err
	}
	if u := packageURL(r, pkg); u != "" {
		// BuildKit keeps the body of any answer, so a 404 or a 503 shows as a mismatch too: the
		// file is asked for again, and only other bytes now are other bytes.
		switch status, good, gerr := getChecked(ctx, u, pkg); {
		case status == http.StatusNotFound || status == http.StatusGone:
			return fmt.Errorf("%s %s %s: the mirror has no such file: %s (%d %s): %w",
				what, pkg.Name, pkg.Version, u, status, http.StatusText(status), err)
		case gerr != nil || status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
			return fmt.Errorf("%s %s %s: mirror %s: GET %s: %s: %w (%w)",
				what, pkg.Name, pkg.Version, hostOf(u), u, cause(status, gerr), family.ErrMirrorFault, err)
		case good:
			return fmt.Errorf("%s %s %s: mirror %s: GET %s: an answer that was not the file, and the file when asked again: %w (%w)",
				what, pkg.Name, pkg.Version, hostOf(u), u, family.ErrMirrorFault, err)
		}
	}
	return fmt.Errorf("%s %s %s (%s): the mirror's bytes do not match the lock's sha256 %s: %w",
		what, pkg.Name, pkg.Version, pkg.Filename, pkg.SHA256, err)
}

// packageURL is where the build fetched pkg from, or "" when the mirror cannot be told.
func packageURL(r family.Request, pkg *lock.Package) string {
	req, err := request(r, true)
	if err != nil {
		return ""
	}
	for _, s := range req.Suites {
		if s.Name == pkg.Suite {
			return strings.TrimSuffix(s.URI, "/") + "/" + pkg.Filename
		}
	}
	return ""
}

// getChecked downloads u and says whether its bytes are pkg's (at most its size, in a bound of
// 30 s plus 256 KiB/s).
func getChecked(ctx context.Context, u string, pkg *lock.Package) (status int, good bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(pkg.Size/(256<<10))*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, false, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, pkg.Size+1))
	if err != nil {
		return resp.StatusCode, false, err
	}
	return resp.StatusCode, n == pkg.Size && hex.EncodeToString(h.Sum(nil)) == pkg.SHA256, nil
}

// hostOf is the host of URL u.
func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

// cause says in words what head found wrong ("" for a good answer).
func cause(status int, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case status >= 400:
		return fmt.Sprintf("%d %s", status, http.StatusText(status))
	}
	return ""
}

// probeTimeout bounds each question explainDownload asks the mirror.
const probeTimeout = 10 * time.Second

// head asks the mirror for u: its status, or why there is none.
func head(ctx context.Context, u string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return 0, fmt.Errorf("no answer in %s", probeTimeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// explainDownload names the package, the mirror and the file of downloads that failed after
// retries: the package whose URL or sha256 BuildKit's message holds, else the first (in the
// lock's order) that the mirror does not serve now.
func explainDownload(ctx context.Context, r family.Request, lk *lock.Lock, de *family.DownloadError, err error) error {
	type file struct {
		what string
		pkg  *lock.Package
		url  string
	}
	var files []file
	for i := range lk.Packages {
		if u := packageURL(r, &lk.Packages[i]); u != "" {
			files = append(files, file{"package", &lk.Packages[i], u})
		}
	}
	if k := lk.Kernel; k != nil {
		if u := packageURL(r, &k.Package); u != "" {
			files = append(files, file{"kernel package", &k.Package, u})
		}
	}
	// The mirror's answer now says what failed; BuildKit's words are kept only when it has none.
	name := func(f file, why string) error {
		if why == "" {
			why = de.Err.Error()
		}
		return &named{fmt.Sprintf("%s %s %s: mirror %s: GET %s: %s (%s)", f.what, f.pkg.Name, f.pkg.Version, hostOf(f.url), f.url, why, de.Retries()), err}
	}
	msg := de.Err.Error()
	for _, f := range files {
		if strings.Contains(msg, f.url) || strings.Contains(msg, "sha256:"+f.pkg.SHA256) {
			return name(f, cause(head(ctx, f.url)))
		}
	}
	// Ask for every file, eight at a time, and name the first that fails.
	causes := make([]string, len(files))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			causes[i] = cause(head(ctx, f.url))
		}()
	}
	wg.Wait()
	for i, f := range files {
		if causes[i] != "" {
			return name(f, causes[i])
		}
	}
	return fmt.Errorf("the downloads from the mirror failed, and it now serves every file: %w", err)
}

// named is an explanation whose words replace those of the error it wraps.
type named struct {
	msg string
	err error
}

func (e *named) Error() string { return e.msg }
func (e *named) Unwrap() error { return e.err }
