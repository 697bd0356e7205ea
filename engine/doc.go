// Package engine connects to (or starts) a BuildKit daemon, solves LLB definitions and exports the result as a tar file or an ownership-preserving directory.
package engine
