package agent_policy

default CreateContainerRequst := true

default ExecProcessRequest := "no"

default WaitProcessRequest := true
