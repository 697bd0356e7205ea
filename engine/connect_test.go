package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needBuildkitd puts the buildkitd of `make tools` ($ROOTFSC_BIN) on PATH, or skips.
func needBuildkitd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts buildkitd")
	}
	requireRoot(t)
	if d := os.Getenv("ROOTFSC_BIN"); d != "" {
		t.Setenv("PATH", d+":"+os.Getenv("PATH"))
	}
	p, err := exec.LookPath("buildkitd")
	if err != nil {
		t.Skip("buildkitd not on PATH and ROOTFSC_BIN not set: ", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not on PATH: ", err)
	}
	t.Setenv("BUILDKIT_HOST", "")
	return p
}

// shortTemp is a private folder with a short path (a unix socket path has ~100 bytes),
// removed at the end.
func shortTemp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rfc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// daemonsOf lists the buildkitd processes running with dir's root.
func daemonsOf(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			if ok, _ := isDaemon(p, dir); ok {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// Stop used to signal whatever pid the pid file held: a reused pid, or a file someone wrote.
func TestStopLeavesForeignPid(t *testing.T) {
	dir := t.TempDir()
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	if err := os.WriteFile(pidPath(dir), []byte(strconv.Itoa(sleep.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := Status(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", sleep.Process.Pid))
	want := fmt.Sprintf("%s: pid %d is %s, not buildkitd", pidPath(dir), sleep.Process.Pid, exe)
	if st.PID != 0 || st.Stale != want {
		t.Errorf("Status = pid %d, stale %q; want pid 0, stale %q", st.PID, st.Stale, want)
	}
	if err := Stop(dir); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !alive(sleep.Process.Pid) {
		t.Fatal("Stop signalled a process that is not the state directory's buildkitd")
	}
	if _, err := os.Stat(pidPath(dir)); !os.IsNotExist(err) {
		t.Errorf("the stale pid file is still there: %v", err)
	}
}

// A start cancelled while buildkitd comes up used to return and leave the child running.
func TestCancelledStartStopsChild(t *testing.T) {
	requireRoot(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not on PATH: ", err)
	}
	// A buildkitd that never answers, and says who it is.
	bin := t.TempDir()
	dir := shortTemp(t)
	childPid := filepath.Join(dir, "child.pid")
	script := "#!/bin/sh\necho $$ > " + childPid + "\nexec sleep 300\n"
	if err := os.WriteFile(filepath.Join(bin, "buildkitd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(runc, filepath.Join(bin, "runc")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	t.Setenv("BUILDKIT_HOST", "")

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err = Connect(ctx, ConnectOpts{StateDir: dir})
	want := "waiting for buildkitd on " + socketAddr(dir) + ": context deadline exceeded"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Connect err = %v, want it to start with %q", err, want)
	}
	b, err := os.ReadFile(childPid)
	if err != nil {
		t.Fatalf("the fake buildkitd did not start: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if alive(pid) {
		unix.Kill(pid, unix.SIGKILL)
		t.Fatalf("the cancelled start left buildkitd (pid %d) running", pid)
	}
	if _, err := os.Stat(pidPath(dir)); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// The embedded daemon's life: concurrent starts share one daemon; a daemon slower to answer
// than the ping timeout is waited for, not replaced (it used to lose its socket to a second
// buildkitd that died on the state lock); Status sees it; Stop stops it.
func TestEmbeddedDaemonLifecycle(t *testing.T) {
	needBuildkitd(t)
	dir := shortTemp(t)
	t.Cleanup(func() { Stop(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			c, err := Connect(ctx, ConnectOpts{StateDir: dir})
			if err == nil {
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Connect %d: %v", i, err)
		}
	}
	pids := daemonsOf(dir)
	if len(pids) != 1 {
		t.Fatalf("buildkitd processes for %s after three concurrent starts: %v, want one", dir, pids)
	}
	pid := pids[0]

	t.Run("slow ping", func(t *testing.T) {
		// Frozen for longer than two pings: the daemon holds its lock but cannot answer.
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		thaw := time.AfterFunc(2*pingTimeout+time.Second, func() { unix.Kill(pid, unix.SIGCONT) })
		defer func() { thaw.Stop(); unix.Kill(pid, unix.SIGCONT) }()
		c, err := Connect(ctx, ConnectOpts{StateDir: dir})
		if err != nil {
			t.Fatalf("Connect to a slow daemon: %v", err)
		}
		defer c.Close()
		if _, err := c.ListWorkers(ctx); err != nil {
			t.Fatal(err)
		}
		if got := daemonsOf(dir); len(got) != 1 || got[0] != pid {
			t.Errorf("daemons after a slow ping: %v, want [%d]", got, pid)
		}
		if _, err := os.Stat(socketPath(dir)); err != nil {
			t.Errorf("the live daemon's socket: %v", err)
		}
	})

	t.Run("status", func(t *testing.T) {
		st, err := Status(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.PID != pid || !st.Answering || len(st.Workers) == 0 || st.Stale != "" {
			t.Errorf("Status = %+v, want pid %d answering with a worker", st, pid)
		}
	})

	t.Run("prune", func(t *testing.T) {
		if _, err := Prune(ctx, ConnectOpts{StateDir: dir}, PruneOpts{All: true}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stop", func(t *testing.T) {
		if err := Stop(dir); err != nil {
			t.Fatal(err)
		}
		if alive(pid) {
			t.Fatalf("buildkitd %d still running after Stop", pid)
		}
		st, err := Status(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.PID != 0 || st.Answering {
			t.Errorf("Status after Stop = %+v", st)
		}
	})
}

// certs writes a CA, a server certificate for 127.0.0.1 and a client certificate into dir.
type certFiles struct{ ca, serverCert, serverKey, clientCert, clientKey, otherCA string }

func writeCerts(t *testing.T, dir string) certFiles {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	tmpl := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
	}
	newCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := newKey()
		c := tmpl(cn)
		c.IsCA, c.BasicConstraintsValid = true, true
		c.KeyUsage = x509.KeyUsageCertSign
		der, err := x509.CreateCertificate(rand.Reader, c, c, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		parsed, _ := x509.ParseCertificate(der)
		return parsed, k, der
	}
	leaf := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage, ips ...net.IP) ([]byte, []byte) {
		k := newKey()
		c := tmpl(cn)
		c.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		c.KeyUsage = x509.KeyUsageDigitalSignature
		c.IPAddresses = ips
		der, err := x509.CreateCertificate(rand.Reader, c, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der, kder
	}
	ca, caKey, caDER := newCA("rootfsc test CA")
	_, _, otherDER := newCA("another CA")
	sc, sk := leaf(ca, caKey, "buildkitd", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	cc, ck := leaf(ca, caKey, "rootfsc", x509.ExtKeyUsageClientAuth)
	return certFiles{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		otherCA:    write("other-ca.pem", "CERTIFICATE", otherDER),
		serverCert: write("server.pem", "CERTIFICATE", sc),
		serverKey:  write("server-key.pem", "EC PRIVATE KEY", sk),
		clientCert: write("client.pem", "CERTIFICATE", cc),
		clientKey:  write("client-key.pem", "EC PRIVATE KEY", ck),
	}
}

// A remote buildkitd on tcp:// with mutual TLS: the right files connect; without them, or with
// the wrong CA, Connect fails naming the address and the flags to look at.
func TestConnectTLS(t *testing.T) {
	bin := needBuildkitd(t)
	dir := shortTemp(t)
	certs := writeCerts(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + l.Addr().String()
	l.Close()

	cmd := exec.Command(bin, "--root", filepath.Join(dir, "root"), "--addr", addr,
		"--tlscacert", certs.ca, "--tlscert", certs.serverCert, "--tlskey", certs.serverKey,
		"--oci-worker=true", "--containerd-worker=false", "--oci-worker-snapshotter=overlayfs")
	logf, err := os.Create(filepath.Join(dir, "buildkitd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	good := ConnectOpts{Addr: addr, TLSCACert: certs.ca, TLSCert: certs.clientCert, TLSKey: certs.clientKey}
	var connectErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c, err := Connect(ctx, good)
		if connectErr = err; err == nil {
			ws, err := c.ListWorkers(ctx)
			c.Close()
			if err != nil || len(ws) == 0 {
				t.Fatalf("ListWorkers over TLS: %v %v", ws, err)
			}
			break
		}
	}
	if connectErr != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "buildkitd.log"))
		t.Fatalf("Connect with the right certificates: %v\nbuildkitd log:\n%s", connectErr, log)
	}

	t.Run("BUILDKIT_HOST", func(t *testing.T) {
		t.Setenv("BUILDKIT_HOST", addr)
		o := good
		o.Addr = ""
		c, err := Connect(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})

	refused := []struct {
		name string
		opts ConnectOpts
		hint string
	}{
		{"no TLS", ConnectOpts{Addr: addr}, "(the daemon may require TLS: --tlscacert, --tlscert, --tlskey)"},
		{"no client certificate", ConnectOpts{Addr: addr, TLSCACert: certs.ca}, "(the daemon may require a client certificate: --tlscert, --tlskey)"},
		{"wrong CA", ConnectOpts{Addr: addr, TLSCACert: certs.otherCA, TLSCert: certs.clientCert, TLSKey: certs.clientKey}, "(check --tlscacert and --tlsservername against the daemon's certificate)"},
		{"wrong server name", ConnectOpts{Addr: addr, TLSCACert: certs.ca, TLSCert: certs.clientCert, TLSKey: certs.clientKey, TLSServerName: "elsewhere"}, "(check --tlscacert and --tlsservername against the daemon's certificate)"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Connect(ctx, tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			prefix := "buildkitd at " + addr + " is not answering: "
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, tc.hint) {
				t.Errorf("err = %q\nwant %q…%q", msg, prefix, tc.hint)
			}
		})
	}
	t.Run("cert without key", func(t *testing.T) {
		_, err := Connect(ctx, ConnectOpts{Addr: addr, TLSCACert: certs.ca, TLSCert: certs.clientCert})
		if err == nil || err.Error() != "--tlscert and --tlskey go together" {
			t.Errorf("err = %v, want --tlscert and --tlskey go together", err)
		}
	})
}

// The connection helpers are registered as in buildctl: each address runs its helper's
// command (none of them is installed on PATH here), not gRPC's TCP dialer.
func TestConnectHelpers(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for addr, cmd := range map[string]string{
		"docker-container://buildkitd": "docker",
		"kube-pod://buildkitd-0":       "kubectl",
		"ssh://user@127.0.0.1:1":       "ssh",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := Connect(ctx, ConnectOpts{Addr: addr})
		cancel()
		want := `exec: \"` + cmd + `\": executable file not found in $PATH` // quoted again by gRPC
		if err == nil || !strings.HasPrefix(err.Error(), "buildkitd at "+addr+" is not answering: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Connect(%s) = %v, want the helper's %s", addr, err, want)
		}
	}
	_, err := Connect(context.Background(), ConnectOpts{Addr: "frob://x"})
	want := `buildkitd address "frob://x": unknown scheme "frob" (want unix://, tcp://, docker-container://, kube-pod://, ssh://, nerdctl-container:// or podman-container://)`
	if err == nil || err.Error() != want {
		t.Errorf("Connect(frob://x) = %v\nwant %s", err, want)
	}
}

func TestGCKeepStorage(t *testing.T) {
	t.Setenv("ROOTFSC_GC_KEEP_STORAGE", "")
	for _, tt := range []struct {
		opt, env, want, err string
	}{
		{"", "", "", ""},
		{"", "0,0,60", "0,0,60", ""},
		{"10000", "0,0,60", "10000", ""},
		{"10000,20000,30000", "", "10000,20000,30000", ""},
		{"", "10GB", "", `the embedded daemon's keep-storage "10GB": want RESERVED[,FREE[,MAX]] in MB, like 10000,0,20000`},
		{"1,2,3,4", "", "", `the embedded daemon's keep-storage "1,2,3,4": want RESERVED[,FREE[,MAX]] in MB, like 10000,0,20000`},
	} {
		t.Setenv("ROOTFSC_GC_KEEP_STORAGE", tt.env)
		got, err := ConnectOpts{GCKeepStorage: tt.opt}.gcKeepStorage()
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("gcKeepStorage(%q, env %q) = %q, %v; want %q, %q", tt.opt, tt.env, got, err, tt.want, tt.err)
		}
	}
}
