# rootfsc: the two set-up commands of the README are `make rootfs` and `make test`.
# Both install what a fresh Debian machine lacks (runc, mmdebstrap, …) and build the tools into bin/.
SHELL := /bin/bash
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
GO ?= go
APT_PKGS := runc mmdebstrap debian-archive-keyring xz-utils zstd ca-certificates qemu-system-x86 skopeo docker-registry cpio busybox-static e2fsprogs erofs-utils cryptsetup-bin fdisk
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)

.PHONY: all deps tools rootfs test test-short vet fuzz bench bench-smoke clean
all: tools

# deps installs the Debian packages the builds and tests need, only when one is missing.
deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# rootfsc is static (CGO off): it is the frontend image's entrypoint (rootfsc frontend-image).
$(BIN)/rootfsc: $(BIN)/rootfsc-helper FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X github.com/rootfsc/rootfsc/build.Version=$(VERSION)" -o $@ ./cmd/rootfsc

# rootfsc-helper runs inside the build steps, which BuildKit keys by its bytes: it is built
# reproducibly (no version, no VCS stamp, no build ID), so a new rootfsc whose helper code did not
# change keeps every cached base layer.
$(BIN)/rootfsc-helper: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-buildid=" -o $@ ./cmd/rootfsc-helper

$(BIN)/buildkitd: go.mod go.sum
	$(GO) build -o $@ github.com/moby/buildkit/cmd/buildkitd

$(BIN)/buildctl: go.mod go.sum
	$(GO) build -o $@ github.com/moby/buildkit/cmd/buildctl

# OPA's static binary, from the module pinned in go.mod: installed by the opa-service policy
# engine in the example and the tests, and run as a real server by the policy tests.
$(BIN)/opa: go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ github.com/open-policy-agent/opa

# The stand-in for kata-agent (the real one is Rust and cannot be built here): testdata/standin-agent.
$(BIN)/kata-agent-standin: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./testdata/standin-agent

tools: $(BIN)/rootfsc $(BIN)/rootfsc-helper $(BIN)/buildkitd $(BIN)/buildctl $(BIN)/opa $(BIN)/kata-agent-standin

# The main job: build the example Debian rootfs into examples/rootfs with the embedded buildkitd.
rootfs: deps tools
	$(BIN)/rootfsc build --context . examples/debian.cue

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# All tiers: unit, CLI scripts and the integration tests (real buildkitd, real mirror, mmdebstrap),
# then every fuzz target briefly.
test: deps tools vet
	ROOTFSC_BIN=$(BIN) ROOTFSC_TEST_MMDEBSTRAP=1 $(GO) test -count=1 -timeout 60m ./...
	$(MAKE) fuzz
	$(MAKE) bench-smoke

# The benchmark of issue 9 (cmd/rootfsc/bench_test.go): the Kata example cold, against mmdebstrap
# of the same package set, then no-op, agent, policy and one-file rebuilds, resolution, lowering
# and peak memory; a table of medians over BENCH_RUNS runs. It asserts no timing.
BENCH_RUNS ?= 3
bench: deps tools
	ROOTFSC_BIN=$(BIN) ROOTFSC_BENCH=$(BENCH_RUNS) $(GO) test -count=1 -v -run '^TestBench$$' -timeout 180m ./cmd/rootfsc

# One run, for CI: that the benchmark still works, not how fast.
bench-smoke:
	$(MAKE) bench BENCH_RUNS=1

# Every fuzz target of the module for FUZZTIME each (make fuzz FUZZTIME=10m for a long run).
# The short run counts executions, not seconds: a -fuzztime in seconds races the fuzzing
# engine's deadline against a worker that a loaded machine has starved, and go test then
# fails with no failing input (golang/go#56238, #75804).
FUZZTIME ?= 3000x
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg || exit 1; \
		done; \
	done

# Unit and CLI tests only: no daemon, no network.
test-short: tools
	$(GO) test -short ./...

clean:
	rm -rf $(BIN)

FORCE:
