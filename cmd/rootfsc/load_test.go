package main

// Load: builds at once against one daemon, and many in a row.

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rootfsc/rootfsc/engine"
)

// TestLoadConcurrent builds four different manifests over one Debian base at once against one
// embedded daemon: all succeed, and the base's install ran once (the four progress logs show the
// same execution of the same vertex, not four).
func TestLoadConcurrent(t *testing.T) {
	h := newHarness(t)
	const n = 4
	var dirs []string
	for i := range n {
		dir := writeManifest(t, manifest+fmt.Sprintf("files: \"/etc/motd\": content: \"build %d\\n\"\n", i))
		h.run(dir, true, "lock", "m.cue")
		dirs = append(dirs, dir)
	}
	logs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Go(func() {
			cmd := exec.Command(filepath.Join(h.bin, "rootfsc"), "build", "--locked", "--progress=rawjson", "-o", "type=tar,dest=rootfs.tar", "m.cue")
			cmd.Dir, cmd.Env = dir, h.env
			out, err := cmd.CombinedOutput()
			logs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d: %v\n%s", i, err, tail([]byte(logs[i])))
		}
		b, err := readTarFile(filepath.Join(dirs[i], "rootfs.tar"), "etc/motd")
		if err != nil || string(b) != fmt.Sprintf("build %d\n", i) {
			t.Errorf("build %d: /etc/motd = %q, %v", i, b, err)
		}
	}
	// One execution: the same vertex digest, started at the same time, in every log.
	runs := map[string]bool{}
	for i, log := range logs {
		seen := false
		for _, line := range strings.Split(log, "\n") {
			var st struct {
				Vertexes []struct {
					Digest, Name, Started string
					Cached                bool
				}
			}
			if json.Unmarshal([]byte(line), &st) != nil {
				continue
			}
			for _, v := range st.Vertexes {
				if strings.HasPrefix(v.Name, "base: dpkg --install") && v.Started != "" && !v.Cached {
					runs[v.Digest+" "+v.Started] = true
					seen = true
				}
			}
		}
		if !seen {
			t.Errorf("build %d's log shows no base install", i)
		}
	}
	if len(runs) != 1 {
		t.Errorf("the base install ran %d times for %d builds at once, want once: %v", len(runs), n, runs)
	}
}

// TestLoadRepeated builds twenty changed overlays in a row on one daemon: every build succeeds
// and the daemon's memory stays bounded (measured after the fifth and the twentieth). The state
// is logged, not bounded: it grows by about 17 MB a build here, and `prune --keep-storage` does
// not bring it back yet (an open item of the reliability issue).
// TestLoadRepeated builds twenty changed overlays in a row on one embedded daemon started with a
// GC bound (ROOTFSC_GC_KEEP_STORAGE=0,0,MAX): buildkitd's memory stays flat and its state comes
// back under the bound once BuildKit collects (at most once a minute, a second after a build).
func TestLoadRepeated(t *testing.T) {
	const maxMB = 60
	h := newHarness(t)
	h.env = append(h.env, fmt.Sprintf("ROOTFSC_GC_KEEP_STORAGE=0,0,%d", maxMB))
	dir := t.TempDir()
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	// A 16 MB file a build: twenty builds make five times the bound.
	big := make([]byte, 16<<20)
	var rss5 int64
	var pid int
	for i := 1; i <= 20; i++ {
		for j := range big {
			big[j] = byte(i * j)
		}
		writeFile(t, filepath.Join(dir, "big.bin"), string(big))
		writeFile(t, filepath.Join(dir, "m.cue"), fmt.Sprintf(`agent: {file: "kata-agent", init: "agent"}
files: "/etc/motd": content: "build %d\n"
files: "/big": source: "big.bin"
`, i))
		h.run(dir, true, "build", "--progress=quiet", "-o", "type=tar,dest=rootfs.tar", "m.cue")
		if i == 5 || i == 20 {
			st, err := engine.Status(context.Background(), h.state)
			if err != nil || st.PID == 0 {
				t.Fatalf("daemon status: %+v, %v", st, err)
			}
			pid = st.PID
			rss, state := rssBytes(t, st.PID), dirBytes(t, filepath.Join(h.state, "root"))
			t.Logf("after build %d: buildkitd RSS %d MB, state %d MB", i, rss>>20, state>>20)
			if i == 5 {
				rss5 = rss
				continue
			}
			if rss > rss5+150<<20 {
				t.Errorf("buildkitd's RSS grew from %d MB to %d MB over 15 builds", rss5>>20, rss>>20)
			}
		}
	}
	// The bound is BuildKit's own accounting of its cache records; the state also holds its
	// databases and what the last build left in use: up to about one build's worth (80 MB a
	// build here), against the 1.7 GB twenty builds reach before a collection.
	limit := int64(maxMB+100) << 20
	var state int64
	for wait := 0; wait < 90; wait += 5 {
		if state = dirBytes(t, filepath.Join(h.state, "root")); state <= limit {
			break
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("state after the GC: %d MB (buildkitd pid %d)", state>>20, pid)
	if state > limit {
		t.Errorf("buildkitd's state is %d MB after twenty builds and 90 s, over the bound of %d MB (keep-storage max %d MB)", state>>20, limit>>20, maxMB)
	}
}

func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// readTarFile is the content of the entry name in the tar file p.
func readTarFile(p, name string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%s: no %s: %w", p, name, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return io.ReadAll(tr)
		}
	}
}
