#!/usr/bin/env bash
# Stops the local tansu broker started by kafka-up.sh (by the PID in .kafka/pid) and removes
# its state files. Does nothing when none is running. Its data lived in memory only.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$root/.kafka"
say() { echo "kafka-down: $*" >&2; }

if [ ! -f "$state/pid" ]; then
  say "no broker running (no $state/pid)"
  rm -f "$state/brokers"
  exit 0
fi
pid=$(cat "$state/pid")
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q tansu "/proc/$pid/cmdline" 2>/dev/null; then
  kill -CONT "$pid" 2>/dev/null || true  # a stopped process cannot act on SIGTERM
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "tansu (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  say "stopped tansu (pid $pid)"
else
  say "pid $pid in $state/pid is not a running tansu; cleaning up"
fi
rm -f "$state/pid" "$state/brokers"
