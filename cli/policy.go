package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/rootfsc/rootfsc/policies"
)

// runPolicy is `rootfsc policy check FILE...` and `rootfsc policy eval --policy P --input IN REQUEST`:
// the Agent Policy debugging workflow, offline.
func runPolicy(e *env, args []string) error {
	if len(args) == 0 {
		return usageError{"want a subcommand: check or eval"}
	}
	switch args[0] {
	case "check":
		pos, err := parse(flags("policy check"), args[1:], -1)
		if err != nil {
			return err
		}
		if len(pos) == 0 {
			return usageError{"want at least one policy file or built-in name"}
		}
		res, err := policies.Check(e.ctx, pos, policies.Opts{})
		if err != nil {
			return err
		}
		for _, f := range res.Files {
			fmt.Fprintf(e.stdout, "%s: ok (rego %s, %d rules)\n", f.Path, f.RegoVersion, len(f.Rules))
		}
		return nil
	case "eval":
		fs := flags("policy eval")
		policy := fs.String("policy", "", "policy file or built-in name (allow-all, allow-all-except-exec-process, allow-set-policy)")
		input := fs.String("input", "", "input JSON file, or the agent's debug log of policy inputs (- for stdin)")
		pos, err := parse(fs, args[1:], 1)
		if err != nil {
			return err
		}
		if *policy == "" || *input == "" {
			return usageError{"--policy and --input are required"}
		}
		var in []byte
		if *input == "-" {
			in, err = readAll(e)
		} else {
			in, err = os.ReadFile(*input)
		}
		if err != nil {
			return err
		}
		res, err := policies.Eval(e.ctx, policies.EvalInput{Policy: *policy, Request: pos[0], Input: in}, policies.Opts{})
		if err != nil {
			return err
		}
		for _, l := range res.Lines {
			fmt.Fprintln(e.stdout, l)
		}
		return nil
	}
	return usageError{fmt.Sprintf("unknown policy subcommand %q", args[0])}
}

func readAll(e *env) ([]byte, error) { return io.ReadAll(e.stdin) }
