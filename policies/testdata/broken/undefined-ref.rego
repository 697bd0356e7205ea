package agent_policy

default CreateContainerRequest := false

CreateContainerRequest if allowed_image
