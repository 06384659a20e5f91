#!/usr/bin/env bash
# ethetl benchmarks (what `make bench` runs). Builds release binaries (ethetl and the
# ethetl-devnode workspace crate) with BENCH_RUSTFLAGS and runs the end-to-end bench
# (benches/e2e.rs): a local node serving a generated mainnet-shaped corpus from memory, the
# single-core parse limit, then `ethetl export` to null, JSONL files and Kafka (when a broker
# is reachable), printing one table and writing it as JSON under target/bench/.
#
#   scripts/bench.sh [--blocks N] [e2e options]     end-to-end table (--help lists options)
#   scripts/bench.sh --micro [criterion filter]     decode micro-benchmarks (benches/decode.rs)
#
# Environment:
#   BENCH_RUSTFLAGS   compiler flags; default on x86-64 CPUs with AVX2, BMI2, FMA and PCLMULQDQ:
#                     "-C target-cpu=x86-64-v3 -C target-feature=+pclmulqdq" (sonic-rs picks its
#                     SIMD at compile time); "portable" builds without extra flags.
#   BENCH_TARGET_DIR  cargo target directory (default target/bench-build, so switching flags
#                     does not rebuild the ordinary target/release).
#   KAFKA_BROKERS     host:port of a broker for the Kafka rows (default: .kafka/brokers).
set -euo pipefail
cd "$(dirname "$0")/.."

v3_flags="-C target-cpu=x86-64-v3 -C target-feature=+pclmulqdq"
flags="${BENCH_RUSTFLAGS-auto}"
if [ "$flags" = auto ]; then
  flags=""
  if [ "$(uname -m)" = x86_64 ]; then
    cpu_flags="$(grep -m1 '^flags' /proc/cpuinfo || true)"
    ok=1
    for f in avx2 bmi2 fma pclmulqdq movbe; do
      [[ " $cpu_flags " == *" $f "* ]] || ok=0
    done
    [ "$ok" = 1 ] && flags="$v3_flags"
  fi
elif [ "$flags" = portable ]; then
  flags=""
fi
export RUSTFLAGS="$flags"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-target/bench-build}"
if [ -z "${KAFKA_BROKERS:-}" ] && [ -s .kafka/brokers ]; then
  KAFKA_BROKERS="$(cat .kafka/brokers)"
  export KAFKA_BROKERS
fi
echo "bench: RUSTFLAGS=\"$RUSTFLAGS\" CARGO_TARGET_DIR=$CARGO_TARGET_DIR" >&2

if [ "${1:-}" = --micro ]; then
  shift
  exec cargo bench --bench decode -- "$@"
fi
export ETHETL_BENCH_RUSTFLAGS="${RUSTFLAGS:-none}"
# The node is another workspace crate: build its binary with the same flags, next to the bench's
# (benches/e2e.rs finds it there).
cargo build --release -p ethetl-devnode --bin ethetl-devnode
exec cargo bench --bench e2e -- "$@"
