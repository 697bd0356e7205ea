package agent_policy

default CreateContainerRequst := true
