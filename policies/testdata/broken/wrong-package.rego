package kata

default CreateContainerRequest := true
