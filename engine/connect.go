package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
	"golang.org/x/sys/unix"
)

const (
	defaultStateDir = "/var/lib/rootfsc"
	pingTimeout     = 3 * time.Second
	startTimeout    = 30 * time.Second
)

// stateDir returns the embedded daemon's state directory for opts.
func stateDir(opts Opts) string {
	if opts.StateDir != "" {
		return opts.StateDir
	}
	if v := os.Getenv("ROOTFSC_STATE_DIR"); v != "" {
		return v
	}
	return defaultStateDir
}

func socketAddr(dir string) string { return "unix://" + filepath.Join(dir, "buildkitd.sock") }

// Connect returns a client for opts.Addr, else $BUILDKIT_HOST, else the
// embedded buildkitd for the state directory, starting it if nothing answers.
func Connect(ctx context.Context, opts Opts) (*client.Client, error) {
	addr := opts.Addr
	if addr == "" {
		addr = os.Getenv("BUILDKIT_HOST")
	}
	if addr != "" {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("buildkitd at %s is not answering: %w", addr, err)
		}
		return c, nil
	}
	return connectEmbedded(ctx, stateDir(opts))
}

// dial connects to addr and checks that the daemon answers.
func dial(ctx context.Context, addr string) (*client.Client, error) {
	c, err := client.New(ctx, addr)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := c.ListWorkers(pctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func connectEmbedded(ctx context.Context, dir string) (*client.Client, error) {
	addr := socketAddr(dir)
	sock := filepath.Join(dir, "buildkitd.sock")
	if _, err := os.Stat(sock); err == nil {
		if c, err := dial(ctx, addr); err == nil {
			return c, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	// Serialise concurrent starts against the same state dir.
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN)
	// Someone else may have started it while we waited for the lock.
	if _, err := os.Stat(sock); err == nil {
		if c, err := dial(ctx, addr); err == nil {
			return c, nil
		}
		os.Remove(sock) // stale
	}

	bin, err := findBuildkitd()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, errors.New("runc not found: apt-get install runc")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the embedded daemon needs root (or point --addr/BUILDKIT_HOST at a running buildkitd)")
	}

	logPath := filepath.Join(dir, "buildkitd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("buildkitd log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)

	cmd := exec.Command(bin,
		"--root", filepath.Join(dir, "root"),
		"--addr", addr,
		"--oci-worker=true",
		"--containerd-worker=false",
		"--oci-worker-snapshotter=overlayfs",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	pidPath := filepath.Join(dir, "buildkitd.pid")
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("buildkitd pidfile: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(sock); err == nil {
			if c, err := dial(ctx, addr); err == nil {
				return c, nil
			}
		}
		select {
		case err := <-exited:
			os.Remove(pidPath)
			return nil, fmt.Errorf("buildkitd exited during startup (%v); log %s:\n%s", err, logPath, logTail(logPath, logStart))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("buildkitd did not answer on %s within %s; log %s:\n%s", addr, startTimeout, logPath, logTail(logPath, logStart))
		}
	}
}

// findBuildkitd looks next to the running executable, then on PATH.
func findBuildkitd() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "buildkitd")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return p, nil
	}
	return "", errors.New("buildkitd not found next to rootfsc or on PATH; build it with `go build -o DIR/buildkitd github.com/moby/buildkit/cmd/buildkitd` (from the rootfsc module)")
}

// logTail returns the last lines of the log written since offset start.
func logTail(path string, start int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if start > 0 && start <= int64(len(b)) {
		b = b[start:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Stop terminates the embedded daemon whose pid is recorded in
// stateDir/buildkitd.pid and waits (up to ~15s) for it to go away.
func Stop(stateDir string) error {
	pidPath := filepath.Join(stateDir, "buildkitd.pid")
	b, err := os.ReadFile(pidPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("bad pidfile %s", pidPath)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		if errors.Is(err, unix.ESRCH) {
			os.Remove(pidPath)
			return nil
		}
		return err
	}
	for i := 0; i < 150; i++ {
		if !alive(pid) {
			os.Remove(pidPath)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	unix.Kill(pid, unix.SIGKILL)
	for i := 0; i < 50 && alive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	os.Remove(pidPath)
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if unix.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(st, ')'); i >= 0 && i+2 < len(st) {
		return st[i+2] != 'Z'
	}
	return true
}
