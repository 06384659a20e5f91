# ethetl — build, test, demo, lint and bench entry points.
#
#   make demo    local node on a generated chain -> ./out (no external services)
#   make test    everything CI runs: system packages, a local Kafka broker, all tests, lint
#
# The workspace: the product crate `ethetl` (this directory) and `devnode/` (ethetl-devnode,
# the local JSON-RPC node that the tests, the demo and the benchmarks run against; never part of
# the product). Every target below covers both.
#
# System packages the build needs (Debian/Ubuntu names): gcc, g++, make, perl, pkg-config,
# libssl-dev, zlib1g-dev (librdkafka is compiled from the rdkafka crate's bundled sources).
# `make test` also needs python3 (scripts/kafka-up.sh fetches the broker with pip) and
# chromium (the status-page test).

SHELL := /bin/bash
CARGO ?= cargo
BUILD_PACKAGES := pkg-config libssl-dev zlib1g-dev gcc g++ make perl
KAFKA_PACKAGES := python3
TEST_PACKAGES := $(BUILD_PACKAGES) $(KAFKA_PACKAGES) chromium
DEMO_BLOCKS ?= 200
DEMO_SEED ?= 42

.PHONY: all build deps test-deps bench-deps test lint fmt demo bench bench-micro kafka-up kafka-down

all: build

# Installs the missing packages of $(1) (Debian/Ubuntu, as root or with sudo).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

## Install the missing system packages the build needs.
deps:
	$(call apt_install,$(BUILD_PACKAGES))

## Install the missing system packages the tests need: the build's, python3 (for the local
## broker) and chromium (for the status-page test).
test-deps:
	$(call apt_install,$(TEST_PACKAGES))

## The build's packages and python3 (the benchmark's Kafka rows use the local broker).
bench-deps:
	$(call apt_install,$(BUILD_PACKAGES) $(KAFKA_PACKAGES))

## Release binaries: target/release/ethetl and target/release/ethetl-devnode.
build: deps
	$(CARGO) build --release --workspace --bins

## The whole test suite, as CI runs it. Idempotent: reuses a running broker.
test: test-deps
	@if [ -n "$$CI" ] && [ ! -d ../shared/fixtures ]; then \
	  echo "error: CI is set but ../shared/fixtures is missing (the conformance tests need it)"; exit 2; fi
	$(CARGO) build --workspace --all-targets
	./scripts/kafka-up.sh
	KAFKA_BROKERS="$${KAFKA_BROKERS:-$$(cat .kafka/brokers)}" $(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	$(MAKE) lint

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Demo: a local node serving a generated mainnet-shaped chain, exported to ./out. Builds only
## its two binaries, with the `demo` profile (release without LTO: quick from cold).
demo: deps
	./scripts/demo.sh $(DEMO_BLOCKS) $(DEMO_SEED)

## Benchmarks: one table + target/bench/*.json (see BENCHMARKS.md).
## BENCH_RUSTFLAGS=auto|portable|"<flags>" (auto: x86-64-v3 + pclmulqdq when the CPU has them)
BENCH_BLOCKS ?= 1000
bench: bench-deps
	-./scripts/kafka-up.sh >/dev/null
	./scripts/bench.sh --blocks $(BENCH_BLOCKS) $(BENCH_ARGS)

bench-micro: deps
	./scripts/bench.sh --micro

kafka-up:
	./scripts/kafka-up.sh

kafka-down:
	./scripts/kafka-down.sh
