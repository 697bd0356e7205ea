package policies_test

import (
	"context"
	"fmt"

	"github.com/rootfsc/rootfsc/policies"
)

func ExampleEval() {
	// Two inputs from the agent's debug log, replayed against a built-in.
	res, err := policies.Eval(context.Background(), policies.EvalInput{
		Policy:  "allow-all-except-exec-process",
		Request: "ExecProcessRequest",
		Input:   []byte("{\"process\":{\"Args\":[\"ls\"]}}\n{\"input\":{\"process\":{\"Args\":[\"sh\"]}}}\n"),
	}, policies.Opts{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range res.Lines {
		fmt.Println(line)
	}
	// Output:
	// {"result":false}
	// {"result":false}
}

func ExampleCheck() {
	_, err := policies.Check(context.Background(), []string{"testdata/broken/misspelled.rego"}, policies.Opts{})
	fmt.Println(err)
	// Output:
	// testdata/broken/misspelled.rego:3:9: unknown agent request "CreateContainerRequst" (did you mean "CreateContainerRequest"?)
}

func ExampleBuiltinNames() {
	fmt.Println(policies.BuiltinNames())
	// Output:
	// [allow-all allow-all-except-exec-process allow-set-policy]
}
