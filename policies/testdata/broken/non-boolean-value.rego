package agent_policy

default CreateContainerRequest := true

CopyFileRequest := {"allow": true} if input.path == "/etc/hosts"
