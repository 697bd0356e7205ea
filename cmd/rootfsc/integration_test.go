package main

// Integration tests: the real rootfsc binary, a real buildkitd (rootfsc's embedded daemon, started
// in a state directory of the test's own and stopped at the end), the real Debian mirror from the
// host's apt sources. `make test` builds the binaries and sets ROOTFSC_BIN; `go test -short` skips
// this tier.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/engine"
)

const manifest = `distro:  "debian"
release: "bookworm"
packages: ["iproute2"]
`

// binDir is where `make test` put rootfsc, buildkitd and buildctl.
func binDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration tier: needs buildkitd, runc and the mirror")
	}
	d := os.Getenv("ROOTFSC_BIN")
	if d == "" {
		t.Skip("ROOTFSC_BIN is not set: run the integration tier with `make test`")
	}
	return d
}

// harness is one embedded daemon in a private state directory, stopped when the test ends.
type harness struct {
	t     testing.TB
	bin   string
	state string
	env   []string
}

func newHarness(t testing.TB) *harness {
	bin := binDir(t)
	state, err := os.MkdirTemp("", "rootfsc-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := engine.Stop(state); err != nil {
			t.Logf("stopping buildkitd: %v", err)
		}
		os.RemoveAll(state)
	})
	env := append(os.Environ(), "ROOTFSC_STATE_DIR="+state, "PATH="+bin+":"+os.Getenv("PATH"))
	return &harness{t: t, bin: bin, state: state, env: env}
}

// run runs rootfsc in dir and returns stdout+stderr; it fails the test unless the exit code is as wanted.
func (h *harness) run(dir string, wantOK bool, args ...string) string {
	h.t.Helper()
	cmd := exec.Command(filepath.Join(h.bin, "rootfsc"), args...)
	cmd.Dir, cmd.Env = dir, h.env
	out, err := cmd.CombinedOutput()
	if (err == nil) != wantOK {
		h.t.Fatalf("rootfsc %s: err=%v, want ok=%v\n%s", strings.Join(args, " "), err, wantOK, tail(out))
	}
	return string(out)
}

// stdout runs rootfsc in dir and returns its stdout alone; it fails the test on an error.
func (h *harness) stdout(dir string, args ...string) string {
	h.t.Helper()
	cmd := exec.Command(filepath.Join(h.bin, "rootfsc"), args...)
	cmd.Dir, cmd.Env = dir, h.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("rootfsc %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.Bytes()))
	}
	return string(out)
}

func tail(b []byte) string {
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

func writeManifest(t *testing.T, text string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.cue"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildDebian(t *testing.T) {
	h := newHarness(t)
	dir := writeManifest(t, manifest)
	h.run(dir, true, "build", "--progress=plain", "-o", "type=dir,dest=rootfs", "m.cue")
	root := filepath.Join(dir, "rootfs")
	lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("packages installed", func(t *testing.T) { assertInstalled(t, root, lk) })
	t.Run("usable", func(t *testing.T) {
		if out, err := exec.Command("chroot", root, "/bin/sh", "-c", "true").CombinedOutput(); err != nil {
			t.Errorf("chroot /bin/sh -c true: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/systemd")); err != nil {
			t.Error(err)
		}
		if fi, err := os.Lstat(filepath.Join(root, "bin")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("/bin is not the merged-/usr link: %v", err)
		}
	})
	t.Run("owners kept", func(t *testing.T) { assertOwners(t, root) })
	t.Run("second build runs no exec", func(t *testing.T) {
		out := h.run(dir, true, "build", "--locked", "--progress=rawjson", "-o", "type=tar,dest=rootfs.tar", "m.cue")
		if ran := uncachedExecs(t, out); len(ran) > 0 {
			t.Errorf("steps that ran again: %q\n%s", ran, tail([]byte(out)))
		}
	})
	t.Run("llb piped to buildctl", func(t *testing.T) {
		def := h.stdout(dir, "llb", "--locked", "m.cue")
		cmd := exec.Command(filepath.Join(h.bin, "buildctl"), "--addr", "unix://"+filepath.Join(h.state, "buildkitd.sock"),
			"build", "--local", "rootfsc-helper="+h.bin,
			"--output", fmt.Sprintf("type=tar,dest=%s,source-date-epoch=%d", filepath.Join(dir, "buildctl.tar"), lk.SourceDateEpoch))
		cmd.Stdin = strings.NewReader(def)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("buildctl build: %v\n%s", err, tail(out))
		}
		if a, b := fileSum(t, filepath.Join(dir, "buildctl.tar")), fileSum(t, filepath.Join(dir, "rootfs.tar")); a != b {
			t.Errorf("buildctl's tar %s differs from rootfsc's %s", a, b)
		}
	})
}

// assertInstalled requires every package of the lock, and no other, installed (ii) in root.
func assertInstalled(t *testing.T, root string, lk *lock.Lock) {
	t.Helper()
	out, err := exec.Command("chroot", root, "dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query in the rootfs: %v", err)
	}
	var got, want []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got = append(got, strings.TrimSpace(l))
	}
	for _, p := range lk.Packages {
		want = append(want, p.Name+" "+p.Version+" ii")
	}
	sort.Strings(got)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dpkg-query -W mismatch (-lock +rootfs):\n%s", diff)
	}
}

// assertOwners requires the owners that packages give (chrony's folder, shadow's group) in root.
func assertOwners(t *testing.T, root string) {
	t.Helper()
	uid := lookupID(t, filepath.Join(root, "etc/passwd"), "_chrony")
	fi, err := os.Stat(filepath.Join(root, "var/lib/chrony"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Sys().(*syscall.Stat_t).Uid; int(got) != uid || uid == 0 {
		t.Errorf("/var/lib/chrony owner = %d, want _chrony (%d)", got, uid)
	}
	fi, err = os.Stat(filepath.Join(root, "etc/shadow"))
	if err != nil {
		t.Fatal(err)
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; int(gid) != lookupID(t, filepath.Join(root, "etc/group"), "shadow") {
		t.Errorf("/etc/shadow group = %d, want shadow", gid)
	}
}

// uncachedExecs lists the base-layer steps of a rawjson progress log that completed without
// being CACHED; it fails when the log shows no base step at all, so it cannot pass vacuously.
func uncachedExecs(t *testing.T, log string) []string {
	t.Helper()
	ran, seen := stepsRun(t, log, "base:")
	if len(seen) == 0 {
		t.Fatalf("no base step in the progress log:\n%s", tail([]byte(log)))
	}
	return ran
}

// stepsRun reads a rawjson progress log and returns, among the steps whose names start with one
// of prefixes, those that were not CACHED, and all of them.
func stepsRun(t testing.TB, log string, prefixes ...string) (ran, seen []string) {
	t.Helper()
	type state struct{ cached, completed bool }
	steps := map[string]*state{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var st struct {
			Vertexes []struct {
				Name      string
				Cached    bool
				Completed *json.RawMessage
			}
		}
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			t.Fatalf("progress line %q: %v", line, err)
		}
		for _, v := range st.Vertexes {
			match := false
			for _, p := range prefixes {
				match = match || strings.HasPrefix(v.Name, p)
			}
			if !match {
				continue
			}
			s := steps[v.Name]
			if s == nil {
				s = &state{}
				steps[v.Name] = s
			}
			s.cached = s.cached || v.Cached
			s.completed = s.completed || v.Completed != nil
		}
	}
	for n, s := range steps {
		seen = append(seen, n)
		if !s.cached {
			ran = append(ran, n)
		}
	}
	sort.Strings(ran)
	sort.Strings(seen)
	return ran, seen
}

func lookupID(t *testing.T, file, name string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[0] == name {
			var id int
			fmt.Sscan(f[2], &id)
			return id
		}
	}
	t.Fatalf("%s not in %s", name, file)
	return -1
}

func fileSum(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hostArchives maps each archive of the host's apt sources ("debian", "debian-security") to its
// mirror URI, as rootfsc's default mirror does.
func hostArchives(t testing.TB) map[string]string {
	t.Helper()
	var files []string
	for _, g := range []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d/*"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	srcs, err := deb.Mirrors(files...)
	if err != nil {
		t.Fatal(err)
	}
	upstream := map[string]string{}
	for _, s := range srcs {
		upstream[s.Archive] = s.URI
	}
	return upstream
}

// mirrorProxy serves the host's Debian mirror on 127.0.0.1, passing each response through tamper.
func mirrorProxy(t *testing.T, tamper func(path string, body []byte) []byte) string {
	t.Helper()
	upstream := hostArchives(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		archive, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		base, ok := upstream[archive]
		if !ok {
			http.NotFound(w, r)
			return
		}
		resp, err := http.Get(base + "/" + rest)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if resp.StatusCode == http.StatusOK {
			// A tamper function that returns nil hides the file.
			if body = tamper(rest, body); body == nil {
				http.NotFound(w, r)
				return
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/debian"
}

func TestTamperedPackage(t *testing.T) {
	h := newHarness(t)
	dir := writeManifest(t, manifest)
	mirror := mirrorProxy(t, func(path string, body []byte) []byte {
		if strings.Contains(path, "/iproute2_") && strings.HasSuffix(path, ".deb") {
			body = append([]byte(nil), body...)
			body[len(body)/2] ^= 0xff
		}
		return body
	})
	out := h.run(dir, false, "build", "--progress=plain", "--mirror", mirror, "m.cue")
	if !regexp.MustCompile(`package iproute2 \S+ \(pool/\S+/iproute2_\S+\.deb\): the mirror's bytes do not match the lock's sha256 [0-9a-f]{64}`).MatchString(out) {
		t.Errorf("the error does not name the tampered package and the lock's sha256:\n%s", tail([]byte(out)))
	}
	if _, err := os.Stat(filepath.Join(dir, "rootfs")); !os.IsNotExist(err) {
		t.Errorf("output left behind after a failed build: %v", err)
	}
	assertNoTemp(t, dir)
}

// TestMissingPackage: a mirror without a locked package's file. BuildKit hashes the empty body of
// the 404 and reports a digest mismatch; rootfsc says the mirror has no such file, with the URL.
func TestMissingPackage(t *testing.T) {
	h := newHarness(t)
	dir := writeManifest(t, manifest)
	h.run(dir, true, "lock", "m.cue")
	mirror := mirrorProxy(t, func(path string, body []byte) []byte {
		if strings.Contains(path, "/iproute2_") && strings.HasSuffix(path, ".deb") {
			return nil
		}
		return body
	})
	out := h.run(dir, false, "build", "--locked", "--progress=plain", "--mirror", mirror, "m.cue")
	if !regexp.MustCompile(`package iproute2 \S+: the mirror has no such file: http://127\.0\.0\.1:\d+/debian/pool/\S+/iproute2_\S+\.deb \(404 Not Found\)`).MatchString(out) {
		t.Errorf("the error does not say the mirror has no such file, with its URL:\n%s", tail([]byte(out)))
	}
	if _, err := os.Stat(filepath.Join(dir, "rootfs")); !os.IsNotExist(err) {
		t.Errorf("output left behind after a failed build: %v", err)
	}
}

func TestBadSignature(t *testing.T) {
	h := newHarness(t)
	dir := writeManifest(t, manifest)
	mirror := mirrorProxy(t, func(path string, body []byte) []byte {
		if strings.HasSuffix(path, "dists/bookworm/InRelease") {
			body = bytes.Replace(body, []byte("Origin: Debian"), []byte("Origin: Debiam"), 1)
		}
		return body
	})
	out := h.run(dir, false, "build", "--mirror", mirror, "m.cue")
	if !regexp.MustCompile(`suite bookworm: bad signature on http://127\.0\.0\.1:\d+/debian/dists/bookworm/InRelease: `).MatchString(out) {
		t.Errorf("the error does not name the suite, the InRelease and the bad signature:\n%s", out)
	}
	for _, p := range []string{"rootfs", "m.cue.lock.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after a failed resolution", p)
		}
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary output left behind: %s", e.Name())
		}
	}
}
