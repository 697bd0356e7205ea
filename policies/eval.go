package policies

// Eval replays the agent's policy inputs against a policy offline, printing
// what OPA's REST API would have answered the agent.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/open-policy-agent/opa/v1/rego"
)

// EvalInput is what [Eval] evaluates.
type EvalInput struct {
	// Policy is a policy file path or a built-in name.
	Policy string
	// Request is an agent request name, one of [RequestNames].
	Request string
	// Input is one JSON input, optionally wrapped as {"input": …} like OPA's
	// API body, or the agent's debug log of inputs: JSON values one after
	// another.
	Input []byte
}

// EvalResult holds one line per input: the compact JSON body OPA returns for
// POST /v1/data/agent_policy/<Request>, {"result":true}, {"result":false} or
// {} when the rule is undefined.
type EvalResult struct {
	Lines []string
}

// Eval evaluates in.Request of in.Policy for every input in in.Input.
func Eval(ctx context.Context, in EvalInput, opts Opts) (*EvalResult, error) {
	if _, ok := slices.BinarySearch(RequestNames, in.Request); !ok {
		msg := fmt.Sprintf("unknown agent request %q", in.Request)
		if s := suggest(in.Request); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, errors.New(msg)
	}
	text, err := load(in.Policy)
	if err != nil {
		return nil, err
	}
	p, errs := parse(in.Policy, text)
	if errs != nil {
		return nil, &CheckError{Errors: formatAST(in.Policy, errs)}
	}
	inputs, err := decodeInputs(in.Input)
	if err != nil {
		return nil, err
	}
	pq, err := rego.New(
		rego.Query("data."+PackageName+"."+in.Request),
		rego.ParsedModule(p.module),
		rego.SetRegoVersion(p.version),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("preparing %s: %w", in.Policy, err)
	}
	res := &EvalResult{}
	for i, input := range inputs {
		var evalOpts []rego.EvalOption
		body := map[string]any{}
		if input == nil {
			// OPA's server treats {"input": null} as no input at all, and says so.
			body["warning"] = missingInputWarning
		} else {
			evalOpts = append(evalOpts, rego.EvalInput(input))
		}
		rs, err := pq.Eval(ctx, evalOpts...)
		if err != nil {
			return nil, fmt.Errorf("evaluating input %d: %w", i+1, err)
		}
		if len(rs) > 0 && len(rs[0].Expressions) > 0 {
			body["result"] = rs[0].Expressions[0].Value
		}
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		res.Lines = append(res.Lines, string(b))
	}
	return res, nil
}

// missingInputWarning is the warning OPA's server adds to a response when the
// request had no input.
var missingInputWarning = map[string]string{
	"code":    "api_usage_warning",
	"message": "'input' key missing from the request",
}

// decodeInputs splits data into JSON values, unwrapping {"input": X}.
func decodeInputs(data []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decoding input %d: %w", len(out)+1, err)
		}
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			if x, ok := m["input"]; ok {
				v = x
			}
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("no input")
	}
	return out, nil
}
