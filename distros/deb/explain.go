package deb

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// Explain implements [family.Family]. BuildKit reports a package whose bytes are not the lock's
// as "digest mismatch sha256:…", which means nothing to a user, and reports a 404 the same way
// (it hashes the empty body): the package is named by its sha256 in the message, and the mirror
// is asked whether it has the file at all.
func (Family) Explain(ctx context.Context, r family.Request, lk *lock.Lock, err error) error {
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
	if url := packageURL(r, pkg); url != "" {
		if status := headStatus(ctx, url); status == http.StatusNotFound || status == http.StatusGone {
			return fmt.Errorf("%s %s %s: the mirror has no such file: %s (%d %s): %w",
				what, pkg.Name, pkg.Version, url, status, http.StatusText(status), err)
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

// headStatus is the mirror's answer to a HEAD of url (0 when it gives none in 10 s).
func headStatus(ctx context.Context, url string) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
