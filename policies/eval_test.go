package policies

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// evalCase is shared with the OPA integration test, which checks that a real
// OPA server gives the same answers.
type evalCase struct {
	name    string
	policy  string
	request string
	input   string
	want    []string
}

const (
	tr = `{"result":true}`
	fa = `{"result":false}`
	un = `{}`

	noInput = `"warning":{"code":"api_usage_warning","message":"'input' key missing from the request"}`

	sh     = `{"OCI":{"Process":{"Args":["sh","-c","true"]}}}`
	bash   = `{"OCI":{"Process":{"Args":["bash"]}}}`
	noArgs = `{"OCI":{"Process":{"Args":[]}}}`
	ls     = `{"process":{"Args":["ls","-l"]}}`
	rm     = `{"process":{"Args":["rm","-rf","/"]}}`
	rmLast = `{"process":{"Args":["echo","x","rm"]}}`

	v1 = "testdata/create-sh.rego"
	v0 = "testdata/create-sh-v0.rego"
)

var evalCases = []evalCase{
	{"allow-all create", "allow-all", "CreateContainerRequest", `{}`, []string{tr}},
	{"allow-all exec", "allow-all", "ExecProcessRequest", rm, []string{tr}},
	{"allow-all set policy", "allow-all", "SetPolicyRequest", `{"policy":"x"}`, []string{tr}},
	{"allow-all wrapped input", "allow-all", "WriteStreamRequest", `{"input":{"data":"aGk="}}`, []string{tr}},
	{"allow-all null input", "allow-all", "ReadStreamRequest", `null`, []string{`{"result":true,` + noInput + `}`}},
	{"v1 null input", v1, "CreateContainerRequest", `{"input":null}`, []string{`{"result":false,` + noInput + `}`}},
	{"v0 null input undefined", v0, "ReadStreamRequest", `null`, []string{`{` + noInput + `}`}},
	{"except-exec exec", "allow-all-except-exec-process", "ExecProcessRequest", ls, []string{fa}},
	{"except-exec create", "allow-all-except-exec-process", "CreateContainerRequest", sh, []string{tr}},
	{"except-exec signal", "allow-all-except-exec-process", "SignalProcessRequest", `{"signal":9}`, []string{tr}},
	{"set-policy set", "allow-set-policy", "SetPolicyRequest", `{"policy":"package agent_policy"}`, []string{tr}},
	{"set-policy create", "allow-set-policy", "CreateContainerRequest", sh, []string{fa}},
	{"set-policy exec", "allow-set-policy", "ExecProcessRequest", ls, []string{fa}},
	{"v1 create sh", v1, "CreateContainerRequest", sh, []string{tr}},
	{"v1 create bash", v1, "CreateContainerRequest", bash, []string{fa}},
	{"v1 create no args", v1, "CreateContainerRequest", noArgs, []string{fa}},
	{"v1 create no OCI", v1, "CreateContainerRequest", `{}`, []string{fa}},
	{"v1 create wrapped", v1, "CreateContainerRequest", `{"input":` + sh + `}`, []string{tr}},
	{"v1 exec ls", v1, "ExecProcessRequest", ls, []string{tr}},
	{"v1 exec rm", v1, "ExecProcessRequest", rm, []string{fa}},
	{"v1 exec rm last", v1, "ExecProcessRequest", rmLast, []string{fa}},
	{"v1 exec no process", v1, "ExecProcessRequest", `{}`, []string{tr}},
	{"v1 set policy", v1, "SetPolicyRequest", `{}`, []string{tr}},
	{"v1 undefined request", v1, "PullImageRequest", `{}`, []string{un}},
	{"v1 debug log", v1, "ExecProcessRequest", ls + "\n" + rm + "\n" + rmLast + "\n" + `{"process":{"Args":["rmdir"]}}` + "\n",
		[]string{tr, fa, fa, tr}},
	{"v1 concatenated log", v1, "CreateContainerRequest", sh + bash + " " + sh, []string{tr, fa, tr}},
	{"v1 wrapped log", v1, "CreateContainerRequest", `{"input":` + bash + "}\n" + `{"input":` + sh + "}", []string{fa, tr}},
	{"v0 create sh", v0, "CreateContainerRequest", sh, []string{tr}},
	{"v0 create bash", v0, "CreateContainerRequest", bash, []string{fa}},
	{"v0 exec ls", v0, "ExecProcessRequest", ls, []string{tr}},
	{"v0 exec rm", v0, "ExecProcessRequest", rm, []string{fa}},
	{"v0 exec rm last", v0, "ExecProcessRequest", rmLast, []string{fa}},
	{"v0 read small", v0, "ReadStreamRequest", `{"length":100}`, []string{tr}},
	{"v0 read large", v0, "ReadStreamRequest", `{"length":4096}`, []string{un}},
	{"v0 read no length", v0, "ReadStreamRequest", `{}`, []string{un}},
	{"v0 undefined request", v0, "WaitProcessRequest", `{}`, []string{un}},
	{"v0 debug log", v0, "ReadStreamRequest", `{"length":1}` + "\n" + `{"length":2048}` + "\n" + `{"length":1023.5}`,
		[]string{tr, un, tr}},
	{"two-key object is not a wrapper", v1, "ExecProcessRequest", `{"input":{"process":{"Args":["ls"]}},"process":{"Args":["rm"]}}`,
		[]string{fa}},
}

func TestEval(t *testing.T) {
	for _, tt := range evalCases {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Eval(context.Background(), EvalInput{Policy: tt.policy, Request: tt.request, Input: []byte(tt.input)}, Opts{})
			if err != nil {
				t.Fatalf("Eval() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, res.Lines); diff != "" {
				t.Errorf("Eval() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct {
		name string
		in   EvalInput
		want string
	}{
		{"unknown request", EvalInput{Policy: "allow-all", Request: "ExecProcesRequest", Input: []byte(`{}`)},
			`unknown agent request "ExecProcesRequest" (did you mean "ExecProcessRequest"?)`},
		{"unknown request far", EvalInput{Policy: "allow-all", Request: "Foo", Input: []byte(`{}`)},
			`unknown agent request "Foo"`},
		{"missing policy", EvalInput{Policy: "testdata/nope.rego", Request: "ExecProcessRequest", Input: []byte(`{}`)},
			"open testdata/nope.rego: no such file or directory"},
		{"syntax error", EvalInput{Policy: "testdata/broken/syntax.rego", Request: "ExecProcessRequest", Input: []byte(`{}`)},
			"testdata/broken/syntax.rego:7:1: unexpected } token"},
		{"bad json", EvalInput{Policy: "allow-all", Request: "ExecProcessRequest", Input: []byte("{}\n{")},
			"decoding input 2: unexpected EOF"},
		{"no input", EvalInput{Policy: "allow-all", Request: "ExecProcessRequest", Input: []byte(" \n")},
			"no input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Eval(context.Background(), tt.in, Opts{})
			if err == nil {
				t.Fatalf("Eval() succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("Eval() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
