package main

// The mirror failing while the build downloads the locked packages (the resolution's faults are
// distros/deb's tests): BuildKit's HTTP source neither retries nor bounds a silent mirror, so
// the build solves the downloads first, retries a fault four times with a doubling pause, and
// then names the package, the mirror and the file.

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

func TestMirrorFaultsDuringBuild(t *testing.T) {
	h := newHarness(t)
	dir := writeManifest(t, manifest)
	h.run(dir, true, "lock", "m.cue")

	upstream := hostArchives(t)
	var mode atomic.Value // what the mirror does to iproute2's .deb
	mode.Store("")
	var failures atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		archive, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if strings.Contains(rest, "/iproute2_") && strings.HasSuffix(rest, ".deb") {
			switch mode.Load().(string) {
			case "503":
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			case "503 twice":
				if r.Method == http.MethodGet && failures.Add(1) <= 2 {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return
				}
			case "stall":
				<-r.Context().Done()
				return
			}
		}
		base, ok := upstream[archive]
		if !ok {
			http.NotFound(w, r)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, base+"/"+rest, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.ContentLength >= 0 {
			w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	mirror := srv.URL + "/debian"

	noOutput := func(t *testing.T, out string) {
		t.Helper()
		if i := strings.Index(out, "rootfsc build: "); i >= 0 {
			t.Log(out[i:])
		}
		if _, err := os.Stat(filepath.Join(dir, "rootfs")); !os.IsNotExist(err) {
			t.Errorf("output left behind after a failed build: %v", err)
		}
	}
	deb := `GET http://127\.0\.0\.1:\d+/debian/pool/\S+/iproute2_\S+_amd64\.deb: `
	t.Run("always 503", func(t *testing.T) {
		mode.Store("503")
		out := h.run(dir, false, "build", "--locked", "--mirror", mirror, "m.cue")
		want := regexp.MustCompile(`package iproute2 \S+: mirror 127\.0\.0\.1:\d+: ` + deb + `503 Service Unavailable \(gave up after 4 attempts\)$`)
		if !want.MatchString(strings.TrimSpace(out)) {
			t.Errorf("the error does not name the package, the mirror, the file and the retries:\n%s", tail([]byte(out)))
		}
		noOutput(t, out)
	})
	t.Run("stalled", func(t *testing.T) {
		mode.Store("stall")
		out := h.run(dir, false, "build", "--locked", "--download-timeout", "4s", "--mirror", mirror, "m.cue")
		want := regexp.MustCompile(`package iproute2 \S+: mirror 127\.0\.0\.1:\d+: ` + deb + `no answer in 10s \(the downloads were not complete after 4s, gave up after 4 attempts\)$`)
		if !want.MatchString(strings.TrimSpace(out)) {
			t.Errorf("the error does not name the stalled file and the bound:\n%s", tail([]byte(out)))
		}
		noOutput(t, out)
	})
	t.Run("mirror down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + l.Addr().String() + "/debian"
		l.Close()
		out := h.run(dir, false, "build", "--locked", "--mirror", down, "m.cue")
		// Every other package is in the daemon's cache from the runs above: iproute2 is the one
		// the build asks the mirror for.
		want := regexp.MustCompile(`package iproute2 \S+: mirror 127\.0\.0\.1:\d+: ` + deb + `dial tcp 127\.0\.0\.1:\d+: connect: connection refused \(gave up after 4 attempts\)$`)
		if !want.MatchString(strings.TrimSpace(out)) {
			t.Errorf("the error does not name the package, the mirror down and the retries:\n%s", tail([]byte(out)))
		}
		noOutput(t, out)
	})
	t.Run("503 twice, then served", func(t *testing.T) {
		mode.Store("503 twice")
		h.run(dir, true, "build", "--locked", "--mirror", mirror, "m.cue")
		if n := failures.Load(); n < 3 {
			t.Errorf("the mirror was asked %d times for iproute2, want the two failures and a success", n)
		}
		if _, err := os.Stat(filepath.Join(dir, "rootfs", "usr", "bin", "ip")); err != nil {
			t.Errorf("the build after two 503s did not export the rootfs: %v", err)
		}
	})
}
