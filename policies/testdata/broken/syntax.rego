package agent_policy

default CreateContainerRequest := true

ExecProcessRequest if {
	input.process.Args[0] == 
}
