// Command kata-agent-standin is rootfsc's stand-in for kata-agent, used only by
// rootfsc's tests: the real agent is Rust and cannot be built here, so the tests
// install this where the agent goes, boot the rootfs and read the console.
// It speaks no ttRPC and runs no containers. It reports what it finds and loads
// the Agent Policy into OPA the way the real agent does. See README.md.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	version     = "kata-agent stand-in (rootfsc testdata), not the real kata-agent"
	policyPath  = "/etc/kata-opa/default-policy.rego"
	opaPath     = "/usr/local/bin/opa"
	opaAttempts = 50
	opaInterval = 100 * time.Millisecond
)

// opaArgs are the arguments kata-opa.service gives OPA; the agent uses the same
// ones when it is init and starts OPA itself.
var opaArgs = []string{"run", "--server", "--disable-telemetry", "--addr", "127.0.0.1:8181", "--log-level", "info"}

// probes are the requests whose policy decision is printed: enough to tell the
// built-in policies apart.
var probes = []string{"CreateContainerRequest", "ExecProcessRequest", "SetPolicyRequest", "ReadStreamRequest"}

type mode int

const (
	modeNeither mode = iota // run by hand or by a test: never powers off
	modeInit                // PID 1, the agent-init layout
	modeSystemd             // started by kata-agent.service
)

// say prints one console line; every line is marked as the stand-in's so that
// a console log can never be mistaken for the real agent's.
func say(format string, args ...any) {
	fmt.Printf("standin-agent: "+format+"\n", args...)
}

func main() { os.Exit(agentMain(os.Args[1:])) }

// agentMain returns the exit code. As PID 1 it never returns: the kernel
// panics when init exits.
func agentMain(args []string) int {
	m := modeNeither
	switch {
	case os.Getpid() == 1:
		m = modeInit
	case os.Getenv("INVOCATION_ID") != "":
		m = modeSystemd
	}

	flags := flag.NewFlagSet("kata-agent-standin", flag.ContinueOnError)
	showVersion := flags.Bool("version", false, "print the version and exit")
	root := flags.String("root", "/", "look for the policy and OPA under `dir` (for tests on a host)")
	opaURL := flags.String("opa-url", "http://localhost:8181", "OPA's `url`")
	err := flags.Parse(args)
	if m != modeInit {
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if *showVersion {
			fmt.Println(version)
			return 0
		}
	}

	say("rootfsc's stand-in for kata-agent, not the real kata-agent; pid %d, %s",
		os.Getpid(), map[mode]string{
			modeInit:    "PID 1 (agent-init mode)",
			modeSystemd: "under systemd (INVOCATION_ID set)",
			modeNeither: "neither PID 1 nor under systemd: will not power off",
		}[m])
	if err == nil {
		err = run(m, *root, *opaURL)
	}
	if err != nil {
		say("error: %v", err)
	} else {
		say("done")
	}
	if m == modeNeither {
		if err != nil {
			return 1
		}
		return 0
	}
	return powerOff(m)
}

func run(m mode, root, opaURL string) error {
	if m == modeInit {
		if err := setUpInit(); err != nil {
			return err
		}
	}
	policy, err := readPolicy(root)
	if err != nil {
		return err
	}
	opa := filepath.Join(root, opaPath)
	if _, err := os.Stat(opa); errors.Is(err, fs.ErrNotExist) {
		if policy != nil {
			say("no %s (agent-builtin layout): the policy is installed; the stand-in does not evaluate it", opaPath)
		}
		return nil
	} else if err != nil {
		return err
	}
	if policy == nil {
		return fmt.Errorf("%s is installed but there is no policy for it", opaPath)
	}
	say("%s found (opa-service layout)", opaPath)
	if m == modeInit {
		cmd := exec.Command(opa, opaArgs...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		say("starting %s %s", opaPath, strings.Join(opaArgs, " "))
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting OPA: %w", err)
		}
	}
	return askOPA(opaURL, policy)
}

// setUpInit does what an init must before the rest can work: the API
// filesystems, and lo, on which OPA listens.
func setUpInit() error {
	mounts := []struct {
		fstype, target, data string
		flags                uintptr
	}{
		{"proc", "/proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", "mode=0755", unix.MS_NOSUID},
		{"tmpfs", "/run", "mode=1777", unix.MS_NOSUID | unix.MS_NODEV},
		{"tmpfs", "/tmp", "mode=1777", unix.MS_NOSUID | unix.MS_NODEV},
	}
	for _, mnt := range mounts {
		// The root may be read-only; then a missing target shows up as the
		// mount's error.
		_ = os.MkdirAll(mnt.target, 0o755)
		err := unix.Mount(mnt.fstype, mnt.target, mnt.fstype, mnt.flags, mnt.data)
		if mnt.fstype == "devtmpfs" && errors.Is(err, unix.EBUSY) {
			// The kernel mounts it itself with CONFIG_DEVTMPFS_MOUNT.
			say("%s already mounted on %s", mnt.fstype, mnt.target)
			continue
		}
		if err != nil {
			return fmt.Errorf("mounting %s on %s: %w", mnt.fstype, mnt.target, err)
		}
		say("mounted %s on %s", mnt.fstype, mnt.target)
	}

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	say("lo is up")
	return nil
}

// readPolicy prints what the default policy is and returns its text, or nil
// when there is none.
func readPolicy(root string) ([]byte, error) {
	path := filepath.Join(root, policyPath)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		say("no policy: %s is missing", policyPath)
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	shown := policyPath + " (not a link)"
	if target, err := os.Readlink(path); err == nil {
		shown = policyPath + " -> " + target
		if filepath.IsAbs(target) {
			// Resolve it in the guest's tree, not the host's, under --root.
			path = filepath.Join(root, target)
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the policy %s: %w", shown, err)
	}
	say("policy %s, %d bytes, sha256 %x", shown, len(text), sha256.Sum256(text))
	pkg := "none"
	for line := range strings.Lines(string(text)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "package ") {
			pkg = line
			break
		}
	}
	say("policy package line: %s", pkg)
	return text, nil
}

// askOPA loads the policy into OPA as the real agent does, waiting for OPA to
// answer, then prints OPA's decision for each of the probes.
func askOPA(opaURL string, policy []byte) error {
	u, err := url.Parse(opaURL)
	if err != nil {
		return fmt.Errorf("parsing --opa-url: %w", err)
	}
	// Like the real agent, which asks for localhost: a rootfs whose /etc/hosts cannot resolve it
	// is a broken opa-service layout, and this stand-in must fail on it too.
	if u.Hostname() == "localhost" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, "localhost")
		cancel()
		if err != nil {
			return fmt.Errorf("localhost does not resolve (the agent reaches OPA at localhost:8181): %w", err)
		}
		say("localhost is %s", strings.Join(addrs, " "))
	}
	base := strings.TrimSuffix(u.String(), "/")
	client := &http.Client{Timeout: 10 * time.Second}

	say("connecting to OPA at %s (%d attempts, %v apart)", opaURL, opaAttempts, opaInterval)
	for attempt := 1; ; attempt++ {
		_, err = call(client, http.MethodPut, base+"/v1/policies/agent_policy", "text/plain", policy)
		var httpErr *statusError
		if err == nil || errors.As(err, &httpErr) {
			break
		}
		if attempt == opaAttempts {
			return fmt.Errorf("OPA at %s did not answer after %d attempts %v apart: %w", opaURL, opaAttempts, opaInterval, err)
		}
		time.Sleep(opaInterval)
	}
	if err != nil {
		return fmt.Errorf("loading the policy into OPA: %w", err)
	}
	say("policy loaded into OPA as agent_policy")

	for _, req := range probes {
		body, err := call(client, http.MethodPost, base+"/v1/data/agent_policy/"+req, "application/json", []byte(`{"input":{}}`))
		if err != nil {
			return fmt.Errorf("asking OPA about %s: %w", req, err)
		}
		say("policy %s: %s", req, body)
	}
	return nil
}

// statusError is an answer from OPA other than 200 OK: OPA is up, so there is
// no point in retrying.
type statusError struct {
	status string
	body   []byte
}

func (e *statusError) Error() string { return e.status + ": " + string(e.body) }

// call sends one request and returns the answer's body as compact JSON.
func call(client *http.Client, method, target, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) == nil {
		raw = compact.Bytes()
	} else {
		raw = bytes.TrimSpace(raw)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{resp.Status, raw}
	}
	return raw, nil
}

// powerOff ends the VM. It returns only when not PID 1 and everything failed.
func powerOff(m mode) int {
	unix.Sync()
	if m == modeSystemd {
		out, err := exec.Command("/usr/bin/systemctl", "--force", "poweroff").CombinedOutput()
		if err == nil {
			return 0
		}
		say("systemctl --force poweroff: %v: %s", err, bytes.TrimSpace(out))
	}
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	say("power off: %v", err)
	if m != modeInit {
		return 1
	}
	for {
		// Not select{}: with nothing else running the Go runtime would call
		// that a deadlock and exit, and the kernel would panic.
		time.Sleep(time.Hour)
	}
}
