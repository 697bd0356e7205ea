package agent_policy

default ExecProcessRequest := 1
