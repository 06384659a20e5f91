#!/usr/bin/env bash
# Renders ethetl's --http status page in headless Chromium and checks it: the DOM after the
# page's scripts ran must show the numbers /stats serves and the chart must be drawn.
#
#   scripts/check-status-page.sh URL OUTDIR
#
# URL is the stats server's root (http://127.0.0.1:PORT/). Writes OUTDIR/dom.html (the DOM
# after JS), OUTDIR/stats.json (what /stats said right after) and OUTDIR/status.png (a
# screenshot). The numbers compared must not move while the check runs (a caught-up stream on
# a chain that no longer grows).
#
# Exit status: 0 checked, 1 the page is wrong, 2 usage or rendering error, 3 no Chromium.
# Set CHROMIUM to the browser binary to use another one.
set -euo pipefail

url="${1:-}"
out="${2:-}"
if [ -z "$url" ] || [ -z "$out" ]; then
  echo "usage: $0 URL OUTDIR" >&2
  exit 2
fi
case "$url" in */) ;; *) url="$url/" ;; esac

browser=""
for b in "${CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome; do
  if [ -n "$b" ] && command -v "$b" >/dev/null 2>&1; then
    browser="$(command -v "$b")"
    break
  fi
done
if [ -z "$browser" ]; then
  echo "no Chromium found (Debian/Ubuntu: apt-get install chromium)" >&2
  exit 3
fi

mkdir -p "$out"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
flags=(
  --headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile"
  --hide-scrollbars --virtual-time-budget=5000
)

if ! timeout 90 "$browser" "${flags[@]}" --dump-dom "$url" >"$out/dom.html" 2>"$out/chromium-dom.log"; then
  echo "chromium --dump-dom failed; see $out/chromium-dom.log" >&2
  exit 2
fi

# What /stats says right after the DOM was taken.
python3 - "$url" "$out" <<'PY'
import json, sys, urllib.request
url, out = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(url + "stats", timeout=10) as r:
    stats = json.load(r)
with open(out + "/stats.json", "w") as f:
    json.dump(stats, f, indent=1)
PY

if ! timeout 90 "$browser" "${flags[@]}" --window-size=1280,1000 --screenshot="$out/status.png" "$url" \
    >/dev/null 2>"$out/chromium-shot.log"; then
  echo "chromium --screenshot failed; see $out/chromium-shot.log" >&2
  exit 2
fi

python3 - "$out" <<'PY'
import json, re, sys

out = sys.argv[1]
stats = json.load(open(out + "/stats.json"))
dom = open(out + "/dom.html", encoding="utf-8").read()

def shown(element_id):
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(element_id), dom)
    return None if m is None else m.group(1).strip()

problems = []
fields = ["blocks_streamed", "transactions_streamed", "logs", "token_transfers",
          "current_block", "head", "lag", "checkpoint_block", "reorgs", "orphaned_blocks"]
for k in fields:
    want = "–" if stats.get(k) is None else str(stats[k])
    got = shown(k)
    if got != want:
        problems.append("%s: page shows %r, /stats says %r" % (k, got, want))
for k in ("rpc_requests", "rpc_errors"):
    if shown(k) is None:
        problems.append("%s: not on the page" % k)
if not re.search(r'<svg[^>]*id="chart"', dom):
    problems.append("no chart element")
m = re.search(r'<svg[^>]*data-samples="(\d+)"', dom)
if m is None or int(m.group(1)) < 1:
    problems.append("the chart has no samples (data-samples %s)" % (m and m.group(1)))
m = re.search(r'<polyline[^>]*id="rate-line"[^>]*points="([^"]*)"', dom) or \
    re.search(r'<polyline[^>]*points="([^"]*)"[^>]*id="rate-line"', dom)
if m is None or len(m.group(1).split()) < 1:
    problems.append("the blocks/s line is not drawn")
status = shown("status")
if status not in ("running", "finished"):
    problems.append("status pill says %r" % status)
if problems:
    print("status page check failed:", file=sys.stderr)
    for p in problems:
        print("  " + p, file=sys.stderr)
    sys.exit(1)
print("status page ok: %s blocks, head %s, chart with %s samples; screenshot %s/status.png"
      % (stats["blocks_streamed"], stats["head"],
         re.search(r'data-samples="(\d+)"', dom).group(1), out))
PY
