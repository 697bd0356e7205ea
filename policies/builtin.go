package policies

// The built-in policies, installed by name from a manifest's policy field.

import (
	"embed"
	"slices"
	"strings"
)

//go:embed *.rego
var builtinFS embed.FS

// Builtin returns the text of the built-in policy name ("allow-all",
// "allow-all-except-exec-process" or "allow-set-policy").
func Builtin(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, "/.") {
		return nil, false
	}
	b, err := builtinFS.ReadFile(name + ".rego")
	if err != nil {
		return nil, false
	}
	return b, true
}

// BuiltinNames returns the names of the built-in policies, sorted.
func BuiltinNames() []string {
	entries, _ := builtinFS.ReadDir(".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".rego"))
	}
	slices.Sort(names)
	return names
}
