// Package cli is rootfsc's thin command line: flag sets, one library call per subcommand, printing.
package cli
