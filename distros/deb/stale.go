package deb

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
)

// StaleReason says in words why a lock no longer matches a request, for the error that --locked
// gives; it returns "" when it finds nothing more specific than the digest.
func StaleReason(req Request, l *lock.Lock) string {
	var why []string
	if req.Distro != l.Distro || req.Release != l.Release || req.Arch != l.Arch {
		why = append(why, fmt.Sprintf("the manifest asks for %s %s/%s, the lock holds %s %s/%s",
			req.Distro, req.Release, req.Arch, l.Distro, l.Release, l.Arch))
	}
	have := map[string]string{} // name -> locked version
	for _, p := range l.Packages {
		have[p.Name] = p.Version
	}
	var missing, repinned []string
	for _, r := range req.Packages {
		name, pin := family.ParsePackage(r)
		v, ok := have[name]
		switch {
		case !ok:
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		case pin != "" && pin != v:
			repinned = append(repinned, fmt.Sprintf("%s is pinned to %s, the lock holds %s", name, pin, v))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		why = append(why, "requested but not in the lock: "+strings.Join(missing, ", "))
	}
	slices.Sort(repinned)
	why = append(why, repinned...)
	var suites []string
	for _, s := range l.Suites {
		suites = append(suites, s.Name)
	}
	for _, s := range req.Suites {
		if !slices.Contains(suites, s.Name) {
			why = append(why, "suite "+s.Name+" is not in the lock")
		}
	}
	if k := kernelChange(req.Kernel, l.Kernel); k != "" {
		why = append(why, k)
	}
	var tools []string
	for _, p := range l.Tools {
		tools = append(tools, p.Name)
	}
	for _, t := range req.Tools {
		if !slices.Contains(tools, t) {
			why = append(why, "disk image tool "+t+" is not in the lock")
		}
	}
	return strings.Join(why, "; ")
}

// kernelChange says how the requested kernel package differs from the lock's, or returns "".
func kernelChange(want string, have *lock.Kernel) string {
	switch {
	case want == "" && have == nil:
		return ""
	case want == "":
		return "the manifest asks for no kernel package, the lock holds " + describeKernel(have)
	case have == nil:
		return "kernel package " + want + " requested but not in the lock"
	}
	requested := have.Requested
	if requested == "" {
		requested = have.Name
	}
	if want == requested {
		return ""
	}
	return "the manifest asks for kernel package " + want + ", the lock holds " + describeKernel(have)
}

func describeKernel(k *lock.Kernel) string {
	if k.Requested != "" && k.Requested != k.Name {
		return k.Requested + " (" + k.Name + ")"
	}
	return k.Name
}
