package main

// The benchmark of issue 9 (`make bench`; `make bench-smoke` is one run): the Kata example
// (examples/debian.cue, unchanged, with the stand-in agent and OPA beside it) built through the
// real rootfsc and a real buildkitd, each run on a fresh daemon state, and mmdebstrap of the same
// package set from the same mirror to a folder on the same disk. It prints a table of medians over
// ROOTFSC_BENCH runs and, for the last run, where the time of the cold build and of a one-file
// change went (BuildKit's step timings from --progress=rawjson). It asserts no timing: what it
// fails on is a step outside the changed layer running again, or a no-op rebuild that re-exported.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootfsc/rootfsc/distros/lock"
)

// benchRuns is the number of runs ROOTFSC_BENCH asks for (0: the benchmark is skipped).
func benchRuns(t *testing.T) int {
	v := os.Getenv("ROOTFSC_BENCH")
	if v == "" {
		t.Skip("set ROOTFSC_BENCH=RUNS (make bench) to run the benchmark")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("ROOTFSC_BENCH=%q: want a number of runs", v)
	}
	return n
}

// figure is one row of the table: a value per run.
type figure struct {
	name, unit string
	values     []float64
}

func (f *figure) median() float64 {
	v := slices.Clone(f.values)
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// measured is what one rootfsc (or mmdebstrap) run took.
type measured struct {
	wall   time.Duration
	maxRSS int64 // KiB, the child's peak resident set (wait4's rusage)
	out    string
}

// timed runs name with args in dir with env and fails the test unless it succeeds.
func timed(t *testing.T, dir string, env []string, name string, args ...string) measured {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(out))
	}
	return measured{wall: wall, maxRSS: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, out: string(out)}
}

func TestBench(t *testing.T) {
	runs := benchRuns(t)
	figs := map[string]*figure{}
	var order []string
	add := func(name, unit string, v float64) {
		f := figs[name]
		if f == nil {
			f = &figure{name: name, unit: unit}
			figs[name] = f
			order = append(order, name)
		}
		f.values = append(f.values, v)
	}
	var last benchRun
	for i := 0; i < runs; i++ {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			last = benchOnce(t, add)
		})
		if t.Failed() {
			return
		}
	}
	host, _ := os.Hostname()
	cpu := cpuModel()
	fmt.Printf("\nrootfsc benchmark, %s, %s (%s, %d CPUs), %d run(s), medians\n\n", time.Now().UTC().Format(time.RFC3339), host, cpu, numCPU(), runs)
	fmt.Printf("| %-44s | %10s | %s |\n", "figure", "median", "runs")
	fmt.Printf("| %-44s | %10s | %s |\n", strings.Repeat("-", 44), strings.Repeat("-", 10), "----")
	for _, n := range order {
		f := figs[n]
		var each []string
		for _, v := range f.values {
			each = append(each, format(v, f.unit))
		}
		fmt.Printf("| %-44s | %10s | %s |\n", n, format(f.median(), f.unit), strings.Join(each, " "))
	}
	fmt.Printf("\nwhere the time of the last run's cold build went (BuildKit's steps, longest first):\n%s", last.coldSteps)
	fmt.Printf("\nand of its one-file change:\n%s", last.fileSteps)
	fmt.Printf("\nrootfsc's CPU profile of the one-file change (ROOTFSC_CPUPROFILE):\n%s", last.fileProfile)
}

func format(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "MB":
		return fmt.Sprintf("%.0f MB", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// benchRun is what the report takes from one run beside the figures.
type benchRun struct {
	coldSteps, fileSteps string
	fileProfile          string // rootfsc's CPU profile of the one-file change, its top functions
}

// pprofTop is go tool pprof's list of the functions that took most of a profile's CPU time.
func pprofTop(t *testing.T, binary, profile string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", binary, profile).CombinedOutput()
	if err != nil {
		t.Logf("go tool pprof: %v\n%s", err, out)
		return ""
	}
	return string(out)
}

func benchOnce(t *testing.T, add func(name, unit string, v float64)) benchRun {
	h := newHarness(t) // a fresh daemon state: the first build is cold
	dir := t.TempDir()
	example, err := os.ReadFile("../../examples/debian.cue")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "m.cue"), string(example))
	agent := filepath.Join(dir, "bin", "kata-agent-standin")
	if err := os.MkdirAll(filepath.Dir(agent), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), agent)
	copyFile(t, filepath.Join(h.bin, "opa"), filepath.Join(dir, "bin", "opa"))
	rootfsc := filepath.Join(h.bin, "rootfsc")
	env := append(slices.Clone(h.env), "ROOTFSC_CACHE_DIR="+t.TempDir())
	build := []string{"build", "--locked", "--progress=rawjson", "m.cue"}

	// Resolution: with an empty index cache, then with the verified indexes cached.
	m := timed(t, dir, env, rootfsc, "lock", "m.cue")
	add("resolve, cold index cache (rootfsc lock)", "s", m.wall.Seconds())
	add("rootfsc peak RSS, resolve, cold index cache", "MB", float64(m.maxRSS)/1024)
	m = timed(t, dir, env, rootfsc, "lock", "m.cue")
	add("resolve, index cached", "s", m.wall.Seconds())
	add("rootfsc peak RSS, resolve, index cached", "MB", float64(m.maxRSS)/1024)
	m = timed(t, dir, env, rootfsc, "llb", "--locked", "m.cue")
	add("lowering (rootfsc llb)", "s", m.wall.Seconds())

	cold := timed(t, dir, env, rootfsc, build...)
	add("cold build, Kata example, to a dir", "s", cold.wall.Seconds())
	mm := mmdebstrap(t, dir)
	add("mmdebstrap, same package set, to a dir", "s", mm.Seconds())
	add("cold ratio rootfsc / mmdebstrap", "", cold.wall.Seconds()/mm.Seconds())
	add("rootfsc peak RSS, cold build", "MB", float64(cold.maxRSS)/1024)

	noop := timed(t, dir, env, rootfsc, build...)
	add("no-op rebuild", "s", noop.wall.Seconds())
	if ran, _ := stepsRun(t, noop.out, "base:", "modules:", "policy:", "kata:", "files:", "agent:"); len(ran) > 0 {
		t.Errorf("no-op rebuild ran steps again: %q", ran)
	}

	f, err := os.OpenFile(agent, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\x00benchmark %d", time.Now().UnixNano())
	f.Close()
	ag := timed(t, dir, env, rootfsc, build...)
	add("agent change", "s", ag.wall.Seconds())
	onlyLayer(t, "agent", ag.out)

	edit(t, filepath.Join(dir, "m.cue"), `builtin: "allow-all"`, `builtin: "allow-all-except-exec-process"`)
	pol := timed(t, dir, env, rootfsc, build...)
	add("policy change", "s", pol.wall.Seconds())
	onlyLayer(t, "policy", pol.out)

	edit(t, filepath.Join(dir, "m.cue"), `by rootfsc\n"`, `by rootfsc, benchmark\n"`)
	prof := filepath.Join(t.TempDir(), "one-file.pprof")
	file := timed(t, dir, append(slices.Clone(env), "ROOTFSC_CPUPROFILE="+prof), rootfsc, build...)
	add("one-file change (files: /etc/motd)", "s", file.wall.Seconds())
	onlyLayer(t, "files", file.out)
	if b, err := os.ReadFile(filepath.Join(dir, "rootfs/etc/motd")); err != nil || !strings.Contains(string(b), "benchmark") {
		t.Errorf("the changed file is not in the rootfs: %q, %v", b, err)
	}

	if kb := daemonPeak(t, h.state); kb > 0 {
		add("buildkitd peak RSS (VmHWM), whole run", "MB", float64(kb)/1024)
	}
	return benchRun{coldSteps: slowSteps(t, cold.out, 12), fileSteps: slowSteps(t, file.out, 6), fileProfile: pprofTop(t, rootfsc, prof)}
}

// edit replaces old by new in the file, which must hold old.
func edit(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q to change", file, old)
	}
	writeFile(t, file, strings.Replace(string(b), old, new, 1))
}

// onlyLayer fails when a step of a layer other than layer (and the check, which reads them all)
// ran again in a rebuild's log.
func onlyLayer(t *testing.T, layer, log string) {
	t.Helper()
	ran, seen := stepsRun(t, log, "base:", "modules:", "policy:", "kata:", "files:", "agent:")
	if len(seen) == 0 {
		t.Fatalf("no layer step in the progress log:\n%s", tail([]byte(log)))
	}
	var stale []string
	for _, n := range ran {
		if !strings.HasPrefix(n, layer+":") {
			stale = append(stale, n)
		}
	}
	if len(stale) > 0 {
		t.Errorf("after changing the %s, steps of other layers ran again: %q", layer, stale)
	}
}

// mmdebstrap bootstraps the lock's package set (the closure rootfsc installs) from the host's
// mirror, with the merged-/usr hook, into a folder next to the rootfs, and returns how long it
// took. The lock's suites name the archives, which the host's apt sources map to URLs.
func mmdebstrap(t *testing.T, dir string) time.Duration {
	t.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Fatalf("mmdebstrap is not installed (make deps installs it): %v", err)
	}
	lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range lk.Packages {
		names = append(names, p.Name)
	}
	archives := hostArchives(t)
	target := filepath.Join(dir, "mmdebstrap")
	args := []string{"--variant=required", "--include=" + strings.Join(names, ","),
		"--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", lk.Release, target}
	for _, s := range lk.Suites {
		uri, ok := archives[s.Archive]
		if !ok {
			t.Fatalf("the host's apt sources name no mirror for the %s archive (suite %s)", s.Archive, s.Name)
		}
		args = append(args, "deb "+uri+" "+s.Name+" main")
	}
	start := time.Now()
	if out, err := exec.Command("mmdebstrap", args...).CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap %s: %v\n%s", strings.Join(args, " "), err, tail(out))
	}
	took := time.Since(start)
	if err := os.RemoveAll(target); err != nil {
		t.Fatal(err)
	}
	return took
}

// daemonPeak is the high-water mark of the resident set of the state's buildkitd, in KiB (0 when
// it cannot be read).
func daemonPeak(t *testing.T, state string) int64 {
	b, err := os.ReadFile(filepath.Join(state, "buildkitd.pid"))
	if err != nil {
		t.Logf("buildkitd's pid: %v", err)
		return 0
	}
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/status")
	if err != nil {
		t.Logf("buildkitd's status: %v", err)
		return 0
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// slowSteps lists the n longest steps of a rawjson progress log, one a line.
func slowSteps(t *testing.T, log string, n int) string {
	t.Helper()
	type span struct{ start, end time.Time }
	steps := map[string]*span{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var st struct {
			Vertexes []struct {
				Name      string
				Cached    bool
				Started   *time.Time
				Completed *time.Time
			}
		}
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			t.Fatalf("progress line %q: %v", line, err)
		}
		for _, v := range st.Vertexes {
			if v.Started == nil || v.Completed == nil || v.Cached {
				continue
			}
			s := steps[v.Name]
			if s == nil {
				s = &span{*v.Started, *v.Completed}
				steps[v.Name] = s
			}
			if v.Started.Before(s.start) {
				s.start = *v.Started
			}
			if v.Completed.After(s.end) {
				s.end = *v.Completed
			}
		}
	}
	names := make([]string, 0, len(steps))
	for n := range steps {
		names = append(names, n)
	}
	dur := func(n string) time.Duration { return steps[n].end.Sub(steps[n].start) }
	sort.Slice(names, func(i, j int) bool { return dur(names[i]) > dur(names[j]) })
	var b strings.Builder
	for i, nm := range names {
		if i == n {
			break
		}
		if len(nm) > 100 {
			nm = nm[:100] + "…"
		}
		fmt.Fprintf(&b, "  %7.2f s  %s\n", dur(names[i]).Seconds(), nm)
	}
	return b.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + 1
}
