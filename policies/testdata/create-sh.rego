# Rego v1: containers may only run sh; exec is allowed unless it runs rm.
package agent_policy

default CreateContainerRequest := false

CreateContainerRequest if input.OCI.Process.Args[0] == "sh"

default ExecProcessRequest := false

ExecProcessRequest if not runs_rm

runs_rm if {
	some arg in input.process.Args
	arg == "rm"
}

default SetPolicyRequest := true
