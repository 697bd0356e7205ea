#!/bin/sh
# The agent-rebuild benchmark of issue 3: a cold full build of a Kata rootfs, then a rebuild after
# changing only the agent file. Prints both times and the ratio, and fails if a step outside the
# agent layer (base, modules, policy, kata glue, files) ran again. Needs what `make test` needs.
set -eu
cd "$(dirname "$0")/.."
make -s deps tools
ROOTFSC_BIN="$PWD/bin" exec go test -run '^$' -bench '^BenchmarkAgentRebuild$' -benchtime 1x -count 1 -timeout 30m ./cmd/rootfsc
