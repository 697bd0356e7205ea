package main

// The agent-rebuild benchmark (bench/agent-rebuild.sh runs it): a cold full build of a Kata rootfs
// (Debian base, kernel modules from the Debian kernel package, OPA and policy, stand-in agent),
// then a build with nothing changed (the export alone), then one after changing only the agent
// file. It prints the times and the agent rebuild's ratio to the full build, and fails if any step
// outside the agent layer ran again.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func BenchmarkAgentRebuild(b *testing.B) {
	for i := 0; i < b.N; i++ {
		h := newHarness(b) // a fresh daemon state: the first build is cold
		dir := b.TempDir()
		agent := filepath.Join(dir, "kata-agent")
		copyFile(b, filepath.Join(h.bin, "kata-agent-standin"), agent)
		copyFile(b, filepath.Join(h.bin, "opa"), filepath.Join(dir, "opa"))
		writeFile(b, filepath.Join(dir, "m.cue"), `distro:  "debian"
release: "bookworm"
agent: file: "kata-agent"
modules: package: "linux-image-amd64"
policy: {builtin: "allow-all", opa: file: "opa"}
files: "/etc/motd": content: "benchmark\n"
outputs: [{type: "tar", dest: "rootfs.tar"}]
`)
		// Resolve first: the benchmark times builds, not the index download.
		h.run(dir, true, "lock", "m.cue")

		start := time.Now()
		h.run(dir, true, "build", "--locked", "--progress=plain", "m.cue")
		full := time.Since(start)

		// The floor: a build with nothing changed still exports the whole tree.
		start = time.Now()
		h.run(dir, true, "build", "--locked", "--progress=plain", "m.cue")
		noop := time.Since(start)

		f, err := os.OpenFile(agent, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(f, "\x00benchmark %d", time.Now().UnixNano())
		f.Close()

		start = time.Now()
		out := h.run(dir, true, "build", "--locked", "--progress=rawjson", "m.cue")
		again := time.Since(start)

		ran, seen := stepsRun(b, out, "base:", "modules:", "policy:", "kata:", "files:", "agent:", "check:")
		var cached, stale []string
		ranSet := map[string]bool{}
		for _, n := range ran {
			ranSet[n] = true
		}
		for _, n := range seen {
			switch {
			case !ranSet[n]:
				cached = append(cached, n)
			case !strings.HasPrefix(n, "agent:") && !strings.HasPrefix(n, "check:"):
				stale = append(stale, n)
			}
		}
		fmt.Printf("full cold build:          %8.1f s\n", full.Seconds())
		fmt.Printf("rebuild, nothing changed: %8.1f s (exporting the tree)\n", noop.Seconds())
		fmt.Printf("rebuild after new agent:  %8.1f s\n", again.Seconds())
		fmt.Printf("ratio rebuild/full:       %8.3f\n", again.Seconds()/full.Seconds())
		fmt.Printf("steps run again:          %s\n", strings.Join(ran, "; "))
		fmt.Printf("steps CACHED:             %d (%s)\n", len(cached), summarize(cached))
		b.ReportMetric(full.Seconds(), "full-s")
		b.ReportMetric(noop.Seconds(), "noop-rebuild-s")
		b.ReportMetric(again.Seconds(), "agent-rebuild-s")
		b.ReportMetric(again.Seconds()/full.Seconds(), "ratio")
		if len(stale) > 0 {
			b.Errorf("steps outside the agent layer ran again: %q", stale)
		}
	}
}

// summarize counts steps by layer prefix.
func summarize(names []string) string {
	counts := map[string]int{}
	var order []string
	for _, n := range names {
		layer, _, _ := strings.Cut(n, ":")
		if counts[layer] == 0 {
			order = append(order, layer)
		}
		counts[layer]++
	}
	var parts []string
	for _, l := range order {
		parts = append(parts, fmt.Sprintf("%s %d", l, counts[l]))
	}
	return strings.Join(parts, ", ")
}
