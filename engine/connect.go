package engine

// Connecting to BuildKit: a remote daemon named by an address (with TLS, or through BuildKit's
// connection helpers), or rootfsc's embedded buildkitd, which lives in a state directory that it
// owns and is shared by every rootfsc process that uses that directory.
//
// The embedded daemon's lifecycle rests on two locks, never on timing:
//   - STATE/lock (ours) serialises starting and stopping between rootfsc processes;
//   - STATE/root/buildkitd.lock (buildkitd's own, taken at start-up) says whether a daemon is
//     alive in that state directory, however slowly it answers.
//
// A daemon that holds its lock is waited for, never replaced; a pid is signalled only when
// /proc says it is buildkitd running with this state directory's --root.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/connhelper"
	"github.com/moby/buildkit/util/grpcerrors"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	// The connection helpers buildctl registers: docker-container://, kube-pod://, ssh://,
	// nerdctl-container://, podman-container://.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	_ "github.com/moby/buildkit/client/connhelper/nerdctlcontainer"
	_ "github.com/moby/buildkit/client/connhelper/podmancontainer"
	_ "github.com/moby/buildkit/client/connhelper/ssh"
)

const (
	defaultStateDir = "/var/lib/rootfsc"
	pingTimeout     = 3 * time.Second
	startTimeout    = 30 * time.Second
	stopTimeout     = 15 * time.Second
)

// ConnectOpts says which BuildKit daemon to use and how to reach it. The TLS fields are
// buildctl's --tlscacert, --tlscert, --tlskey and --tlsservername.
type ConnectOpts struct {
	// Addr is the daemon's address (unix://, tcp://, docker-container://, kube-pod://, ssh://…);
	// "" means $BUILDKIT_HOST, else the embedded daemon of StateDir.
	Addr string
	// StateDir is the embedded daemon's state directory; "" means $ROOTFSC_STATE_DIR, else
	// /var/lib/rootfsc.
	StateDir string
	// TLSCACert is the CA certificate file the daemon's certificate must chain to.
	TLSCACert string
	// TLSCert and TLSKey are the client certificate and key files.
	TLSCert, TLSKey string
	// TLSServerName is the name the daemon's certificate must carry; "" means the host of Addr.
	TLSServerName string
	// GCKeepStorage bounds the state of an embedded daemon that this connection starts:
	// buildkitd's --oci-worker-gc-keepstorage, RESERVED[,FREE[,MAX]] in MB (keep RESERVED, keep
	// FREE free on the disk, never use more than MAX); "" means $ROOTFSC_GC_KEEP_STORAGE, else
	// BuildKit's default (10% of the disk up to 10 GB kept, 20% free, at most 80% up to 100 GB).
	// BuildKit collects at most once a minute, a second after a build.
	GCKeepStorage string
}

// gcKeepStorage is the embedded daemon's GC bound that o names ("" for BuildKit's default).
func (o ConnectOpts) gcKeepStorage() (string, error) {
	v := o.GCKeepStorage
	if v == "" {
		v = os.Getenv("ROOTFSC_GC_KEEP_STORAGE")
	}
	if v != "" && !gcKeepRE.MatchString(v) {
		return "", fmt.Errorf("the embedded daemon's keep-storage %q: want RESERVED[,FREE[,MAX]] in MB, like 10000,0,20000", v)
	}
	return v, nil
}

var gcKeepRE = regexp.MustCompile(`^[0-9]{1,9}(,[0-9]{1,9}){0,2}$`)

// StateDir returns the embedded daemon's state directory that dir names: dir itself (made
// absolute), else $ROOTFSC_STATE_DIR, else /var/lib/rootfsc.
func StateDir(dir string) string {
	if dir == "" {
		dir = os.Getenv("ROOTFSC_STATE_DIR")
	}
	if dir == "" {
		dir = defaultStateDir
	}
	// buildkitd runs in /, so a relative --root would name another folder.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return dir
}

func socketPath(dir string) string { return filepath.Join(dir, "buildkitd.sock") }
func socketAddr(dir string) string { return "unix://" + socketPath(dir) }
func pidPath(dir string) string    { return filepath.Join(dir, "buildkitd.pid") }
func rootPath(dir string) string   { return filepath.Join(dir, "root") }

// Connect returns a client of the daemon opts name: opts.Addr, else $BUILDKIT_HOST, else the
// embedded buildkitd of the state directory, started if none is running there. The client has
// answered a request before Connect returns.
func Connect(ctx context.Context, opts ConnectOpts) (*client.Client, error) {
	addr := opts.Addr
	if addr == "" {
		addr = os.Getenv("BUILDKIT_HOST")
	}
	if addr == "" {
		gcKeep, err := opts.gcKeepStorage()
		if err != nil {
			return nil, err
		}
		return connectEmbedded(ctx, StateDir(opts.StateDir), gcKeep)
	}
	if err := checkScheme(addr); err != nil {
		return nil, err
	}
	copts, err := tlsOpts(addr, opts)
	if err != nil {
		return nil, err
	}
	c, err := dial(ctx, addr, copts...)
	if err != nil {
		return nil, fmt.Errorf("buildkitd at %s is not answering: %w%s", addr, err, tlsHint(err, addr, opts))
	}
	return c, nil
}

// checkScheme refuses an address that neither gRPC nor a connection helper can dial: gRPC
// would take "frob://x" for a host name and fail on its port.
func checkScheme(addr string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("buildkitd address %q: %w", addr, err)
	}
	if u.Scheme == "unix" || u.Scheme == "tcp" {
		return nil
	}
	if h, err := connhelper.GetConnectionHelper(addr); err != nil {
		return fmt.Errorf("buildkitd address %q: %w", addr, err)
	} else if h == nil {
		return fmt.Errorf("buildkitd address %q: unknown scheme %q (want unix://, tcp://, docker-container://, kube-pod://, ssh://, nerdctl-container:// or podman-container://)", addr, u.Scheme)
	}
	return nil
}

// tlsOpts are the client options for opts' TLS files, as buildctl builds them: the server name
// defaults to the address's host, and no file means no TLS.
func tlsOpts(addr string, opts ConnectOpts) ([]client.ClientOpt, error) {
	var copts []client.ClientOpt
	if opts.TLSCACert != "" {
		name := opts.TLSServerName
		if name == "" {
			u, err := url.Parse(addr)
			if err != nil {
				return nil, fmt.Errorf("buildkitd address %q: %w", addr, err)
			}
			name = u.Hostname()
		}
		copts = append(copts, client.WithServerConfig(name, opts.TLSCACert))
	}
	if opts.TLSCert != "" || opts.TLSKey != "" {
		if opts.TLSCert == "" || opts.TLSKey == "" {
			return nil, errors.New("--tlscert and --tlskey go together")
		}
		copts = append(copts, client.WithCredentials(opts.TLSCert, opts.TLSKey))
	}
	return copts, nil
}

// tlsHint names the flags a TLS failure most likely needs: gRPC's words for a refused
// handshake mean little to someone who did not know the daemon wanted TLS.
func tlsHint(err error, addr string, opts ConnectOpts) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "x509:"):
		return " (check --tlscacert and --tlsservername against the daemon's certificate)"
	case opts.TLSCACert == "" && strings.HasPrefix(addr, "tcp://") && (strings.Contains(msg, "server preface") || strings.Contains(msg, "connection closed")):
		return " (the daemon may require TLS: --tlscacert, --tlscert, --tlskey)"
	case opts.TLSCACert != "" && opts.TLSCert == "":
		// With TLS 1.3 the refusal of a missing client certificate arrives after the
		// handshake, as "certificate required" or as a broken pipe.
		return " (the daemon may require a client certificate: --tlscert, --tlskey)"
	case strings.Contains(msg, "tls:"):
		return " (check the TLS files against the daemon's configuration)"
	}
	return ""
}

// dial connects to addr and checks that the daemon answers within pingTimeout.
func dial(ctx context.Context, addr string, opts ...client.ClientOpt) (*client.Client, error) {
	c, err := client.New(ctx, addr, opts...)
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

func connectEmbedded(ctx context.Context, dir, gcKeep string) (*client.Client, error) {
	addr := socketAddr(dir)
	if _, err := os.Stat(socketPath(dir)); err == nil {
		if c, err := dial(ctx, addr); err == nil {
			return c, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	unlock, err := lockState(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// A daemon that holds its root's lock is alive however slowly it answers: wait for it.
	if daemonRunning(dir) {
		c, err := waitAnswer(ctx, dir, nil)
		if err != nil && ctx.Err() == nil {
			pid, _ := findDaemon(dir)
			return nil, fmt.Errorf("%w: a buildkitd (pid %d) holds %s but does not answer; `rootfsc daemon stop` stops it", err, pid, rootPath(dir))
		}
		return c, err
	}
	// Nothing runs here, so a socket left behind is stale.
	os.Remove(socketPath(dir))
	return startDaemon(ctx, dir, gcKeep)
}

// lockState takes STATE/lock, giving up when ctx ends; the returned function releases it.
func lockState(ctx context.Context, dir string) (func(), error) {
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the file releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("state dir lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the state dir lock %s: %w", p, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// daemonRunning reports whether a buildkitd holds the lock it takes on the state directory's
// root: true for a live daemon, whether or not it answers yet.
func daemonRunning(dir string) bool {
	f, err := os.OpenFile(filepath.Join(rootPath(dir), "buildkitd.lock"), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// startDaemon starts buildkitd for dir and waits until it answers. The caller holds the state
// lock. On any failure, cancellation included, the child is stopped before startDaemon returns.
func startDaemon(ctx context.Context, dir, gcKeep string) (*client.Client, error) {
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

	// Not CommandContext: a started daemon outlives this process; only a failed start kills it.
	cmd := exec.Command(bin,
		"--root", rootPath(dir),
		"--addr", socketAddr(dir),
		"--oci-worker=true",
		"--containerd-worker=false",
		"--oci-worker-snapshotter=overlayfs",
	)
	if gcKeep != "" {
		cmd.Args = append(cmd.Args, "--oci-worker-gc-keepstorage", gcKeep)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	// Its own session: a Ctrl-C in rootfsc's terminal must not reach the shared daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) (*client.Client, error) {
		terminate(cmd.Process, exited)
		os.Remove(pidPath(dir))
		return nil, err
	}
	if err := os.WriteFile(pidPath(dir), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		return fail(fmt.Errorf("buildkitd pidfile: %w", err))
	}
	c, err := waitAnswer(ctx, dir, exited)
	if err != nil {
		if errors.Is(err, errExited) {
			os.Remove(pidPath(dir))
			return nil, fmt.Errorf("%w; log %s:\n%s", err, logPath, logTail(logPath, logStart))
		}
		return fail(fmt.Errorf("%w; log %s:\n%s", err, logPath, logTail(logPath, logStart)))
	}
	return c, nil
}

var errExited = errors.New("buildkitd exited during startup")

// waitAnswer pings the daemon of dir until it answers, for up to startTimeout. exited, when not
// nil, reports the exit of the daemon being started.
func waitAnswer(ctx context.Context, dir string, exited <-chan error) (*client.Client, error) {
	addr := socketAddr(dir)
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(socketPath(dir)); err == nil {
			if c, err := dial(ctx, addr); err == nil {
				return c, nil
			}
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%w (%v)", errExited, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for buildkitd on %s: %w", addr, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("buildkitd did not answer on %s within %s", addr, startTimeout)
		}
	}
}

// terminate stops a child that failed to start: SIGTERM, then SIGKILL, and reaps it.
func terminate(p *os.Process, exited <-chan error) {
	p.Signal(unix.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(5 * time.Second):
	}
	p.Kill()
	<-exited
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

// isDaemon reports whether pid is buildkitd running with dir's root, from /proc; when it is
// not, why says what pid is instead.
func isDaemon(pid int, dir string) (ok bool, why string) {
	if pid <= 1 || !alive(pid) {
		return false, fmt.Sprintf("pid %d is not running", pid)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false, fmt.Sprintf("pid %d: %v", pid, err)
	}
	// A binary replaced since the daemon started reads "buildkitd (deleted)".
	if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != "buildkitd" {
		return false, fmt.Sprintf("pid %d is %s, not buildkitd", pid, exe)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false, fmt.Sprintf("pid %d: %v", pid, err)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	root := rootPath(dir)
	for i, a := range args {
		if a == "--root="+root || (a == "--root" && i+1 < len(args) && args[i+1] == root) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("pid %d is a buildkitd whose --root is not %s", pid, root)
}

// findDaemon returns the pid of dir's buildkitd: the pid file's when /proc confirms it, else
// the buildkitd process running with dir's root, else 0. stale explains a pid file that was
// not believed.
func findDaemon(dir string) (pid int, stale string) {
	if b, err := os.ReadFile(pidPath(dir)); err == nil {
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			stale = fmt.Sprintf("%s does not hold a pid", pidPath(dir))
		} else if ok, why := isDaemon(p, dir); ok {
			return p, ""
		} else {
			stale = fmt.Sprintf("%s: %s", pidPath(dir), why)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == os.Getpid() {
			continue
		}
		if ok, _ := isDaemon(p, dir); ok {
			return p, stale
		}
	}
	return 0, stale
}

// DaemonStatus describes the embedded daemon of a state directory.
type DaemonStatus struct {
	StateDir string
	Addr     string
	// PID is the daemon's process, 0 when none runs.
	PID int
	// Answering says whether it answered a request within a few seconds.
	Answering bool
	// Workers are the ids of its workers, and CacheBytes the size of its build cache, when
	// it answered.
	Workers    []string
	CacheBytes int64
	// Stale explains a pid file that did not name this daemon (and was not believed).
	Stale string
}

// Status reports on the embedded daemon of stateDir ("" for the default) without starting it.
func Status(ctx context.Context, stateDir string) (*DaemonStatus, error) {
	dir := StateDir(stateDir)
	st := &DaemonStatus{StateDir: dir, Addr: socketAddr(dir)}
	st.PID, st.Stale = findDaemon(dir)
	if st.PID == 0 {
		return st, nil
	}
	c, err := dial(ctx, st.Addr)
	if err != nil {
		return st, nil
	}
	defer c.Close()
	st.Answering = true
	if ws, err := c.ListWorkers(ctx); err == nil {
		for _, w := range ws {
			st.Workers = append(st.Workers, w.ID)
		}
	}
	if du, err := c.DiskUsage(ctx); err == nil {
		for _, u := range du {
			st.CacheBytes += u.Size
		}
	}
	return st, nil
}

// Stop terminates the embedded daemon of stateDir ("" for the default) and waits for it to go
// away: SIGTERM, then SIGKILL after 15 s. It signals only a process that /proc shows to be
// buildkitd with this state directory's root; a pid file naming anything else is removed, and
// the process it names left alone. No daemon is not an error.
func Stop(stateDir string) error {
	dir := StateDir(stateDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lockState(context.Background(), dir)
	if err != nil {
		return err
	}
	defer unlock()
	pid, _ := findDaemon(dir)
	if pid == 0 {
		os.Remove(pidPath(dir))
		return nil
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		if errors.Is(err, unix.ESRCH) {
			os.Remove(pidPath(dir))
			return nil
		}
		return fmt.Errorf("stopping buildkitd (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(stopTimeout)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pid) {
		unix.Kill(pid, unix.SIGKILL)
		for i := 0; i < 50 && alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	os.Remove(pidPath(dir))
	if alive(pid) {
		return fmt.Errorf("buildkitd (pid %d) survived SIGKILL", pid)
	}
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

// PruneOpts are buildctl prune's options that rootfsc offers.
type PruneOpts struct {
	// KeepStorage keeps this many bytes of cache, the most recently used (buildctl's
	// --keep-storage, which takes MB); 0 removes all that is not in use.
	KeepStorage int64
	// All includes internal and frontend references (buildctl's --all).
	All bool
}

// PruneResult is what a prune removed.
type PruneResult struct {
	Records   int
	Reclaimed int64
}

// Prune removes build cache from the daemon opts name, as `buildctl prune` does.
func Prune(ctx context.Context, opts ConnectOpts, p PruneOpts) (*PruneResult, error) {
	c, err := Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	popts := []client.PruneOption{client.WithKeepOpt(0, 0, p.KeepStorage, 0)}
	if p.All {
		popts = append(popts, client.PruneAll)
	}
	ch := make(chan client.UsageInfo)
	res := &PruneResult{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range ch {
			res.Records++
			res.Reclaimed += u.Size
		}
	}()
	err = c.Prune(ctx, ch, popts...)
	close(ch)
	<-done
	if err != nil {
		return nil, fmt.Errorf("pruning: %w", err)
	}
	return res, nil
}

// daemonLost explains an error that means the daemon went away during a build (killed,
// crashed, its host rebooted): gRPC's "Unavailable … connection reset" does not say so.
func daemonLost(err error, opts ConnectOpts) error {
	if err == nil || grpcerrors.Code(err) != codes.Unavailable {
		return err
	}
	addr := opts.Addr
	if addr == "" {
		addr = os.Getenv("BUILDKIT_HOST")
	}
	if addr != "" {
		return fmt.Errorf("buildkitd at %s went away during the build: %w", addr, err)
	}
	dir := StateDir(opts.StateDir)
	return fmt.Errorf("the embedded buildkitd went away during the build (its log: %s); the next build starts it again and reuses its cache: %w",
		filepath.Join(dir, "buildkitd.log"), err)
}
