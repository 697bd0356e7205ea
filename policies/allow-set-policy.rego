# allow-set-policy: only SetPolicyRequest is allowed, so the host must
# send a real policy before the agent does anything else. Every other request
# is spelled out as false rather than left undefined, so a reader sees the full
# list and OPA answers {"result":false} instead of {}.
package agent_policy

default AddARPNeighborsRequest := false
default AddSwapRequest := false
default CloseStdinRequest := false
default CopyFileRequest := false
default CreateContainerRequest := false
default CreateSandboxRequest := false
default DestroySandboxRequest := false
default ExecProcessRequest := false
default GetMetricsRequest := false
default GetOOMEventRequest := false
default GuestDetailsRequest := false
default ListInterfacesRequest := false
default ListRoutesRequest := false
default MemHotplugByProbeRequest := false
default OnlineCPUMemRequest := false
default PauseContainerRequest := false
default PullImageRequest := false
default ReadStreamRequest := false
default RemoveContainerRequest := false
default RemoveStaleVirtiofsShareMountsRequest := false
default ReseedRandomDevRequest := false
default ResumeContainerRequest := false
default SetGuestDateTimeRequest := false
default SetPolicyRequest := true
default SignalProcessRequest := false
default StartContainerRequest := false
default StartTracingRequest := false
default StatsContainerRequest := false
default StopTracingRequest := false
default TtyWinResizeRequest := false
default UpdateContainerRequest := false
default UpdateEphemeralMountsRequest := false
default UpdateInterfaceRequest := false
default UpdateRoutesRequest := false
default WaitProcessRequest := false
default WriteStreamRequest := false
