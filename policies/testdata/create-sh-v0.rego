# Rego v0: the same decisions as create-sh.rego, in pre-1.0 syntax; pulls
# are undefined on purpose.
package agent_policy

default CreateContainerRequest = false

CreateContainerRequest {
	input.OCI.Process.Args[0] == "sh"
}

default ExecProcessRequest = false

ExecProcessRequest {
	not runs_rm
}

runs_rm {
	input.process.Args[_] == "rm"
}

default SetPolicyRequest = true

ReadStreamRequest {
	input.length < 1024
}
