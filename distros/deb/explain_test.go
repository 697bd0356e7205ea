package deb

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
