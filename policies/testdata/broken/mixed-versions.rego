package agent_policy

default ExecProcessRequest := false

ExecProcessRequest if {
	input.process.Args[0] == "ls"
}

CreateContainerRequest {
	true
}
