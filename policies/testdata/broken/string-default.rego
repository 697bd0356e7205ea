package agent_policy

default ExecProcessRequest := "yes"
