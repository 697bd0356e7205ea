package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/rootfsc/rootfsc/build"
)

// env is what a subcommand may touch: its arguments and the three streams.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name  string
	usage string
	help  string
	run   func(e *env, args []string) error
}

// usageError asks Main to print the usage line of a subcommand with exit code 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

var commands []command

func init() {
	commands = []command{
		{"build", "build MANIFEST [-o type=dir|tar|initrd|sbom|oci|docker,dest=PATH | -o type=image,name=REF[,push=true]]... [--context DIR] [--locked] [--progress MODE] [--addr URL] [--tlscacert F --tlscert F --tlskey F] [--cache-to SPEC] [--cache-from SPEC] [--mirror URL] [--label K=V]", "resolve (unless locked), lower and build the rootfs; every output from one solve", runBuild},
		{"boot", "boot MANIFEST|INITRD [--kernel FILE] [--append ARGS] [--expect REGEX] [--timeout D] [--context DIR] [--locked] [--mirror URL] [--progress MODE] [--addr URL]", "build the manifest as an initrd (cached) and boot it under qemu (KVM when it works, else TCG) with the lock's kernel or --kernel; the console on stdout", runBoot},
		{"lock", "lock MANIFEST [--mirror URL] [--allow-downgrade]", "resolve the packages and write MANIFEST.lock.json", runLock},
		{"vet", "vet MANIFEST [--context DIR]", "check the manifest, its inputs and policy, and the lock's freshness (no daemon)", runVet},
		{"llb", "llb MANIFEST [--context DIR] [--mirror URL] [--locked]", "print the LLB definition (for `buildctl build`) on stdout", runLLB},
		{"frontend", "frontend", "the BuildKit gateway frontend entrypoint (run by buildkitd from the frontend image)", runFrontend},
		{"frontend-image", "frontend-image -o type=oci|docker,dest=FILE | -o type=image,name=REF[,push=true] [--addr URL]", "build rootfsc's frontend image with BuildKit", runFrontendImage},
		{"policy", "policy check FILE... | policy eval --policy FILE --input INPUT.json REQUEST", "check agent policies; evaluate a request as OPA's REST API would", runPolicy},
		{"distros", "distros [DIR]", "list the distros rootfsc knows (built in, in DIR/distros, on ROOTFSC_DISTRO_PATH): family, releases, where each is defined, verified live or against fixtures", runDistros},
		{"distro", "distro new NAME [--family deb|apk]", "scaffold distros/NAME/distro.cue in the current folder from the family's template", runDistro},
		{"prune", "prune [--keep-storage MB] [--all] [--addr URL] [--tlscacert FILE --tlscert FILE --tlskey FILE]", "remove build cache from the daemon, as buildctl prune does", runPrune},
		{"daemon", "daemon status|stop [--state-dir DIR]", "report on or stop the embedded buildkitd", runDaemon},
		{"version", "version", "print rootfsc's version", runVersion},
		{"help", "help", "list the commands", nil},
	}
}

// Main runs rootfsc with os.Args and returns the exit code; it is the only place that prints an error.
//
// The first SIGINT or SIGTERM cancels the command, which then cleans up (temporary outputs
// removed, the previous output kept) and exits 130 or 143; a second one exits at once with
// its own code, for when the cleanup waits on something stuck (a frozen daemon).
func Main() int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var first atomic.Value // the syscall.Signal that cancelled the command
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		first.Store(s.(syscall.Signal))
		cancel(fmt.Errorf("interrupted by %s", sigName(s)))
		s = <-sigs
		fmt.Fprintf(os.Stderr, "rootfsc: %s again: exiting without cleaning up\n", sigName(s))
		os.Exit(sigExit(s))
	}()
	if p := os.Getenv("ROOTFSC_CPUPROFILE"); p != "" {
		// For the benchmark's profile (docs/benchmarks.md): `go tool pprof bin/rootfsc FILE`.
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	if p := os.Getenv("ROOTFSC_MEMPROFILE"); p != "" {
		// Every allocation of the command, for `go tool pprof -sample_index=alloc_space`.
		defer func() {
			if f, err := os.Create(p); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	code := run(&env{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	if s, ok := first.Load().(syscall.Signal); ok && code != 0 {
		fmt.Fprintf(os.Stderr, "rootfsc: interrupted by %s\n", sigName(s))
		return sigExit(s)
	}
	return code
}

// sigExit is the shell's exit code for a process ended by s: 128 + its number.
func sigExit(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

func sigName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

func run(e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] || c.run == nil {
			continue
		}
		err := c.run(e, args[1:])
		var ue usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, pflag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(e.stderr, "rootfsc %s: %s\nusage: rootfsc %s\n", c.name, ue.msg, c.usage)
			return 2
		default:
			fmt.Fprintf(e.stderr, "rootfsc %s: %s\n", c.name, strings.TrimRight(formatError(err), "\n"))
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "rootfsc: unknown command %q (see rootfsc help)\n", args[0])
	return 2
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "rootfsc builds Kata Containers guest root filesystems from a CUE manifest through BuildKit.")
	fmt.Fprintln(w, "\nCommands:")
	cs := append([]command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.help)
	}
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range cs {
		fmt.Fprintf(w, "  rootfsc %s\n", c.usage)
	}
}

// flags makes a subcommand's flag set; errors are returned, never printed by pflag itself.
func flags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args and requires exactly one positional argument (the manifest) unless n < 0.
func parse(fs *pflag.FlagSet, args []string, n int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err.Error()}
	}
	if n >= 0 && fs.NArg() != n {
		return nil, usageError{fmt.Sprintf("want %d argument(s), got %d", n, fs.NArg())}
	}
	return fs.Args(), nil
}

func runVersion(e *env, args []string) error {
	if _, err := parse(flags("version"), args, 0); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "rootfsc %s\n", build.Version)
	return nil
}
