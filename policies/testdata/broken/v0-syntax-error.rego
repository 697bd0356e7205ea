package agent_policy

default ExecProcessRequest = false

ExecProcessRequest {
	input.process.Args[0] == "ls"
}

CreateContainerRequest {
	input.OCI.Process.Args[0] = = "sh"
}
