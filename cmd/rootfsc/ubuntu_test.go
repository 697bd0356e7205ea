package main

// The Ubuntu build from a signed fixture archive; testdata/ubuntu/README.md says how it works.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	rcue "github.com/rootfsc/rootfsc/cue"
	"github.com/rootfsc/rootfsc/distros"
	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// ubuntuLayout puts each fixture package in a suite and component of the fixture archive
// (default: jammy, main), so that the build merges suites and components as it would Ubuntu's.
var ubuntuLayout = map[string][2]string{
	"less":     {"jammy", "universe"},
	"iptables": {"jammy-updates", "main"},
}

// TestBuildUbuntu locks and builds an Ubuntu jammy rootfs with the Kata layers from a signed
// fixture archive served over httptest, through the deb family's code path that Debian builds
// use live, and requires every locked package installed and each from its suite.
func TestBuildUbuntu(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	ctx := context.Background()

	// The packages: the closure of Ubuntu's default set and less, resolved from the host's Debian
	// mirror (verified with Debian's keyring), with their stanzas from its Packages index.
	writeFile(t, filepath.Join(dir, "probe.cue"), "distro: \"ubuntu\"\nrelease: \"jammy\"\n")
	res, err := rcue.LoadFile(ctx, filepath.Join(dir, "probe.cue"), rcue.Opts{})
	if err != nil {
		t.Fatal(rcue.FormatError(err, ""))
	}
	mirror := hostMirror(t)
	debLock, err := deb.Resolve(ctx, deb.Request{
		Distro: "debian", Release: "bookworm", Arch: "amd64",
		Suites:   []deb.SuiteSource{{Name: "bookworm", URI: mirror, Archive: "debian", Components: []string{"main"}}},
		Packages: append(slices.Clone(res.Release.DefaultPackages), "less"),
	}, deb.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	stanzas := debianStanzas(t, mirror, debLock)

	// The archive: three suites under /ubuntu, main and universe, each InRelease signed with a key
	// made here; the pool is the host mirror's, fetched on request.
	key, err := openpgp.NewEntity("rootfsc ubuntu fixture", "", "fixture@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	date := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for _, suite := range res.Release.Suites {
		var rel bytes.Buffer
		fmt.Fprintf(&rel, "Origin: Ubuntu\nLabel: Ubuntu\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: amd64\nComponents: %s\nSHA256:\n",
			suite, suite, date.Format(time.RFC1123), strings.Join(res.Release.Components, " "))
		for _, comp := range res.Release.Components {
			var plain bytes.Buffer
			for _, s := range stanzas {
				where, ok := ubuntuLayout[s.name]
				if !ok {
					where = [2]string{"jammy", "main"}
				}
				if where == [2]string{suite, comp} {
					plain.WriteString(s.text + "\n\n")
				}
			}
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(plain.Bytes())
			zw.Close()
			sum := sha256.Sum256(gz.Bytes())
			name := comp + "/binary-amd64/Packages.gz"
			fmt.Fprintf(&rel, " %s %d %s\n", hex.EncodeToString(sum[:]), gz.Len(), name)
			files["/ubuntu/dists/"+suite+"/"+name] = gz.Bytes()
		}
		var signed bytes.Buffer
		w, err := clearsign.Encode(&signed, key.PrivateKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(rel.Bytes())
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files["/ubuntu/dists/"+suite+"/InRelease"] = signed.Bytes()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := files[r.URL.Path]; ok {
			w.Write(b)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/ubuntu/pool/")
		if !ok || strings.Contains(rest, "..") {
			http.NotFound(w, r)
			return
		}
		resp, err := http.Get(mirror + "/pool/" + rest)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)

	// The built-in definition with the test key as its keyring, on the distro path.
	var kr bytes.Buffer
	if err := key.Serialize(&kr); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(dir, "fixture-keyring.gpg")
	writeFile(t, keyring, kr.String())
	def, err := distros.FS.ReadFile("ubuntu/distro.cue")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "distro-path/ubuntu/distro.cue"), string(def)+"\n// The fixture archive's key.\nreleases: [string]: keyring: "+fmt.Sprintf("%q", keyring)+"\n")
	h.env = append(h.env, distros.PathEnv+"="+filepath.Join(dir, "distro-path"))

	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	copyFile(t, filepath.Join(h.bin, "opa"), filepath.Join(dir, "opa"))
	writeFile(t, filepath.Join(dir, "m.cue"), fmt.Sprintf(`distro:  "ubuntu"
release: "jammy"
mirror:  %q
packages: ["less"]
agent: file: "kata-agent"
policy: {builtin: "allow-all", opa: file: "opa"}
`, srv.URL+"/ubuntu"))
	h.run(dir, true, "build", "--progress=plain", "-o", "type=dir,dest=rootfs", "m.cue")

	lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var suites []string
	for _, s := range lk.Suites {
		suites = append(suites, s.Name)
	}
	if want := []string{"jammy", "jammy-security", "jammy-updates"}; !slices.Equal(suites, want) || lk.Distro != "ubuntu" {
		t.Errorf("lock of %s with suites %v, want ubuntu with %v", lk.Distro, suites, want)
	}
	for _, p := range lk.Packages {
		want := "jammy"
		if w, ok := ubuntuLayout[p.Name]; ok {
			want = w[0]
		}
		if p.Suite != want {
			t.Errorf("locked %s from %s, want %s", p.Name, p.Suite, want)
		}
	}
	if len(lk.Packages) != len(debLock.Packages) {
		t.Errorf("lock has %d packages, the fixture %d", len(lk.Packages), len(debLock.Packages))
	}
	assertInstalled(t, filepath.Join(dir, "rootfs"), lk)
	for _, f := range []string{"usr/bin/less", "usr/bin/kata-agent", "usr/local/bin/opa", "usr/lib/systemd/system/kata-containers.target"} {
		if _, err := os.Stat(filepath.Join(dir, "rootfs", f)); err != nil {
			t.Error(err)
		}
	}
}

type stanza struct{ name, text string }

// debianStanzas returns the stanzas of the host mirror's bookworm main index for the packages
// (name and version) of lk.
func debianStanzas(t *testing.T, mirror string, lk *lock.Lock) []stanza {
	t.Helper()
	want := map[string]string{}
	for _, p := range lk.Packages {
		want[p.Name] = p.Version
	}
	resp, err := http.Get(mirror + "/dists/bookworm/main/binary-amd64/Packages.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET Packages.gz: %s", resp.Status)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var out []stanza
	var cur []string
	var name, version string
	flush := func() {
		if v, ok := want[name]; ok && v == version {
			out = append(out, stanza{name, strings.Join(cur, "\n")})
			delete(want, name)
		}
		cur, name, version = nil, "", ""
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		cur = append(cur, line)
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			name = v
		} else if v, ok := strings.CutPrefix(line, "Version: "); ok {
			version = v
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) > 0 {
		t.Fatalf("no stanza in bookworm main for %v", want)
	}
	return out
}
