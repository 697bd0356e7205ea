package build

import (
	"errors"
	"testing"
	"time"
)

func TestTransient(t *testing.T) {
	for _, tt := range []struct {
		err  string
		want bool
	}{
		{`Get "http://m/debian/pool/x.deb": dial tcp 127.0.0.1:9: connect: connection refused`, true},
		{`read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer`, true},
		{`Get "http://m/x.deb": EOF`, true},
		{`invalid response status 503`, true},
		{`invalid response status 429`, true},
		{`invalid response status 404`, false},
		{`digest mismatch sha256:ffb9: sha256:1204`, false},
		{`process "/bin/sh -c false" did not complete successfully: exit code: 1`, false},
	} {
		if got := transient(errors.New(tt.err)); got != tt.want {
			t.Errorf("transient(%q) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestDownloadTimeout(t *testing.T) {
	if got, want := DownloadTimeout(0), 2*time.Minute; got != want {
		t.Errorf("DownloadTimeout(0) = %s, want %s", got, want)
	}
	// The Kata example's downloads, about 140 MiB: two minutes plus 9m20s at 256 KiB/s.
	if got, want := DownloadTimeout(140<<20), 2*time.Minute+560*time.Second; got != want {
		t.Errorf("DownloadTimeout(140 MiB) = %s, want %s", got, want)
	}
}
