#!/usr/bin/env bash
# Compares ethetl with ethereum-etl 2.4.2 on the same local node and corpus: installs
# ethereum-etl into a Python 3.10 venv (.venv-ethereum-etl/, reused; 2.4.2 does not run on
# Python 3.11+), starts ethetl-devnode on a generated mainnet-shaped corpus, runs ethereum-etl's
# export_blocks_and_transactions, extract_field (transaction hashes), export_receipts_and_logs
# and extract_token_transfers on a slice of it, then `ethetl export` of the same five entities
# as JSONL files, and prints both blocks/s and their ratio (plus row counts as a sanity check).
#
#   scripts/compare-ethereum-etl.sh [--slice N] [--blocks M] [--seed S]
#
#   --slice N    blocks ethereum-etl exports (default 100)
#   --blocks M   blocks ethetl exports: the same slice and, when M > N, the whole M-block corpus
#                too (default 1000)
#   --seed S     corpus seed (default 1)
#
# Environment: BENCH_RUSTFLAGS / BENCH_TARGET_DIR as for scripts/bench.sh; PYTHON310: the Python
# 3.10 interpreter (default: pyenv's 3.10, else python3.10 on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

slice=100
blocks=1000
seed=1
start=23000000
while [ $# -gt 0 ]; do
  case "$1" in
    --slice) slice="$2"; shift 2 ;;
    --blocks) blocks="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ "$blocks" -ge "$slice" ] || blocks="$slice"

# --- ethereum-etl 2.4.2 in a Python 3.10 venv ------------------------------------------------
venv=.venv-ethereum-etl
# Versions ethereum-etl 2.4.2 runs with (web3 5.31.4 and eth-abi 2.2.0, as for the shared
# fixtures' oracle); pinned so that newer releases of its dependencies cannot break it.
pins=(ethereum-etl==2.4.2 web3==5.31.4 eth-abi==2.2.0 eth-utils==1.10.0 eth-account==0.5.9
  eth-typing==2.3.0 eth-hash==0.3.3 eth-keys==0.3.4 eth-keyfile==0.5.1 eth-rlp==0.2.1 rlp==2.0.1
  hexbytes==0.3.1 parsimonious==0.8.1 protobuf==3.19.5 websockets==9.1 click==8.5.1
  requests==2.34.2 urllib3==1.26.20 python-dateutil==2.9.0.post0 base58==2.1.1
  ethereum-dasm==0.1.4 evmdasm==0.1.10)
if ! "$venv/bin/ethereumetl" --version 2>/dev/null | grep -q 2.4.2; then
  py="${PYTHON310:-}"
  if [ -z "$py" ] && command -v pyenv >/dev/null; then
    v="$(pyenv versions --bare | grep -E '^3\.10(\.|$)' | sort -V | tail -n1 || true)"
    [ -n "$v" ] && py="$(pyenv root)/versions/$v/bin/python3"
  fi
  [ -n "$py" ] || py="$(command -v python3.10 || true)"
  if [ -z "$py" ]; then
    echo "error: Python 3.10 not found (ethereum-etl 2.4.2 needs it); set PYTHON310" >&2
    exit 2
  fi
  echo "installing ethereum-etl 2.4.2 into $venv ($("$py" --version))" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q "${pins[@]}"
fi
eetl="$PWD/$venv/bin/ethereumetl"

# --- release binaries (same flags and target dir as scripts/bench.sh) -------------------------
flags="${BENCH_RUSTFLAGS-auto}"
if [ "$flags" = auto ]; then
  flags=""
  if [ "$(uname -m)" = x86_64 ]; then
    cpu_flags="$(grep -m1 '^flags' /proc/cpuinfo || true)"
    ok=1
    for f in avx2 bmi2 fma pclmulqdq movbe; do [[ " $cpu_flags " == *" $f "* ]] || ok=0; done
    [ "$ok" = 1 ] && flags="-C target-cpu=x86-64-v3 -C target-feature=+pclmulqdq"
  fi
elif [ "$flags" = portable ]; then
  flags=""
fi
export RUSTFLAGS="$flags"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-target/bench-build}"
cargo build --release -p ethetl --bin ethetl -p ethetl-devnode --bin ethetl-devnode >&2
bin="$CARGO_TARGET_DIR/release"

# --- local node --------------------------------------------------------------------------------
work="$(mktemp -d)"
"$bin/ethetl-devnode" --generate "$blocks" --seed "$seed" --start-block "$start" \
  >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
trap 'kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
addr=""
for _ in $(seq 1 1200); do
  addr="$(head -n1 "$work/node.out" 2>/dev/null || true)"
  [ -n "$addr" ] && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.err" >&2; exit 2; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "error: ethetl-devnode did not start" >&2; exit 2; }
url="http://$addr"
end=$((start + slice - 1))
echo "local node: $blocks generated blocks from $start (seed $seed); ethereum-etl exports $start..$end" >&2

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a / b }'; }

# --- ethereum-etl (default workers and batch sizes) -------------------------------------------
e="$work/ethereum-etl"
mkdir -p "$e"
t0=$(now)
(cd "$e" && "$eetl" export_blocks_and_transactions --start-block "$start" --end-block "$end" \
  --provider-uri "$url" --blocks-output blocks.json --transactions-output transactions.json 2>>log)
t1=$(now)
(cd "$e" && "$eetl" extract_field --input transactions.json --field hash --output hashes.txt 2>>log)
t2=$(now)
(cd "$e" && "$eetl" export_receipts_and_logs --transaction-hashes hashes.txt --provider-uri "$url" \
  --receipts-output receipts.json --logs-output logs.json 2>>log)
t3=$(now)
(cd "$e" && "$eetl" extract_token_transfers --logs logs.json --output token_transfers.json 2>>log)
t4=$(now)
eetl_s=$(secs "$t0" "$t4")

# --- ethetl (defaults), same slice, then the whole corpus -------------------------------------
entities=blocks,transactions,logs,token_transfers,receipts
run_ethetl() { # $1 = blocks, $2 = output dir; prints seconds
  local a b
  a=$(now)
  "$bin/ethetl" export --rpc "$url" --blocks "$start:+$1" --entities "$entities" \
    --output "$2" --overwrite --quiet
  b=$(now)
  secs "$a" "$b"
}
x="$work/ethetl"
ethetl_slice_s=$(run_ethetl "$slice" "$x")

count() { cat "$@" 2>/dev/null | wc -l; }
printf '\nrows (ethereum-etl | ethetl) over %s blocks:\n' "$slice"
for ent in blocks transactions receipts logs token_transfers; do
  printf '  %-16s %9s | %9s\n' "$ent" "$(count "$e/$ent.json")" "$(count "$x/$ent"/*.jsonl)"
done
rm -rf "$x"
ethetl_all_s=""
if [ "$blocks" -gt "$slice" ]; then
  ethetl_all_s=$(run_ethetl "$blocks" "$x")
  rm -rf "$x"
fi

eetl_rate=$(div "$slice" "$eetl_s")
slice_rate=$(div "$slice" "$ethetl_slice_s")
printf '\nethereum-etl 2.4.2: %s blocks in %.2f s = %.2f blocks/s' "$slice" "$eetl_s" "$eetl_rate"
printf ' (blocks+transactions %.2f s, hashes %.2f s, receipts+logs %.2f s, token transfers %.2f s)\n' \
  "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(secs "$t2" "$t3")" "$(secs "$t3" "$t4")"
printf 'ethetl:             %s blocks in %.2f s = %.1f blocks/s -> %.0fx ethereum-etl\n' \
  "$slice" "$ethetl_slice_s" "$slice_rate" "$(div "$slice_rate" "$eetl_rate")"
if [ -n "$ethetl_all_s" ]; then
  all_rate=$(div "$blocks" "$ethetl_all_s")
  printf 'ethetl:             %s blocks in %.2f s = %.1f blocks/s -> %.0fx ethereum-etl\n' \
    "$blocks" "$ethetl_all_s" "$all_rate" "$(div "$all_rate" "$eetl_rate")"
fi
