package main

// Faults, with the real rootfsc binary and its embedded buildkitd (the harness of
// integration_test.go): signals mid-build and mid-export, a second Ctrl-C against a frozen
// daemon, buildkitd killed mid-build, a full disk under the output, two processes starting the
// daemon at once, and destinations rootfsc must not replace. The manifests are overlays (no
// distro, no mirror); a large local file makes the transfer and the export last long enough
// to be interrupted.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rootfsc/rootfsc/engine"
)

const (
	smallManifest = `agent: file: "kata-agent"
policy: {builtin: "allow-set-policy", engine: "agent-builtin"}
files: "/etc/motd": content: "v1\n"
`
	bigManifest = `agent: file: "kata-agent"
policy: {builtin: "allow-set-policy", engine: "agent-builtin"}
files: "/etc/motd": content: "v2\n"
files: "/big": source: "big.bin"
`
	bigSize = 96 << 20
)

// faultDir is a folder with the stand-in agent, small.cue and big.cue.
func faultDir(t *testing.T, h *harness) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join(h.bin, "kata-agent-standin"), filepath.Join(dir, "kata-agent"))
	writeFile(t, filepath.Join(dir, "small.cue"), smallManifest)
	writeFile(t, filepath.Join(dir, "big.cue"), bigManifest)
	return dir
}

// newBig writes big.bin with content no earlier build had, so big.cue is built again.
func newBig(t *testing.T, dir string) {
	t.Helper()
	b := make([]byte, bigSize)
	rand.Read(b[:4096])
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot fingerprints the outputs in dir: every name, the dir output's motd, each tar's sum.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	s := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			b, _ := os.ReadFile(filepath.Join(p, "etc/motd"))
			s[e.Name()] = "dir, motd " + string(b)
		default:
			s[e.Name()] = fileSum(t, p)
		}
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a rootfsc running in the background.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func (h *harness) start(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(h.bin, "rootfsc"), args...)
	buf := &syncBuffer{}
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, h.env, buf, buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, out: buf, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// until waits for cond while the process runs; it fails the test if the process ends first.
func (p *proc) until(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.After(2 * time.Minute)
	for !cond() {
		select {
		case <-p.done:
			p.t.Fatalf("rootfsc ended (%v) before %s:\n%s", p.cmd.ProcessState, what, tail([]byte(p.out.String())))
		case <-deadline:
			p.t.Fatalf("no %s within 2 minutes:\n%s", what, tail([]byte(p.out.String())))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *proc) printed(s string) func() bool {
	return func() bool { return strings.Contains(p.out.String(), s) }
}

// exit waits up to d for the process to end and returns its exit code.
func (p *proc) exit(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		p.t.Fatalf("rootfsc still running %s later:\n%s", d, tail([]byte(p.out.String())))
		return -1
	}
}

func (p *proc) signal(s syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatal(err)
	}
}

// tempIn reports whether dir holds a temporary output.
func tempIn(dir string) func() bool {
	return func() bool {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				return true
			}
		}
		return false
	}
}

func daemonPid(t *testing.T, h *harness) int {
	t.Helper()
	st, err := engine.Status(context.Background(), h.state)
	if err != nil || st.PID == 0 {
		t.Fatalf("no embedded daemon: %+v %v", st, err)
	}
	return st.PID
}

func TestFaultSignals(t *testing.T) {
	h := newHarness(t)
	dir := faultDir(t, h)
	out := filepath.Join(dir, "out")
	h.run(dir, true, "build", "--progress=plain", "-o", "type=dir,dest=out/rootfs", "-o", "type=tar,dest=out/rootfs.tar", "small.cue")
	before := snapshot(t, out)
	kept := func(t *testing.T) {
		t.Helper()
		if diff := cmp.Diff(before, snapshot(t, out)); diff != "" {
			t.Errorf("previous outputs changed (-before +after):\n%s", diff)
		}
		assertNoTemp(t, out)
	}

	t.Run("SIGINT mid-build", func(t *testing.T) {
		newBig(t, dir)
		p := h.start(t, dir, "build", "--progress=plain", "-o", "type=dir,dest=out/rootfs", "-o", "type=tar,dest=out/rootfs.tar", "big.cue")
		p.until("the transfer of big.bin", p.printed("transferring context:"))
		p.signal(syscall.SIGINT)
		if code := p.exit(time.Minute); code != 130 {
			t.Errorf("exit code %d, want 130", code)
		}
		if !strings.Contains(p.out.String(), "rootfsc: interrupted by SIGINT\n") {
			t.Errorf("no interrupted by SIGINT:\n%s", tail([]byte(p.out.String())))
		}
		kept(t)
	})

	t.Run("SIGTERM mid-export", func(t *testing.T) {
		newBig(t, dir)
		p := h.start(t, dir, "build", "--progress=plain", "-o", "type=dir,dest=out/rootfs", "big.cue")
		p.until("the export's temporary tree", tempIn(out))
		p.signal(syscall.SIGTERM)
		if code := p.exit(time.Minute); code != 143 {
			t.Errorf("exit code %d, want 143", code)
		}
		if !strings.Contains(p.out.String(), "rootfsc: interrupted by SIGTERM\n") {
			t.Errorf("no interrupted by SIGTERM:\n%s", tail([]byte(p.out.String())))
		}
		kept(t)
	})

	t.Run("SIGKILL mid-export, the next run removes the temporary", func(t *testing.T) {
		newBig(t, dir)
		p := h.start(t, dir, "build", "--progress=plain", "-o", "type=tar,dest=out/rootfs.tar", "big.cue")
		p.until("the export's temporary file", tempIn(out))
		p.signal(syscall.SIGKILL)
		p.exit(time.Minute)
		if !tempIn(out)() {
			t.Fatal("SIGKILL left no temporary to clean up")
		}
		// A folder that only looks like a temporary is not rootfsc's to remove.
		lookalike := filepath.Join(out, "rootfs.tar.tmp-mine")
		if err := os.Mkdir(lookalike, 0o755); err != nil {
			t.Fatal(err)
		}
		h.run(dir, true, "build", "--progress=plain", "-o", "type=tar,dest=out/rootfs.tar", "small.cue")
		if _, err := os.Stat(lookalike); err != nil {
			t.Errorf("the next run removed an unmarked folder: %v", err)
		}
		os.Remove(lookalike)
		kept(t)
	})

	// A frozen daemon: the first Ctrl-C cancels, and the client then waits for the daemon's
	// status stream (5 s); the second one must end rootfsc at once. It used to be swallowed.
	t.Run("second SIGINT forces the exit", func(t *testing.T) {
		newBig(t, dir)
		p := h.start(t, dir, "build", "--progress=plain", "-o", "type=dir,dest=out/rootfs", "big.cue")
		p.until("the transfer of big.bin", p.printed("transferring context:"))
		pid := daemonPid(t, h)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(pid, syscall.SIGCONT)
		p.signal(syscall.SIGINT)
		select {
		case <-p.done:
			t.Fatalf("rootfsc ended at the first SIGINT with a frozen daemon, nothing left to force:\n%s", tail([]byte(p.out.String())))
		case <-time.After(time.Second):
		}
		p.signal(syscall.SIGINT)
		if code := p.exit(2 * time.Second); code != 130 {
			t.Errorf("exit code %d, want 130", code)
		}
		if !strings.Contains(p.out.String(), "rootfsc: SIGINT again: exiting without cleaning up\n") {
			t.Errorf("no SIGINT again:\n%s", tail([]byte(p.out.String())))
		}
		syscall.Kill(pid, syscall.SIGCONT)
		kept(t)
	})
}

func TestFaultDaemonKilled(t *testing.T) {
	h := newHarness(t)
	dir := faultDir(t, h)
	out := filepath.Join(dir, "out")
	h.run(dir, true, "build", "--progress=plain", "-o", "type=dir,dest=out/rootfs", "small.cue")
	before := snapshot(t, out)

	newBig(t, dir)
	p := h.start(t, dir, "build", "--progress=plain", "-o", "type=dir,dest=out/rootfs", "big.cue")
	p.until("the transfer of big.bin", p.printed("transferring context:"))
	pid := daemonPid(t, h)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.exit(time.Minute); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	want := "rootfsc build: engine: dir output out/rootfs: the embedded buildkitd went away during the build (its log: " +
		filepath.Join(h.state, "buildkitd.log") + "); the next build starts it again and reuses its cache: "
	if !strings.Contains(p.out.String(), want) {
		t.Errorf("output does not say %q:\n%s", want, tail([]byte(p.out.String())))
	}
	if diff := cmp.Diff(before, snapshot(t, out)); diff != "" {
		t.Errorf("previous output changed (-before +after):\n%s", diff)
	}
	assertNoTemp(t, out)

	// The next build starts a new daemon over the same state and finds the layers that
	// big.cue shares with small.cue in its cache.
	log := h.run(dir, true, "build", "--progress=rawjson", "-o", "type=dir,dest=out/rootfs", "big.cue")
	ran, seen := stepsRun(t, log, "kata:", "policy:", "agent:")
	if len(seen) == 0 || len(ran) > 0 {
		t.Errorf("after the restart, steps %q of %q ran again", ran, seen)
	}
	if got := daemonPid(t, h); got == pid {
		t.Errorf("daemon pid %d unchanged after SIGKILL", got)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "rootfs/etc/motd")); string(b) != "v2\n" {
		t.Errorf("motd after the rebuild = %q", b)
	}
}

func TestFaultDiskFull(t *testing.T) {
	h := newHarness(t)
	dir := faultDir(t, h)
	full := filepath.Join(dir, "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	// Room for the small outputs (~9 MB each) and not for big.bin.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=40m", "rootfs-test-full", full).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", full).Run() })
	h.run(dir, true, "build", "--progress=plain", "-o", "type=dir,dest=full/rootfs", "-o", "type=tar,dest=full/rootfs.tar", "small.cue")
	before := snapshot(t, full)
	newBig(t, dir)

	for _, o := range []struct{ typ, dest string }{{"dir", "full/rootfs"}, {"tar", "full/rootfs.tar"}} {
		t.Run(o.typ, func(t *testing.T) {
			got := h.run(dir, false, "build", "--progress=plain", "-o", "type="+o.typ+",dest="+o.dest, "big.cue")
			want := "rootfsc build: engine: " + o.typ + " output " + o.dest +
				": no space left on its filesystem (ENOSPC), the previous output is untouched: "
			if !strings.Contains(got, want) || !strings.Contains(got, "no space left on device") {
				t.Errorf("output does not say %q … no space left on device:\n%s", want, tail([]byte(got)))
			}
			if diff := cmp.Diff(before, snapshot(t, full)); diff != "" {
				t.Errorf("previous outputs changed (-before +after):\n%s", diff)
			}
			assertNoTemp(t, full)
		})
	}
}

// Two rootfsc processes that find no daemon start one between them, and both use it.
func TestFaultConcurrentStart(t *testing.T) {
	h := newHarness(t)
	p1 := h.start(t, "/", "prune")
	p2 := h.start(t, "/", "prune")
	for _, p := range []*proc{p1, p2} {
		if code := p.exit(time.Minute); code != 0 {
			t.Errorf("prune: exit %d\n%s", code, p.out.String())
		}
		if !regexp.MustCompile(`(?m)^pruned \d+ cache records, .* reclaimed$`).MatchString(p.out.String()) {
			t.Errorf("prune printed:\n%s", p.out.String())
		}
	}
	daemons := 0
	ents, _ := os.ReadDir("/proc")
	root := "--root\x00" + filepath.Join(h.state, "root") + "\x00"
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(b, []byte(root)) {
			daemons++
		}
	}
	if daemons != 1 {
		t.Errorf("%d buildkitd processes for %s, want 1", daemons, h.state)
	}
	pid := daemonPid(t, h)

	status := h.run("/", true, "daemon", "status")
	if want := fmt.Sprintf("buildkitd: pid %d, answering; workers ", pid); !strings.Contains(status, want) {
		t.Errorf("daemon status does not say %q:\n%s", want, status)
	}
	h.run("/", true, "daemon", "stop")
	if status := h.run("/", true, "daemon", "status"); !strings.Contains(status, "buildkitd: not running\n") {
		t.Errorf("daemon status after stop:\n%s", status)
	}
}

// Destinations an output must not replace, whoever names them; nothing is touched.
func TestFaultForeignDest(t *testing.T) {
	h := newHarness(t)
	dir := faultDir(t, h)
	work := filepath.Join(dir, "work")
	mine := filepath.Join(dir, "mine")
	for _, d := range []string{work, mine} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(mine, "precious"), "precious\n")
	for _, tc := range []struct{ dest, why string }{
		{"/", "it is /"},
		{mine, "it exists and rootfsc did not write it (no trusted.rootfsc.output mark); remove it or use --force"},
		{dir, "it holds the working directory " + work + " (--force overrides)"},
		{h.state, "it holds the state directory " + h.state + " (--force overrides)"},
	} {
		got := h.run(work, false, "build", "-o", "type=dir,dest="+tc.dest, "../small.cue")
		want := "rootfsc build: engine: dir output: refusing to replace " + tc.dest + ": " + tc.why + "\n"
		if !strings.HasSuffix(got, want) {
			t.Errorf("-o dest=%s: got\n%s\nwant …%s", tc.dest, got, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mine, "precious")); err != nil || string(b) != "precious\n" {
		t.Errorf("mine/precious = %q %v", b, err)
	}
}
