package agent_policy

default LaunchMissilesRequest := false
