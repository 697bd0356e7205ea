package main

// Integration tests of issue 7's doors, real parts only: Debian's docker-registry on 127.0.0.1,
// buildkitd daemons of the tests' own (reached with --addr, as a remote BuildKit is), the
// frontend image pushed there or loaded from an OCI layout, buildctl, and Debian's skopeo as the
// third-party image client. Gated like the other integration tests (ROOTFSC_BIN, not -short).

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"

	"github.com/rootfsc/rootfsc/build"
	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// doorsManifest is a small Kata rootfs over Debian: the default set, the stand-in agent and the
// built-in policy with OPA, all from the build context.
const doorsManifest = `distro:  "debian"
release: "bookworm"
agent: file: "kata-agent"
policy: {builtin: "allow-all", opa: file: "opa"}
`

// doorsLayers are the merged layers doorsManifest has, in order.
var doorsLayers = []string{"base", "kata edits", "kata glue", "policy", "agent"}

// freeAddr is a free 127.0.0.1:PORT.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess starts a daemon of the test's own, logging to log, and stops it (SIGTERM, then
// SIGKILL) when the test ends.
func startProcess(t *testing.T, log string, name string, args ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Logf("%s did not stop on SIGTERM; killing it", name)
			cmd.Process.Kill()
			<-exited
		}
	})
}

// waitFor polls ready until it succeeds or 30 s pass.
func waitFor(t *testing.T, what, log string, ready func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = ready(); err == nil {
			return
		}
	}
	b, _ := os.ReadFile(log)
	t.Fatalf("%s is not answering: %v\n%s", what, err, tail(b))
}

// startRegistry runs Debian's docker-registry on 127.0.0.1 with storage in a temporary folder
// and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "config.yml")
	writeFile(t, cfg, fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
`, filepath.Join(dir, "storage"), addr))
	log := filepath.Join(dir, "registry.log")
	startProcess(t, log, "/usr/bin/docker-registry", "serve", cfg)
	waitFor(t, "docker-registry", log, func() error {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
	return addr
}

// startBuildkitd runs a buildkitd with a state of its own, trusting the plain-HTTP registries
// given, and returns its address.
func startBuildkitd(t *testing.T, bin string, registries ...string) string {
	t.Helper()
	// Not t.TempDir: a leftover mount under the root must not fail the test; it is logged.
	dir, err := os.MkdirTemp("", "rootfsc-doors-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing buildkitd's state: %v", err)
		}
	})
	var cfg strings.Builder
	for _, r := range registries {
		fmt.Fprintf(&cfg, "[registry.%q]\n  http = true\n  insecure = true\n", r)
	}
	toml := filepath.Join(dir, "buildkitd.toml")
	writeFile(t, toml, cfg.String())
	addr := "unix://" + filepath.Join(dir, "buildkitd.sock")
	log := filepath.Join(dir, "buildkitd.log")
	startProcess(t, log, filepath.Join(bin, "buildkitd"), "--config", toml, "--root", filepath.Join(dir, "root"),
		"--addr", addr, "--oci-worker=true", "--containerd-worker=false", "--oci-worker-snapshotter=overlayfs")
	waitFor(t, "buildkitd", log, func() error {
		out, err := exec.Command(filepath.Join(bin, "buildctl"), "--addr", addr, "debug", "workers").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	return addr
}

// buildctl runs buildctl against addr and returns its output; it fails the test unless the exit
// code is as wanted.
func buildctl(t *testing.T, bin, addr string, wantOK bool, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "buildctl"), append([]string{"--addr", addr}, args...)...)
	out, err := cmd.CombinedOutput()
	if (err == nil) != wantOK {
		t.Fatalf("buildctl %s: err=%v, want ok=%v\n%s", strings.Join(args, " "), err, wantOK, tail(out))
	}
	return string(out)
}

// hostMirror is the host's default Debian mirror: the URI of its apt sources' bookworm suite.
func hostMirror(t *testing.T) string {
	t.Helper()
	srcs, err := deb.Mirrors()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if s.Name == "bookworm" {
			return s.URI
		}
	}
	t.Fatalf("the host's apt sources have no bookworm suite: %+v", srcs)
	return ""
}

// doorsDir writes doorsManifest as rootfs.cue with the stand-in agent and OPA beside it.
func doorsDir(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join(bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	copyFile(t, filepath.Join(bin, "opa"), filepath.Join(dir, "opa"))
	writeFile(t, filepath.Join(dir, "rootfs.cue"), doorsManifest)
	return dir
}

// gatewayArgs are buildctl's arguments for the frontend over dir, as the README gives them.
func gatewayArgs(dir, mirror, dest string) []string {
	return []string{"--frontend", "gateway.v0", "--local", "dockerfile=" + dir, "--local", "context=" + dir,
		"--opt", "filename=rootfs.cue", "--opt", "mirror=" + mirror, "--output", "type=tar,dest=" + dest}
}

// Acceptance 1 and 5: the image frontend, loaded from a registry and from an OCI layout, builds
// the same bytes as `rootfsc build`, and a failed step names the manifest line through both.
func TestFrontendDoors(t *testing.T) {
	h := newHarness(t)
	reg := startRegistry(t)
	addr := startBuildkitd(t, h.bin, reg)
	image := reg + "/rootfsc-frontend:test"
	h.run(t.TempDir(), true, "frontend-image", "--addr", addr, "--progress=plain",
		"-o", "type=image,name="+image+",push=true,registry.insecure=true")

	dir := doorsDir(t, h.bin)
	h.run(dir, true, "lock", "rootfs.cue")
	mirror := hostMirror(t)
	cli := filepath.Join(dir, "b.tar")
	h.run(dir, true, "build", "--addr", addr, "--locked", "--progress=plain", "-o", "type=tar,dest="+cli, "rootfs.cue")

	t.Run("registry", func(t *testing.T) {
		gw := filepath.Join(t.TempDir(), "a.tar")
		buildctl(t, h.bin, addr, true, append([]string{"build", "--progress=plain", "--opt", "source=" + image},
			gatewayArgs(dir, mirror, gw)...)...)
		if a, b := fileSum(t, gw), fileSum(t, cli); a != b {
			t.Errorf("the frontend's tar %s differs from rootfsc build's %s\n%s", a, b, headerDiff(t, gw, cli))
		}
	})

	// The disk image through buildctl: target=disk makes the folder with the image and its
	// verity parameters the result, byte for byte what rootfsc build writes.
	t.Run("disk", func(t *testing.T) {
		out := t.TempDir()
		args := gatewayArgs(dir, mirror, "")
		args = append(args[:len(args)-2], "--output", "type=local,dest="+out, "--opt", "target=disk", "--opt", "disk=fs=ext4,verity=true")
		buildctl(t, h.bin, addr, true, append([]string{"build", "--progress=plain", "--opt", "source=" + image}, args...)...)
		img := filepath.Join(t.TempDir(), "kata.img")
		h.run(dir, true, "build", "--addr", addr, "--locked", "--progress=plain", "-o", "type=disk,dest="+img+",verity=true", "rootfs.cue")
		if a, b := fileSum(t, filepath.Join(out, "image")), fileSum(t, img); a != b {
			t.Errorf("the frontend's disk image %s differs from rootfsc build's %s", a, b)
		}
		if a, b := readFile(t, filepath.Join(out, "verity-params")), readFile(t, img+".verity-params"); a != b || !strings.HasPrefix(a, "root_hash=") {
			t.Errorf("verity parameters: frontend %q, rootfsc build %q", a, b)
		}
	})

	t.Run("oci layout", func(t *testing.T) {
		tmp := t.TempDir()
		archive := filepath.Join(tmp, "frontend.oci.tar")
		h.run(tmp, true, "frontend-image", "--addr", addr, "--progress=plain", "-o", "type=oci,dest="+archive)
		layout := filepath.Join(tmp, "layout")
		if err := os.Mkdir(layout, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("tar", "-xf", archive, "-C", layout).CombinedOutput(); err != nil {
			t.Fatalf("tar -xf %s: %v\n%s", archive, err, out)
		}
		var index struct {
			Manifests []struct{ Digest string }
		}
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(layout, "index.json"))), &index); err != nil {
			t.Fatal(err)
		}
		if len(index.Manifests) != 1 || !strings.HasPrefix(index.Manifests[0].Digest, "sha256:") {
			t.Fatalf("index.json: want one manifest, got %+v", index.Manifests)
		}
		gw := filepath.Join(tmp, "c.tar")
		buildctl(t, h.bin, addr, true, append([]string{"build", "--progress=plain",
			"--oci-layout", "rootfsc=" + layout,
			"--opt", "context:rootfsc=oci-layout://rootfsc@" + index.Manifests[0].Digest,
			"--opt", "source=rootfsc"},
			gatewayArgs(dir, mirror, gw)...)...)
		if a, b := fileSum(t, gw), fileSum(t, cli); a != b {
			t.Errorf("the frontend's tar %s (from the OCI layout) differs from rootfsc build's %s\n%s", a, b, headerDiff(t, gw, cli))
		}
	})

	// Acceptance 5: the check step fails (a file of the manifest takes the agent's place) and
	// both doors point at the agent field, on line 3.
	t.Run("a failed step names the manifest line", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
		writeFile(t, filepath.Join(dir, "rootfs.cue"), `// An overlay whose files replace the agent: the check must notice.
files: "/usr/bin/kata-agent": {content: "#!/bin/sh\n", mode: 0o755}
agent: file: "kata-agent"
`)
		const cause = "/usr/bin/kata-agent is not the agent from the manifest"
		out := h.run(dir, false, "build", "--addr", addr, "--progress=plain", "-o", "type=tar,dest=x.tar", "rootfs.cue")
		if !strings.Contains(out, "rootfsc build: rootfs.cue:3:1: ") || !strings.Contains(out, cause) {
			t.Errorf("rootfsc build's error does not name rootfs.cue:3:1 and %q:\n%s", cause, tail([]byte(out)))
		}
		out = buildctl(t, h.bin, addr, false, "build", "--progress=plain", "--opt", "source="+image,
			"--frontend", "gateway.v0", "--local", "dockerfile="+dir, "--local", "context="+dir,
			"--opt", "filename=rootfs.cue", "--output", "type=tar,dest="+filepath.Join(dir, "y.tar"))
		// buildctl prints the source map of the failed op: the file and line, then the line marked.
		if !strings.Contains(out, "\nrootfs.cue:3\n") || !strings.Contains(out, `   3 | >>> agent: file: "kata-agent"`) ||
			!strings.Contains(out, cause) {
			t.Errorf("buildctl's error does not show rootfs.cue:3 and %q:\n%s", cause, tail([]byte(out)))
		}
		if _, err := os.Stat(filepath.Join(dir, "x.tar")); err == nil {
			t.Error("rootfsc build exported x.tar despite the failed check")
		}
		// buildctl creates its tar destination before the solve; nothing may be written to it.
		if fi, err := os.Stat(filepath.Join(dir, "y.tar")); err == nil && fi.Size() != 0 {
			t.Errorf("buildctl wrote %d bytes to y.tar despite the failed check", fi.Size())
		}
	})
}

// image is what skopeo inspect says of an image.
type image struct {
	Layers []string
}

// imageConfig is the part of an OCI image config the test checks.
type imageConfig struct {
	Created      string
	OS           string
	Architecture string
	Config       struct{ Labels map[string]string }
}

func skopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("skopeo", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func inspect(t *testing.T, args ...string) image {
	t.Helper()
	var img image
	if err := json.Unmarshal(skopeo(t, append([]string{"inspect"}, args...)...), &img); err != nil {
		t.Fatal(err)
	}
	return img
}

// Acceptance 2: the OCI output is an image skopeo reads and copies to a registry, with one layer
// per merged layer, the epoch and the Kata labels in its config; a new agent changes only the
// agent layer.
func TestOCIOutput(t *testing.T) {
	h := newHarness(t)
	reg := startRegistry(t)
	addr := startBuildkitd(t, h.bin)
	dir := doorsDir(t, h.bin)
	h.run(dir, true, "lock", "rootfs.cue")
	lk, err := lock.Read(filepath.Join(dir, "rootfs.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}

	// The layers the lowering merges, from the pipeline itself (no daemon needed to lower).
	src, err := build.DirSource(filepath.Join(dir, "rootfs.cue"), "")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := build.Prepare(context.Background(), src, build.Opts{Locked: true})
	if err != nil {
		t.Fatal(err)
	}
	lowered, err := plan.Lower(context.Background(), bkllb.Scratch())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(doorsLayers, lowered.Layers); diff != "" {
		t.Fatalf("Lower().Layers mismatch (-want +got):\n%s", diff)
	}

	archive := filepath.Join(dir, "r.oci.tar")
	h.run(dir, true, "build", "--addr", addr, "--locked", "--progress=plain", "-o", "type=oci,dest="+archive, "rootfs.cue")
	local := inspect(t, "oci-archive:"+archive)
	if len(local.Layers) != len(doorsLayers) {
		t.Fatalf("the image has %d layers, want one per merged layer %q: %q", len(local.Layers), doorsLayers, local.Layers)
	}

	t.Run("config", func(t *testing.T) {
		var cfg imageConfig
		if err := json.Unmarshal(skopeo(t, "inspect", "--config", "oci-archive:"+archive), &cfg); err != nil {
			t.Fatal(err)
		}
		created := time.Unix(lk.SourceDateEpoch, 0).UTC().Format(time.RFC3339)
		want := map[string]string{
			"org.opencontainers.image.created":       created,
			"org.opencontainers.image.title":         "rootfs",
			"org.opencontainers.image.revision":      lk.InputDigest,
			"io.katacontainers.rootfs.distro":        "debian",
			"io.katacontainers.rootfs.release":       "bookworm",
			"io.katacontainers.rootfs.agent-init":    "systemd",
			"io.katacontainers.rootfs.policy":        "allow-all",
			"io.katacontainers.rootfs.policy-engine": "opa-service",
		}
		got := map[string]string{}
		for k := range want {
			got[k] = cfg.Config.Labels[k]
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("image labels mismatch (-want +got):\n%s", diff)
		}
		if !strings.HasPrefix(cfg.Config.Labels["org.opencontainers.image.version"], "rootfsc ") {
			t.Errorf("org.opencontainers.image.version = %q, want rootfsc's version", cfg.Config.Labels["org.opencontainers.image.version"])
		}
		if c, err := time.Parse(time.RFC3339, cfg.Created); err != nil || c.Unix() != lk.SourceDateEpoch {
			t.Errorf("config created = %q (%v), want the lock's epoch %s", cfg.Created, err, created)
		}
		if cfg.OS != "linux" || cfg.Architecture != "amd64" {
			t.Errorf("config os/arch = %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
		}
	})

	t.Run("skopeo copy to a registry", func(t *testing.T) {
		ref := "docker://" + reg + "/rootfs:test"
		skopeo(t, "copy", "oci-archive:"+archive, ref, "--dest-tls-verify=false")
		remote := inspect(t, "--tls-verify=false", ref)
		if diff := cmp.Diff(local.Layers, remote.Layers); diff != "" {
			t.Errorf("the registry's layers differ from the archive's (-archive +registry):\n%s", diff)
		}
	})

	t.Run("a new agent changes only the agent layer", func(t *testing.T) {
		again := t.TempDir()
		for _, f := range []string{"rootfs.cue", "rootfs.cue.lock.json", "opa", "kata-agent"} {
			copyFile(t, filepath.Join(dir, f), filepath.Join(again, f))
		}
		f, err := os.OpenFile(filepath.Join(again, "kata-agent"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte{0})
		f.Close()
		archive2 := filepath.Join(again, "r.oci.tar")
		h.run(again, true, "build", "--addr", addr, "--locked", "--progress=plain", "-o", "type=oci,dest="+archive2, "rootfs.cue")
		changed := inspect(t, "oci-archive:"+archive2)
		if len(changed.Layers) != len(local.Layers) {
			t.Fatalf("%d layers after a new agent, want %d: %q", len(changed.Layers), len(local.Layers), changed.Layers)
		}
		agent := slices.Index(doorsLayers, "agent")
		for i, name := range doorsLayers {
			same := changed.Layers[i] == local.Layers[i]
			if same != (i != agent) {
				t.Errorf("layer %d (%s): %s -> %s; want only the agent layer changed", i, name, local.Layers[i], changed.Layers[i])
			}
		}
	})
}

// execNames are the name prefixes of the lowering's exec ops for doorsManifest: the two stages
// of the base, the Kata edits of the base and the check.
var execNames = []string{"base: extract ", "base: dpkg --install ", "base: drop POSIX ACLs", "kata: chrony", "check: "}

// Acceptance 3: two daemons with separate state share a local cache: the second builds from the
// first's cache export without running any exec op.
func TestSharedCache(t *testing.T) {
	h := newHarness(t)
	dir := doorsDir(t, h.bin)
	h.run(dir, true, "lock", "rootfs.cue")
	cache := filepath.Join(t.TempDir(), "cache")

	first := startBuildkitd(t, h.bin)
	h.run(dir, true, "build", "--addr", first, "--locked", "--progress=plain",
		"--cache-to", "type=local,dest="+cache+",mode=max", "-o", "type=tar,dest="+filepath.Join(dir, "first.tar"), "rootfs.cue")

	if _, err := os.Stat(filepath.Join(cache, "index.json")); err != nil {
		t.Fatalf("the first build exported no cache: %v", err)
	}

	second := startBuildkitd(t, h.bin)
	out := h.run(dir, true, "build", "--addr", second, "--locked", "--progress=rawjson",
		"--cache-from", "type=local,src="+cache, "-o", "type=tar,dest="+filepath.Join(dir, "second.tar"), "rootfs.cue")
	ran, seen := stepsRun(t, out, execNames...)
	// "kata: chrony … (diff)" is the diff of the edit, not an exec.
	isDiff := func(n string) bool { return strings.HasSuffix(n, " (diff)") }
	ran, seen = slices.DeleteFunc(ran, isDiff), slices.DeleteFunc(seen, isDiff)
	for _, p := range execNames {
		if !slices.ContainsFunc(seen, func(n string) bool { return strings.HasPrefix(n, p) }) {
			t.Errorf("no %q step in the second build's progress (seen %q)", p, seen)
		}
	}
	if len(ran) > 0 {
		t.Errorf("exec steps that ran on the second daemon despite the cache: %q\n%s", ran, tail([]byte(out)))
	}
	if a, b := fileSum(t, filepath.Join(dir, "first.tar")), fileSum(t, filepath.Join(dir, "second.tar")); a != b {
		t.Errorf("the cached build's tar %s differs from the first's %s\n%s", b, a,
			headerDiff(t, filepath.Join(dir, "first.tar"), filepath.Join(dir, "second.tar")))
	}
}

// headerDiff lists the first entries whose full tar header (type, xattrs and the other PAX
// records included) or content differ between two tar files, in archive order.
func headerDiff(t *testing.T, a, b string) string {
	t.Helper()
	ea, eb := tarHeaders(t, a), tarHeaders(t, b)
	var out strings.Builder
	n := 0
	for i := 0; i < max(len(ea), len(eb)) && n < 10; i++ {
		var x, y string
		if i < len(ea) {
			x = ea[i]
		}
		if i < len(eb) {
			y = eb[i]
		}
		if x != y {
			fmt.Fprintf(&out, "  entry %d:\n    %s\n    %s\n", i, x, y)
			n++
		}
	}
	if n == 0 {
		return "  (same headers and contents: the tar framing differs)"
	}
	return out.String()
}

func tarHeaders(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.New()
		io.Copy(sum, tr)
		var pax []string
		for k, v := range h.PAXRecords {
			pax = append(pax, fmt.Sprintf("%s=%x", k, v))
		}
		slices.Sort(pax)
		out = append(out, fmt.Sprintf("%s type %c mode %o %d:%d mtime %d link %q pax %v sha256 %x",
			h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), h.Linkname, pax, sum.Sum(nil)[:8]))
	}
}
