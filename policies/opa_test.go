package policies

// The integration tier: a real OPA server must give the agent the same answer
// as Eval for every case in evalCases. Skipped with -short.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOPAServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real OPA server; run without -short")
	}
	// `make test` built OPA into ROOTFSC_BIN; otherwise build it from the module in go.mod.
	opa := filepath.Join(os.Getenv("ROOTFSC_BIN"), "opa")
	if _, err := os.Stat(opa); os.Getenv("ROOTFSC_BIN") == "" || err != nil {
		opa = filepath.Join(t.TempDir(), "opa")
		build := exec.Command("go", "build", "-o", opa, "github.com/open-policy-agent/opa")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building opa: %v\n%s", err, out)
		}
	}

	byPolicy := map[string][]evalCase{}
	var order []string
	for _, c := range evalCases {
		if _, ok := byPolicy[c.policy]; !ok {
			order = append(order, c.policy)
		}
		byPolicy[c.policy] = append(byPolicy[c.policy], c)
	}
	for _, policy := range order {
		t.Run(policy, func(t *testing.T) {
			url := startOPA(t, opa, policy)
			for _, c := range byPolicy[policy] {
				inputs, err := decodeInputs([]byte(c.input))
				if err != nil {
					t.Fatal(err)
				}
				res, err := Eval(context.Background(), EvalInput{Policy: c.policy, Request: c.request, Input: []byte(c.input)}, Opts{})
				if err != nil {
					t.Fatalf("%s: Eval() error: %v", c.name, err)
				}
				for i, input := range inputs {
					got := postOPA(t, url+"/v1/data/agent_policy/"+c.request, input)
					if got != res.Lines[i] {
						t.Errorf("%s input %d: OPA says %s, Eval says %s", c.name, i+1, got, res.Lines[i])
					}
				}
			}
		})
	}
}

// startOPA runs "opa run --server" on policy, as the guest's kata-opa.service
// does, and returns its base URL once it is healthy.
func startOPA(t *testing.T, opa, policy string) string {
	t.Helper()
	res, err := Check(context.Background(), []string{policy}, Opts{})
	if err != nil {
		t.Fatal(err)
	}
	file := policy
	if b, ok := Builtin(policy); ok {
		file = filepath.Join(t.TempDir(), policy+".rego")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	args := []string{"run", "--server", "--addr", addr, "--disable-telemetry"}
	if res.Files[0].RegoVersion == "v0" {
		args = append(args, "--v0-compatible")
	}
	var logs bytes.Buffer
	cmd := exec.Command(opa, append(args, file)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
	}
	t.Fatalf("OPA on %s never became healthy:\n%s", addr, logs.String())
	return ""
}

// postOPA sends input the way the agent does and returns OPA's compact body.
func postOPA(t *testing.T, url string, input any) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"input": input})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, b)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(fmt.Errorf("OPA answered %q: %w", b, err))
	}
	return strings.TrimSpace(compact.String())
}
