// Package policies embeds rootfsc's built-in Kata agent policies and checks and evaluates agent policies offline, giving the same answers as OPA's REST API.
package policies
