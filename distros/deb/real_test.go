package deb

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros/deb/unpack"
	"github.com/rootfsc/rootfsc/distros/lock"
)

var realPackages = []string{"systemd", "init", "iptables", "chrony", "kmod", "dbus", "libseccomp2"}

func bookwormRequest(t *testing.T) Request {
	t.Helper()
	srcs, err := Mirrors()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bookworm", "bookworm-updates", "bookworm-security"}
	var suites []SuiteSource
	for _, s := range srcs {
		if slices.Contains(want, s.Name) {
			suites = append(suites, s)
		}
	}
	if len(suites) != len(want) {
		t.Skipf("host apt sources lack %v (have %+v)", want, srcs)
	}
	return Request{Distro: "debian", Release: "bookworm", Arch: "amd64", Suites: suites, Packages: realPackages}
}

func TestResolveRealMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("resolves against the host's real mirror")
	}
	req := bookwormRequest(t)
	opts := Opts{CacheDir: t.TempDir()}
	start := time.Now()
	l, err := Resolve(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first Resolve: %d packages in %s", len(l.Packages), time.Since(start))
	names := lockNames(l)
	if !slices.Contains(names, "usr-is-merged") || slices.Contains(names, "usrmerge") {
		t.Errorf("want usr-is-merged and not usrmerge, got %v", names)
	}
	for _, n := range append(slices.Clone(realPackages), "apt", "base-files", "dpkg") {
		if !slices.Contains(names, n) {
			t.Errorf("package %s missing from the lock", n)
		}
	}
	if n := len(l.Packages); n < 115 || n > 140 {
		t.Errorf("got %d packages, want about 127: %v", n, names)
	}
	if len(l.Suites) != 3 || l.SourceDateEpoch == 0 || l.InputDigest != InputDigest(req) {
		t.Errorf("bad lock header: %+v", l.Suites)
	}
	start = time.Now()
	l2, err := Resolve(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cached Resolve: %s", time.Since(start))
	if diff := cmp.Diff(l, l2); diff != "" {
		t.Errorf("second Resolve() mismatch (-first +second):\n%s", diff)
	}
}

func TestResolveRealMirrorKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("resolves against the host's real mirror")
	}
	req := bookwormRequest(t)
	opts := Opts{CacheDir: t.TempDir()}
	plain, err := Resolve(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	req.Kernel = "linux-image-amd64"
	l, err := Resolve(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	k := l.Kernel
	if k == nil {
		t.Fatal("Resolve() with a kernel package gave a lock without a kernel")
	}
	t.Logf("kernel: %s %s (%s, %s), release %s, %d bytes, sha256 %s", k.Name, k.Version, k.Suite, k.Filename, k.Release, k.Size, k.SHA256)
	if !regexp.MustCompile(`^6\.1\.0-[0-9]+-amd64$`).MatchString(k.Release) {
		t.Errorf("kernel release %q, want 6.1.0-N-amd64", k.Release)
	}
	if k.Name != "linux-image-"+k.Release || k.Requested != "linux-image-amd64" {
		t.Errorf("kernel %s (requested %s), want linux-image-%s for linux-image-amd64", k.Name, k.Requested, k.Release)
	}
	if len(k.SHA256) != 64 || k.Size <= 0 || k.Filename == "" {
		t.Errorf("kernel not pinned: %+v", k)
	}
	for _, n := range lockNames(l) {
		if strings.HasPrefix(n, "linux-image-") || n == "initramfs-tools" || n == "linux-base" {
			t.Errorf("kernel package or its dependency %s among the installed packages", n)
		}
	}
	if diff := cmp.Diff(plain.Packages, l.Packages); diff != "" {
		t.Errorf("the kernel package changed the installed packages (-without +with):\n%s", diff)
	}
	if l.InputDigest == plain.InputDigest || l.InputDigest != InputDigest(req) {
		t.Errorf("InputDigest with kernel %s, without %s", l.InputDigest, plain.InputDigest)
	}
	if why := StaleReason(req, plain); why != "kernel package linux-image-amd64 requested but not in the lock" {
		t.Errorf("StaleReason() = %q", why)
	}
}

// The release the lock records is the /lib/modules directory the real package ships, and Only
// lays down nothing but the modules.
func TestBootstrapRealKernelModules(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads a kernel package from the host's real mirror")
	}
	if os.Getenv("ROOTFSC_TEST_KERNEL") == "" {
		t.Skip("set ROOTFSC_TEST_KERNEL=1 to download and extract a real kernel package (70 MB, 400 MB unpacked, slow)")
	}
	req := bookwormRequest(t)
	req.Kernel = "linux-image-amd64"
	l, err := Resolve(context.Background(), req, Opts{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	uri := ""
	for _, s := range req.Suites {
		if s.Name == l.Kernel.Suite {
			uri = s.URI
		}
	}
	start := time.Now()
	b, err := httpGet(context.Background(), http.DefaultClient, uri+"/"+l.Kernel.Filename, l.Kernel.Size, "the size the lock pins")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkHash(b, fileHash{l.Kernel.Size, l.Kernel.SHA256}); err != nil {
		t.Fatalf("%s: %v", l.Kernel.Filename, err)
	}
	deb := filepath.Join(t.TempDir(), filepath.Base(l.Kernel.Filename))
	if err := os.WriteFile(deb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("downloaded %s (%d bytes) in %s", l.Kernel.Filename, len(b), time.Since(start))
	root := t.TempDir()
	start = time.Now()
	if err := unpack.Bootstrap(context.Background(), root, []string{deb}, unpack.BootstrapOpts{UsrMerge: true, Only: []string{"lib/modules/", "usr/lib/modules/"}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("extracted the modules in %s", time.Since(start))
	dir := filepath.Join(root, "usr/lib/modules", l.Kernel.Release)
	for _, f := range []string{"modules.order", "modules.builtin", "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after extraction: %v", err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "usr/lib/modules"))
	if err != nil || len(entries) != 1 {
		t.Errorf("usr/lib/modules holds %v (%v), want only %s", entries, err, l.Kernel.Release)
	}
	for _, p := range []string{"boot", "usr/share", "var", "etc"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s extracted, want only the modules", p)
		}
	}
}

func lockNames(l *lock.Lock) []string {
	var out []string
	for _, p := range l.Packages {
		out = append(out, p.Name)
	}
	return out
}

// mmdebstrapAllowed lists packages on which rootfsc and mmdebstrap are known to differ.
var mmdebstrapAllowed = map[string]string{}

func TestMatchesMmdebstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mmdebstrap against the real mirror")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("mmdebstrap not installed")
	}
	if os.Getenv("ROOTFSC_TEST_MMDEBSTRAP") == "" {
		t.Skip("set ROOTFSC_TEST_MMDEBSTRAP=1 to compare against mmdebstrap (slow)")
	}
	req := bookwormRequest(t)
	l, err := Resolve(context.Background(), req, Opts{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "root")
	args := []string{"--variant=required", "--include=" + strings.Join(realPackages, ","),
		"--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", "--skip=cleanup/apt", "bookworm", dir}
	for _, s := range req.Suites {
		args = append(args, "deb "+s.URI+" "+s.Name+" "+strings.Join(s.Components, " "))
	}
	if out, err := exec.Command("mmdebstrap", args...).CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(dir, "var/lib/dpkg"), "-W", "-f=${Package} ${Version}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	theirs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		n, v, _ := strings.Cut(line, " ")
		theirs[n] = v
	}
	ours := map[string]string{}
	for _, p := range l.Packages {
		ours[p.Name] = p.Version
	}
	var diffs []string
	for n, v := range ours {
		if tv, ok := theirs[n]; !ok {
			diffs = append(diffs, "only rootfsc: "+n)
		} else if tv != v {
			diffs = append(diffs, "version of "+n+": rootfsc "+v+", mmdebstrap "+tv)
		}
	}
	for n := range theirs {
		if _, ok := ours[n]; !ok {
			diffs = append(diffs, "only mmdebstrap: "+n)
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Log(d)
		name := d[strings.LastIndex(d, " ")+1:]
		if strings.HasPrefix(d, "version of ") {
			name = strings.TrimSuffix(strings.Fields(d)[2], ":")
		}
		if _, ok := mmdebstrapAllowed[name]; !ok {
			t.Errorf("undocumented difference: %s", d)
		}
	}
}

func TestExtractRealDebs(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads packages from the host's real mirror")
	}
	req := bookwormRequest(t)
	l, err := Resolve(context.Background(), req, Opts{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	uris := map[string]string{}
	for _, s := range req.Suites {
		uris[s.Name] = s.URI
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		os.MkdirAll(filepath.Join(root, "usr", d), 0o755)
		os.Symlink("usr/"+d, filepath.Join(root, d))
	}
	debs := t.TempDir()
	for _, p := range l.Packages {
		if !slices.Contains([]string{"base-files", "bash", "coreutils", "libc6", "usr-is-merged", "passwd"}, p.Name) {
			continue
		}
		b, err := httpGet(context.Background(), http.DefaultClient, uris[p.Suite]+"/"+p.Filename, p.Size, "the size the lock pins")
		if err != nil {
			t.Fatal(err)
		}
		if err := checkHash(b, fileHash{p.Size, p.SHA256}); err != nil {
			t.Fatalf("%s: %v", p.Filename, err)
		}
		deb := filepath.Join(debs, filepath.Base(p.Filename))
		os.WriteFile(deb, b, 0o644)
		if err := unpack.Extract(context.Background(), deb, root); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"usr/bin/bash", "bin/bash", "usr/bin/ls", "lib64/ld-linux-x86-64.so.2", "etc/os-release"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("after extraction: %v", err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "bin")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("merged-/usr link bin replaced: %v", err)
	}
}

// recorder is a RoundTripper that records the URLs requested through it.
type recorder struct {
	mu   sync.Mutex
	urls []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.URL.String())
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// Debian's Releases say Acquire-By-Hash: yes and name their suite in Suite or Codename
// (bookworm-security is Suite: stable-security, Codename: bookworm-security); the resolver must
// accept them and fetch every index by hash.
func TestResolveRealMirrorByHash(t *testing.T) {
	if testing.Short() {
		t.Skip("resolves against the host's real mirror")
	}
	req := bookwormRequest(t)
	rec := &recorder{}
	if _, err := Resolve(context.Background(), req, Opts{Client: &http.Client{Transport: rec}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range req.Suites {
		n := 0
		for _, u := range rec.urls {
			if strings.HasPrefix(u, s.URI+"/dists/"+s.Name+"/main/binary-amd64/by-hash/SHA256/") {
				n++
			}
			if strings.HasSuffix(u, "/dists/"+s.Name+"/main/binary-amd64/Packages.xz") {
				t.Errorf("%s fetched by name, not by hash", u)
			}
		}
		if n != 1 {
			t.Errorf("suite %s: %d by-hash fetches of main's Packages, want 1 (requests: %v)", s.Name, n, rec.urls)
		}
	}
}
