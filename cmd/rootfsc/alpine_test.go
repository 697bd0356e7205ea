package main

// The Alpine (apk family) integration test: Alpine's mirror is not reachable from our machines,
// so the test builds a signed fixture repository in Go (distros/apk/apktest) and serves it on
// 127.0.0.1. Its busybox is the host's static busybox (Debian's busybox-static, which `make
// deps` installs) repackaged as an .apk; the other packages of osbuilder's Alpine set stand in
// with small files and Alpine's dependency shapes (so:, cmd: provides, a provider_priority).
//
// The fixture is signed with a key of the test's own, which Alpine's built-in definition does not
// hold: `rootfsc lock` refuses it (TestAlpineUnknownKey), and one that takes the name of Alpine's
// key fails `rootfsc build` with a bad signature (TestAlpineBadSignature). TestBuildAlpine builds
// as a user whose repository has a key of its own does: a distro scaffolded with `rootfsc distro
// new --family apk` (Alpine 3.20 as built in, TestAPKTemplateIsAlpine in package cue) beside the
// manifest, with the fixture's key added, then `rootfsc lock` and `rootfsc build --locked`. From
// the index on, everything is the code path of a live Alpine mirror.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros/apk/apktest"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// alpineMirror is a fixture mirror whose files a test may change between requests.
type alpineMirror struct {
	url  string
	key  *apktest.Key
	mu   sync.Mutex
	file map[string][]byte
	pkgs map[string]*apktest.Built
}

func (m *alpineMirror) set(path string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.file[path] = b
}

func newAlpineMirror(t *testing.T, keyName string) *alpineMirror {
	t.Helper()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox on the host (apt-get install busybox-static): %v", err)
	}
	key, err := apktest.NewKey(keyName)
	if err != nil {
		t.Fatal(err)
	}
	m := &alpineMirror{key: key, pkgs: map[string]*apktest.Built{}}
	const date = 1717200000
	dir := func(p string) apktest.File { return apktest.File{Path: p, Dir: true} }
	var main, community []*apktest.Built
	add := func(repo *[]*apktest.Built, p apktest.Package) {
		p.BuildDate = date
		b, err := apktest.Build(p, key)
		if err != nil {
			t.Fatal(err)
		}
		m.pkgs[p.Name] = b
		*repo = append(*repo, b)
	}
	add(&main, apktest.Package{Name: "musl", Version: "1.2.5-r0", Description: "fixture: the C library's place",
		Provides: []string{"so:libc.musl-x86_64.so.1=1"},
		Files:    []apktest.File{dir("lib"), {Path: "lib/ld-musl-x86_64.so.1", Mode: 0o755, Data: []byte("fixture\n")}, {Path: "lib/libc.musl-x86_64.so.1", Link: "ld-musl-x86_64.so.1"}}})
	add(&main, apktest.Package{Name: "alpine-baselayout", Version: "3.6.5-r0", Description: "fixture: the directory layout",
		Files: []apktest.File{dir("etc"), dir("bin"), dir("sbin"), dir("usr"), dir("usr/bin"), dir("usr/sbin"), dir("lib"), dir("dev"), dir("proc"), dir("sys"), dir("run"),
			{Path: "tmp", Dir: true, Mode: 0o1777}, {Path: "root", Dir: true, Mode: 0o700}, dir("var"), {Path: "var/tmp", Dir: true, Mode: 0o1777},
			{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\n")}, {Path: "etc/group", Data: []byte("root:x:0:root\n")},
			{Path: "etc/shadow", Mode: 0o640, Gid: 42, Data: []byte("root:*::0:::::\n")}}})
	add(&main, apktest.Package{Name: "busybox", Version: "1.36.1-r29", Description: "Debian's static busybox, repackaged",
		Depends:  []string{"so:libc.musl-x86_64.so.1"},
		Provides: []string{"cmd:busybox=1.36.1-r29", "cmd:sh=1.36.1-r29"},
		Files:    []apktest.File{dir("bin"), {Path: "bin/busybox", Mode: 0o755, Data: busybox}},
		// What Alpine's busybox does after install: the applets' links (/sbin/init among them).
		Scripts: map[string]string{".post-install": "#!/bin/busybox sh\n/bin/busybox --install -s\n"}})
	add(&main, apktest.Package{Name: "busybox-binsh", Version: "1.36.1-r29", Description: "/bin/sh as busybox",
		Depends: []string{"busybox=1.36.1-r29"}, Provides: []string{"/bin/sh", "cmd:sh=1.36.1-r29"}, ProviderPriority: 100,
		Files: []apktest.File{dir("bin"), {Path: "bin/sh", Link: "busybox"}}})
	add(&main, apktest.Package{Name: "alpine-base", Version: "3.20.3-r0", Description: "fixture: the meta package",
		Depends: []string{"alpine-baselayout", "busybox", "/bin/sh"}})
	add(&main, apktest.Package{Name: "bash", Version: "5.2.26-r0", Description: "fixture: bash's place",
		Depends: []string{"/bin/sh", "so:libc.musl-x86_64.so.1"}, Provides: []string{"cmd:bash=5.2.26-r0"},
		Files: []apktest.File{dir("usr"), dir("usr/share"), dir("usr/share/bash"), {Path: "usr/share/bash/fixture", Data: []byte("bash\n")}}})
	m.pkgs["bash-5.2.26-r0"] = m.pkgs["bash"]
	// An older bash, which only a pin chooses (TestAlpinePackages); m.pkgs has it by name and
	// version.
	add(&main, apktest.Package{Name: "bash", Version: "5.2.21-r0", Description: "fixture: an older bash",
		Depends: []string{"/bin/sh", "so:libc.musl-x86_64.so.1"}, Provides: []string{"cmd:bash=5.2.21-r0"},
		Files: []apktest.File{dir("usr"), dir("usr/share"), dir("usr/share/bash"), {Path: "usr/share/bash/fixture", Data: []byte("old bash\n")}}})
	m.pkgs["bash-5.2.21-r0"], m.pkgs["bash"] = m.pkgs["bash"], m.pkgs["bash-5.2.26-r0"]
	add(&main, apktest.Package{Name: "libseccomp", Version: "2.5.5-r1", Description: "fixture: libseccomp's place",
		Provides: []string{"so:libseccomp.so.2=2.5.5"},
		Files:    []apktest.File{dir("usr"), dir("usr/lib"), {Path: "usr/lib/libseccomp.so.2.5.5", Mode: 0o755, Data: []byte("fixture\n")}, {Path: "usr/lib/libseccomp.so.2", Link: "libseccomp.so.2.5.5"}}})
	add(&main, apktest.Package{Name: "iptables", Version: "1.8.10-r3", Description: "fixture: iptables's place",
		Depends: []string{"so:libc.musl-x86_64.so.1"}, Provides: []string{"cmd:iptables=1.8.10-r3"},
		Files: []apktest.File{dir("usr"), dir("usr/sbin"), {Path: "usr/sbin/iptables", Link: "xtables-nft-multi"}, {Path: "usr/sbin/xtables-nft-multi", Mode: 0o755, Data: []byte("fixture\n")}}})
	add(&community, apktest.Package{Name: "ip6tables", Version: "1.8.10-r3", Description: "fixture: ip6tables's place",
		Depends: []string{"iptables=1.8.10-r3"}, Provides: []string{"cmd:ip6tables=1.8.10-r3"},
		Files: []apktest.File{dir("usr"), dir("usr/sbin"), {Path: "usr/sbin/ip6tables", Link: "xtables-nft-multi"}}})
	m.file, err = apktest.Mirror("v3.20", "x86_64", map[string][]*apktest.Built{"main": main, "community": community}, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		b, ok := m.file[strings.TrimPrefix(r.URL.Path, "/alpine/")]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	m.url = srv.URL + "/alpine"
	return m
}

// alpineDistro makes the folder of an Alpine build from the fixture mirror the way a user makes
// a distro of their own: `rootfsc distro new myalpine --family apk` scaffolds Alpine 3.20 beside
// the manifest, and the test adds the fixture repository's key to its keys. It returns the folder
// and the definition's path.
func alpineDistro(t *testing.T, h *harness, m *alpineMirror) (string, string) {
	t.Helper()
	dir := t.TempDir()
	h.run(dir, true, "distro", "new", "myalpine", "--family", "apk")
	def := filepath.Join(dir, "distros", "myalpine", "distro.cue")
	writeFile(t, def, readFile(t, def)+fmt.Sprintf("\n// The fixture repository's key.\nreleases: [string]: keys: %q: %q\n", m.key.Name, m.key.PublicPEM()))
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	return dir, def
}

// alpineManifest is a manifest of the scaffolded distro from the fixture mirror, with rest added.
func alpineManifest(m *alpineMirror, rest string) string {
	return "distro:  \"myalpine\"\nrelease: \"3.20\"\nmirror:  \"" + m.url + "\"\n" + rest
}

// alpineDir is [alpineDistro] with a manifest that adds the agent, locked by `rootfsc lock` with
// the released binary.
func alpineDir(t *testing.T, h *harness, m *alpineMirror) (string, *lock.Lock) {
	t.Helper()
	dir, def := alpineDistro(t, h, m)
	writeFile(t, filepath.Join(dir, "m.cue"), alpineManifest(m, "agent: file: \"kata-agent\"\n"))
	listed := h.stdout(dir, "distros")
	if want := "myalpine\tapk\t3.20\t" + def + "\tfixtures"; !slices.Contains(strings.Split(strings.TrimSpace(listed), "\n"), want) {
		t.Errorf("rootfsc distros =\n%s\nwant the line %q", listed, want)
	}
	h.run(dir, true, "lock", "m.cue")
	lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, lk
}

// TestAlpinePackages: with the apk family as with the deb family, an unknown package is named at
// its place in the manifest with the closest name the index has, a pin (apk's name=version) locks
// that version, another pin makes the lock stale saying why, and an impossible one names the
// versions the index has.
func TestAlpinePackages(t *testing.T) {
	h := newHarness(t)
	m := newAlpineMirror(t, "rootfsc-test-fixture.rsa.pub")
	dir, _ := alpineDistro(t, h, m)
	noLock := func() {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, "m.cue.lock.json")); !os.IsNotExist(err) {
			t.Errorf("a lock was written: %v", err)
		}
	}

	writeFile(t, filepath.Join(dir, "m.cue"), alpineManifest(m, "packages: [\"bash\",\n\t\"bussybox\"]\n"))
	out := h.run(dir, false, "lock", "m.cue")
	if want := "rootfsc lock: m.cue:5:2: packages[1]: unknown package \"bussybox\" in 3.20 (did you mean \"busybox\"?)\n"; out != want {
		t.Errorf("rootfsc lock with a misspelt package:\n%s\nwant %q", out, want)
	}
	out = h.run(dir, false, "build", "m.cue")
	if want := "rootfsc build: m.cue:5:2: packages[1]: unknown package \"bussybox\" in 3.20 (did you mean \"busybox\"?)\n"; out != want {
		t.Errorf("rootfsc build with a misspelt package:\n%s\nwant %q", out, want)
	}
	noLock()

	writeFile(t, filepath.Join(dir, "m.cue"), alpineManifest(m, "packages: [\"bash=5.2.26-r0\", \"iptables=1.8.9-r0\"]\n"))
	out = h.run(dir, false, "lock", "m.cue")
	if want := "rootfsc lock: m.cue:4:30: packages[1]: iptables=1.8.9-r0: package \"iptables\" has no version \"1.8.9-r0\" in 3.20 (the index has 1.8.10-r3)\n"; out != want {
		t.Errorf("rootfsc lock with an impossible pin:\n%s\nwant %q", out, want)
	}
	noLock()

	// The fixture has an older bash beside the newest.
	writeFile(t, filepath.Join(dir, "m.cue"), alpineManifest(m, "packages: [\"bash=5.2.21-r0\"]\n"))
	h.run(dir, true, "lock", "m.cue")
	lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(lk.Packages, func(p lock.Package) bool { return p.Name == "bash" })
	if i < 0 || lk.Packages[i].Version != "5.2.21-r0" || lk.Packages[i].SHA256 != m.pkgs["bash-5.2.21-r0"].SHA256() {
		t.Fatalf("locked packages %+v, want bash 5.2.21-r0 with the fixture's sha256", lk.Packages)
	}
	if out := h.stdout(dir, "vet", "m.cue"); !strings.Contains(out, "lock is current") {
		t.Errorf("rootfsc vet after locking the pin:\n%s", out)
	}
	writeFile(t, filepath.Join(dir, "m.cue"), alpineManifest(m, "packages: [\"bash=5.2.26-r0\"]\n"))
	out = h.run(dir, false, "vet", "m.cue")
	if !strings.Contains(out, "bash is pinned to 5.2.26-r0, the lock holds 5.2.21-r0") {
		t.Errorf("rootfsc vet with another pin:\n%s\nwant the lock stale for the pin", out)
	}
}

func TestBuildAlpine(t *testing.T) {
	h := newHarness(t)
	m := newAlpineMirror(t, "rootfsc-test-fixture.rsa.pub")
	dir, lk := alpineDir(t, h, m)
	var names []string
	for _, p := range lk.Packages {
		names = append(names, p.Name+"-"+p.Version)
	}
	wantPkgs := []string{"alpine-base-3.20.3-r0", "alpine-baselayout-3.6.5-r0", "bash-5.2.26-r0", "busybox-1.36.1-r29", "busybox-binsh-1.36.1-r29",
		"ip6tables-1.8.10-r3", "iptables-1.8.10-r3", "libseccomp-2.5.5-r1", "musl-1.2.5-r0"}
	if diff := cmp.Diff(wantPkgs, names); diff != "" {
		t.Fatalf("locked packages mismatch (-want +got):\n%s", diff)
	}

	t.Run("tampered apk", func(t *testing.T) {
		good := m.pkgs["busybox"]
		path := "v3.20/main/x86_64/" + good.FileName()
		bad := append([]byte(nil), good.APK...)
		bad[len(bad)/2] ^= 0xff
		m.set(path, bad)
		defer m.set(path, good.APK)
		out := h.run(dir, false, "build", "--locked", "--progress=plain", "-o", "type=dir,dest=rootfs", "m.cue")
		if !regexp.MustCompile(`package busybox 1\.36\.1-r29 \(v3\.20/main/x86_64/busybox-1\.36\.1-r29\.apk\): the mirror's bytes do not match the lock's sha256 ` + good.SHA256()).MatchString(out) {
			t.Errorf("the error does not name the tampered package and the lock's sha256:\n%s", tail([]byte(out)))
		}
		if _, err := os.Stat(filepath.Join(dir, "rootfs")); !os.IsNotExist(err) {
			t.Errorf("output left behind after a failed build: %v", err)
		}
	})

	out := h.run(dir, true, "build", "--locked", "--progress=plain", "-o", "type=dir,dest=rootfs", "m.cue")
	// The base (the helper's extraction, in buildkitd) and the Kata check inside the build.
	for _, want := range []string{"base myalpine 3.20", "rootfs check: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("the build's progress has no %q:\n%s", want, tail([]byte(out)))
		}
	}
	if testing.Verbose() {
		t.Log(tail([]byte(out)))
	}
	root := filepath.Join(dir, "rootfs")
	t.Run("apk database lists the locked packages", func(t *testing.T) {
		db, err := os.ReadFile(filepath.Join(root, "lib/apk/db/installed"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var name string
		for _, line := range strings.Split(string(db), "\n") {
			if v, ok := strings.CutPrefix(line, "P:"); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "V:"); ok {
				got = append(got, name+"-"+v)
			}
		}
		slices.Sort(got)
		if diff := cmp.Diff(wantPkgs, got); diff != "" {
			t.Errorf("lib/apk/db/installed mismatch (-want +got):\n%s", diff)
		}
		for _, p := range lk.Packages {
			if !strings.Contains(string(db), "C:"+p.Checksum+"\nP:"+p.Name+"\n") {
				t.Errorf("lib/apk/db/installed has no C:%s for %s", p.Checksum, p.Name)
			}
		}
		world, _ := os.ReadFile(filepath.Join(root, "etc/apk/world"))
		if string(world) != "alpine-base\nbash\nip6tables\niptables\nlibseccomp\n" {
			t.Errorf("etc/apk/world = %q", world)
		}
	})
	t.Run("apk configuration", func(t *testing.T) {
		repos, _ := os.ReadFile(filepath.Join(root, "etc/apk/repositories"))
		if want := m.url + "/v3.20/main\n" + m.url + "/v3.20/community\n"; string(repos) != want {
			t.Errorf("etc/apk/repositories = %q, want %q", repos, want)
		}
		for _, k := range []string{"alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub", "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub", m.key.Name} {
			if b, err := os.ReadFile(filepath.Join(root, "etc/apk/keys", k)); err != nil || !strings.HasPrefix(string(b), "-----BEGIN PUBLIC KEY-----\n") {
				t.Errorf("etc/apk/keys/%s: %v", k, err)
			}
		}
	})
	t.Run("agent is init", func(t *testing.T) {
		agent, _ := os.ReadFile(filepath.Join(dir, "kata-agent"))
		got, err := os.ReadFile(filepath.Join(root, "sbin/init"))
		if err != nil || string(got) != string(agent) {
			t.Errorf("/sbin/init is not the agent: %v", err)
		}
	})
	t.Run("owners kept", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(root, "etc/shadow"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 42 || fi.Mode().Perm() != 0o640 {
			t.Errorf("etc/shadow: %d:%d %v, want 0:42 0640", st.Uid, st.Gid, fi.Mode().Perm())
		}
	})
	t.Run("busybox runs, with the links its post-install made", func(t *testing.T) {
		out, err := exec.Command("chroot", root, "/bin/sh", "-c", "ls -d /lib/apk/db && readlink /bin/ls").CombinedOutput()
		if err != nil || string(out) != "/lib/apk/db\n/bin/busybox\n" {
			t.Errorf("chroot /bin/sh -c 'ls -d /lib/apk/db && readlink /bin/ls': %v\n%s", err, out)
		}
		if _, err := os.Lstat(filepath.Join(root, ".rootfsc-apk-scripts")); !os.IsNotExist(err) {
			t.Errorf("the install scripts were left in the rootfs: %v", err)
		}
	})
}

// TestAlpineUnknownKey: `rootfsc lock` checks the indexes against the keys of Alpine's
// definition, and the fixture's key is not one of them.
func TestAlpineUnknownKey(t *testing.T) {
	h := newHarness(t)
	m := newAlpineMirror(t, "rootfsc-test-fixture.rsa.pub")
	dir := writeManifest(t, "distro: \"alpine\"\nrelease: \"3.20\"\nmirror: \""+m.url+"\"\n")
	out := h.run(dir, false, "lock", "m.cue")
	if !strings.Contains(out, m.url+`/v3.20/main/x86_64/APKINDEX.tar.gz: signed by an unknown key "rootfsc-test-fixture.rsa.pub" (the distro definition holds alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub, alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub)`) {
		t.Errorf("the error does not name the index and the unknown key:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "m.cue.lock.json")); !os.IsNotExist(err) {
		t.Errorf("a lock was written: %v", err)
	}
}

// TestAlpineBadSignature: an index whose signature names Alpine's x86_64 key but was made with
// another key fails the build, naming the index and the bad signature.
func TestAlpineBadSignature(t *testing.T) {
	h := newHarness(t)
	m := newAlpineMirror(t, "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub")
	dir := writeManifest(t, "distro: \"alpine\"\nrelease: \"3.20\"\nmirror: \""+m.url+"\"\n")
	out := h.run(dir, false, "build", "-o", "type=dir,dest=rootfs", "m.cue")
	if !strings.Contains(out, m.url+"/v3.20/main/x86_64/APKINDEX.tar.gz: bad signature by key alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub") {
		t.Errorf("the error does not name the index and the bad signature:\n%s", out)
	}
	for _, p := range []string{"rootfs", "m.cue.lock.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after a failed resolution", p)
		}
	}
}
