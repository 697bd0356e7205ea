package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rootfsc/rootfsc/distros/family"
)

func TestExplain(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "chrony") {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	req := lowerRequest()
	req.Mirror = srv.URL + "/debian"
	lk := lowerLock()
	mismatch := func(sha string) error {
		return errors.New("failed to load cache key: digest mismatch sha256:" + sha + ": sha256:e3b0c442")
	}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"404", mismatch(sha('b')), "package chrony 4.3-2+deb12u1: the mirror has no such file: " + srv.URL + "/debian/pool/main/c/chrony/chrony_4.3-2+deb12u1_amd64.deb (404 Not Found)"},
		{"other bytes", mismatch(sha('c')), "package libssl3 3.0.11-1~deb12u2 (pool/updates/main/o/openssl/libssl3_3.0.11-1~deb12u2_amd64.deb): the mirror's bytes do not match the lock's sha256 " + sha('c')},
		{"no package", mismatch(sha('9')), "failed to load cache key: digest mismatch sha256:" + sha('9')},
		{"another error", errors.New("exec failed"), "exec failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Family{}.Explain(context.Background(), req, lk, tt.err)
			if !strings.HasPrefix(got.Error(), tt.want) {
				t.Errorf("Explain() = %q, want it to start with %q", got, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("Explain() does not wrap the build's error")
			}
		})
	}
}

// A download that failed: BuildKit keeps any answer's body, so a 503 or a refused connection
// shows as a mismatch, and the file is asked for again to tell a fault (retried) from other
// bytes (not); after the retries, the package, the mirror and the file are named.
func TestExplainDownloadFaults(t *testing.T) {
	good := []byte("the real chrony package")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "chrony"):
			w.Write(good)
		case strings.Contains(r.URL.Path, "zlib1g"):
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("other bytes"))
		}
	}))
	defer srv.Close()
	req := lowerRequest()
	req.Mirror = srv.URL + "/debian"
	lk := lowerLock()
	sum := sha256.Sum256(good)
	lk.Packages[1].SHA256, lk.Packages[1].Size = hex.EncodeToString(sum[:]), int64(len(good))
	mismatch := func(sha string) error {
		return errors.New("digest mismatch sha256:ffb9: sha256:" + sha)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		name  string
		err   error
		want  string
		fault bool
	}{
		{"the file when asked again", mismatch(lk.Packages[1].SHA256),
			"package chrony 4.3-2+deb12u1: mirror " + host + ": GET " + srv.URL + "/debian/pool/main/c/chrony/chrony_4.3-2+deb12u1_amd64.deb: an answer that was not the file, and the file when asked again", true},
		{"503 when asked again", mismatch(sha('d')),
			"package zlib1g 1:1.2.13.dfsg-1: mirror " + host + ": GET " + srv.URL + "/debian/pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb: 503 Service Unavailable", true},
		{"other bytes again", mismatch(sha('a')), "package base-files 12.4+deb12u2 (pool/main/b/base-files/base-files_12.4+deb12u2_amd64.deb): the mirror's bytes do not match the lock's sha256 " + sha('a'), false},
		{"after the retries, by sha256", &family.DownloadError{Attempts: 4, Err: mismatch(sha('d'))},
			"package zlib1g 1:1.2.13.dfsg-1: mirror " + host + ": GET " + srv.URL + "/debian/pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb: 503 Service Unavailable (gave up after 4 attempts)", false},
		{"after the retries, asking every file", &family.DownloadError{Attempts: 4, Stalled: time.Minute, Err: errors.New("context deadline exceeded")},
			"package zlib1g 1:1.2.13.dfsg-1: mirror " + host + ": GET " + srv.URL + "/debian/pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb: 503 Service Unavailable (the downloads were not complete after 1m0s, gave up after 4 attempts)", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Family{}.Explain(context.Background(), req, lk, tt.err)
			if !strings.HasPrefix(got.Error(), tt.want) {
				t.Errorf("Explain() = %q, want it to start with %q", got, tt.want)
			}
			if f := errors.Is(got, family.ErrMirrorFault); f != tt.fault {
				t.Errorf("Explain() is a mirror fault: %v, want %v", f, tt.fault)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("Explain() does not wrap the build's error")
			}
		})
	}
}
