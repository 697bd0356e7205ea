package agent_policy

ExecProccessRequest {
	true
}
