package deb

// A mirror that is down, slow or failing during resolution: transient faults are retried a few
// times with backoff, then the error names the mirror's host and the file.

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fastRetries makes the retry schedule short enough for tests.
func fastRetries(t *testing.T) {
	oldB, oldS, oldT := fetchBackoff, fetchStall, fetchTimeout
	fetchBackoff, fetchStall, fetchTimeout = 5*time.Millisecond, 500*time.Millisecond, time.Second
	t.Cleanup(func() { fetchBackoff, fetchStall, fetchTimeout = oldB, oldS, oldT })
}

// counted returns a handle func that applies fault to the first n requests for path (all of them
// when n < 0) and counts requests for path.
func counted(path string, n int, fault func(w http.ResponseWriter, r *http.Request)) (func(w http.ResponseWriter, r *http.Request) bool, func() int) {
	var mu sync.Mutex
	hits := 0
	return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path {
				return false
			}
			mu.Lock()
			hits++
			h := hits
			mu.Unlock()
			if n >= 0 && h > n {
				return false
			}
			fault(w, r)
			return true
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return hits
		}
}

func status(code int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

// reset closes the connection without an answer, with a TCP RST.
func reset(w http.ResponseWriter, r *http.Request) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// stall answers nothing until the client gives up.
func stall(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// trickle sends a byte every 20 ms, too slowly to finish and too steadily to stall.
func trickle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "400")
	for range 400 {
		if _, err := w.Write([]byte("-")); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stallBody sends the headers and part of the body, then nothing.
func stallBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "400") // less than any fake index, so the limit does not refuse it first
	w.Write([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n"))
	w.(http.Flusher).Flush()
	stall(w, r)
}

func TestResolveTransientFaults(t *testing.T) {
	fastRetries(t)
	const inRelease = "/debian/dists/stable/InRelease"
	const packages = "/debian/dists/stable-updates/main/binary-amd64/Packages.xz"
	tests := []struct {
		name     string
		path     string
		fault    func(w http.ResponseWriter, r *http.Request)
		n        int // faulty answers before good ones; -1: always
		wantHits int
		resets   bool   // the fault resets connections
		wantErr  string // "" for success; %s is the mirror's host
	}{
		{name: "503 then fine", path: inRelease, fault: status(503), n: 2, wantHits: 3},
		{name: "reset then fine", path: packages, fault: reset, n: 3, wantHits: 4, resets: true},
		{name: "no answer then fine", path: inRelease, fault: stall, n: 1, wantHits: 2},
		{name: "stalled body then fine", path: packages, fault: stallBody, n: 1, wantHits: 2},
		{name: "always 500", path: inRelease, fault: status(500), n: -1, wantHits: 4,
			wantErr: "suite stable: mirror %s: GET http://%s" + inRelease + ": 500 Internal Server Error (gave up after 4 attempts)"},
		{name: "always reset", path: packages, fault: reset, n: -1, wantHits: 4, resets: true,
			wantErr: "suite stable-updates: mirror %s: GET http://%s" + packages + ": "},
		{name: "never answers", path: inRelease, fault: stall, n: -1, wantHits: 4,
			wantErr: "suite stable: mirror %s: GET http://%s" + inRelease + ": no data for 500ms (gave up after 4 attempts)"},
		{name: "trickles", path: inRelease, fault: trickle, n: -1, wantHits: 4,
			wantErr: "suite stable: mirror %s: GET http://%s" + inRelease + ": not complete after 1s (gave up after 4 attempts)"},
		{name: "404 is not retried", path: inRelease, fault: status(404), n: -1, wantHits: 1,
			wantErr: "suite stable: mirror %s has no such file: http://%s" + inRelease + " (404 Not Found)"},
		{name: "403 is not retried", path: packages, fault: status(403), n: -1, wantHits: 1,
			wantErr: "suite stable-updates: mirror %s: GET http://%s" + packages + ": 403 Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handle, hits := counted(tt.path, tt.n, tt.fault)
			uri, keyring := fakeArchive(t, archiveOpts{handle: handle})
			host := strings.TrimSuffix(strings.TrimPrefix(uri, "http://"), "/debian")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := Resolve(ctx, fakeRequest(uri, keyring, "app"), Opts{Now: func() time.Time { return testNow }})
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Resolve() took %s", d)
			}
			t.Logf("Resolve() error: %v", err)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Resolve() = %v, want success after %d faults", err, tt.n)
				}
			} else {
				want := strings.ReplaceAll(tt.wantErr, "%s", host)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Resolve() error = %v, want containing %q", err, want)
				}
			}
			// net/http itself retries a GET once when a reused connection is reset before an
			// answer, so resets may reach the server up to twice per attempt.
			most := tt.wantHits
			if tt.resets {
				most *= 2
			}
			if got := hits(); got < tt.wantHits || got > most {
				t.Errorf("%s requested %d times, want %d to %d", tt.path, got, tt.wantHits, most)
			}
		})
	}
}

func TestResolveMirrorDown(t *testing.T) {
	fastRetries(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	uri := srv.URL + "/debian"
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close() // nothing listens on the port now
	_, keyring := fakeArchive(t, archiveOpts{})
	req := fakeRequest(uri, keyring, "app")
	req.Suites = req.Suites[:1]
	_, err := Resolve(context.Background(), req, Opts{Now: func() time.Time { return testNow }})
	for _, want := range []string{
		"suite stable: mirror " + host + ": GET http://" + host + "/debian/dists/stable/InRelease: ",
		"connection refused (gave up after 4 attempts)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve() error = %v, want containing %q", err, want)
		}
	}
}

func TestResolveCancelledNotRetried(t *testing.T) {
	fastRetries(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The user gives up (Ctrl-C) while the mirror is not answering.
	handle, hits := counted("/debian/dists/stable/InRelease", -1, func(w http.ResponseWriter, r *http.Request) {
		cancel()
		stall(w, r)
	})
	uri, keyring := fakeArchive(t, archiveOpts{handle: handle})
	_, err := Resolve(ctx, fakeRequest(uri, keyring, "app"), Opts{Now: func() time.Time { return testNow }})
	if err == nil || !strings.Contains(err.Error(), "/debian/dists/stable/InRelease: context canceled") {
		t.Fatalf("Resolve() error = %v, want the context's cancellation", err)
	}
	if got := hits(); got != 1 {
		t.Errorf("InRelease requested %d times after the context ended, want 1", got)
	}
}
