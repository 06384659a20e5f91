#!/usr/bin/env bash
# Demo on embedded defaults: start ethetl-devnode on a generated mainnet-shaped chain (no
# network, no external services), export it to ./out with ethetl, and show what was written.
#
# Builds just the two binaries it runs, with the `demo` cargo profile (release optimisation
# without LTO, 16 codegen units, no debug info), so that a first run does not wait for the
# release profile's thin-LTO build. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
blocks="${1:-200}"
seed="${2:-42}"
start=20000000

cargo build --profile demo -p ethetl --bin ethetl -p ethetl-devnode --bin ethetl-devnode
bin="${CARGO_TARGET_DIR:-target}/demo"
work="$(mktemp -d)"
"$bin/ethetl-devnode" --generate "$blocks" --seed "$seed" --start-block "$start" >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
trap 'kill "$node_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

addr=""
for _ in $(seq 1 1200); do
  addr="$(head -n1 "$work/node.out" 2>/dev/null || true)"
  [ -n "$addr" ] && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.err" >&2; exit 2; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "error: ethetl-devnode did not start" >&2; exit 2; }
echo "local node: http://$addr ($blocks generated blocks from $start, seed $seed)"

"$bin/ethetl" export --rpc "http://$addr" --blocks "$start:+$blocks" \
  --entities blocks,transactions,logs,token_transfers,receipts --output out --overwrite
echo "note: the generated chain contains deliberately malformed Transfer logs (topics + data"
echo "words != 4) to exercise the decoder; skipping them is correct, so the \"skipped N malformed"
echo "transfer logs\" count above is expected."

echo
echo "files written under ./out:"
find out -type f -not -name '.*' -not -path 'out/_manifests/*' | sort |
  while read -r f; do printf '  %-60s %8s rows\n' "$f" "$(wc -l <"$f")"; done
echo "  chunk manifests in out/_manifests: $(find out/_manifests -type f | wc -l) (a chunk is complete when its manifest exists)"

echo
echo "first transaction row:"
head -c 600 "$(find out/transactions -type f | sort | head -n1)"; echo " ..."
