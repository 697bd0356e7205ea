package cli

// The commands that look after BuildKit itself rather than a manifest: `prune` (buildctl
// prune's --keep-storage and --all) and `daemon status|stop` for the embedded buildkitd.

import (
	"fmt"
	"strings"

	"github.com/rootfsc/rootfsc/engine"
	"github.com/spf13/pflag"
)

// connectFlags adds --addr and buildctl's TLS flags to fs; the returned function reads them.
func connectFlags(fs *pflag.FlagSet) func() engine.ConnectOpts {
	var o engine.ConnectOpts
	fs.StringVar(&o.Addr, "addr", "", "buildkitd address (default $BUILDKIT_HOST, else the embedded daemon)")
	fs.StringVar(&o.TLSCACert, "tlscacert", "", "CA certificate the daemon's certificate must chain to")
	fs.StringVar(&o.TLSCert, "tlscert", "", "client certificate")
	fs.StringVar(&o.TLSKey, "tlskey", "", "client key")
	fs.StringVar(&o.TLSServerName, "tlsservername", "", "server name the daemon's certificate must carry (default: the address's host)")
	fs.StringVar(&o.StateDir, "state-dir", "", "the embedded daemon's state directory (default $ROOTFSC_STATE_DIR, else /var/lib/rootfsc)")
	return func() engine.ConnectOpts { return o }
}

func runPrune(e *env, args []string) error {
	fs := flags("prune")
	keep := fs.Float64("keep-storage", 0, "keep this much of the most recently used cache, in MB (as buildctl)")
	all := fs.Bool("all", false, "include internal and frontend references (as buildctl)")
	conn := connectFlags(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *keep < 0 {
		return usageError{"--keep-storage must not be negative"}
	}
	res, err := engine.Prune(e.ctx, conn(), engine.PruneOpts{KeepStorage: int64(*keep * 1e6), All: *all})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pruned %d cache records, %s reclaimed\n", res.Records, size(res.Reclaimed))
	return nil
}

func runDaemon(e *env, args []string) error {
	fs := flags("daemon")
	dir := fs.String("state-dir", "", "the embedded daemon's state directory (default $ROOTFSC_STATE_DIR, else /var/lib/rootfsc)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "status":
		st, err := engine.Status(e.ctx, *dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "state dir: %s\naddress:   %s\n", st.StateDir, st.Addr)
		switch {
		case st.PID == 0:
			fmt.Fprintln(e.stdout, "buildkitd: not running")
		case st.Answering:
			fmt.Fprintf(e.stdout, "buildkitd: pid %d, answering; workers %s; cache %s\n", st.PID, strings.Join(st.Workers, ", "), size(st.CacheBytes))
		default:
			fmt.Fprintf(e.stdout, "buildkitd: pid %d, not answering\n", st.PID)
		}
		if st.Stale != "" {
			fmt.Fprintf(e.stdout, "stale pid file: %s\n", st.Stale)
		}
		return nil
	case "stop":
		// Stop finishes even after a first Ctrl-C (a daemon half stopped helps nobody);
		// a second one exits at once.
		return engine.Stop(*dir)
	}
	return usageError{fmt.Sprintf("unknown daemon command %q (want status or stop)", pos[0])}
}

// size renders bytes in decimal units, as buildctl's du does.
func size(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n), 0
	for f >= unit && u < 4 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %cB", f, "BkMGT"[u])
}
