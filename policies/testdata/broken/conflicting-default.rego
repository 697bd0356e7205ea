package agent_policy

default ExecProcessRequest := true

default ExecProcessRequest := false
