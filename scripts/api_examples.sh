#!/usr/bin/env bash
# The examples of docs/API.md, run against a real `dualtune serve` on tiny data.
#   scripts/api_examples.sh [build/dualtune] > examples.md             generate them
#   scripts/api_examples.sh --check docs/API.md [build/dualtune]       check the document
# Trains two tiny models (seconds), builds a gallery of 12 Fashion-MNIST test images with
# the models' report and backfill curve beside it, serves it on a free loopback port and
# runs one curl command per route (and the typical bad ones). Each command is a shell
# line exactly as the document shows it (`$TOKEN` for the token, port 8080): the script
# runs that very line with `curl` standing for a function that sends it to the real port
# and keeps the answer.
# Generating prints each command and its answer as Markdown; long number arrays in
# answers are abridged to their first values ("… N values"), nothing else is edited.
# Checking (a ctest test) runs the same commands and fails when the document shows
# another command under an example's title, an example that is not run, or a status
# the request no longer gets; it prints one line per example and "N passed, N failed".
# Exit status 77 (skipped) when Fashion-MNIST, node or curl is missing.
set -euo pipefail
CHECK=""
if [[ ${1:-} == --check ]]; then
  CHECK=$(realpath "$2")
  shift 2
fi
B=$(realpath "${1:-build/dualtune}")
FM=/usr/share/datasets/fashion-mnist
SRC=$(cd "$(dirname "$0")/.." && pwd)
for need in node curl; do
  command -v $need > /dev/null || { echo "api_examples: $need is not installed; skipped" >&2; exit 77; }
done
[[ -f $FM/t10k-images-idx3-ubyte.gz ]] || { echo "api_examples: no Fashion-MNIST in $FM; skipped" >&2; exit 77; }
W=$(mktemp -d -t dualtune_api_examples.XXXXXX)
PID=""
trap '[[ -n $PID ]] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; rm -rf "$W"' EXIT
cd "$W"
common="data.workers=0 threads=1 log_every=1000 optim.epochs=1 augment.pad=0"
{
  "$B" train -c "$SRC/configs/fmnist/old_convnet_s.yml" data.limit=600 model.embedding_dim=8 output_dir=runs/old $common
  "$B" train -c "$SRC/configs/fmnist/new_bct.yml" data.limit=1000 model.backbone=convnet-s model.embedding_dim=12 \
    old.path=runs/old output_dir=runs/new $common
  "$B" gallery create g --model old --model-path runs/old
  "$B" gallery add g --format idx --root $FM --split test --limit 12 --threads 1 --workers 0
  for m in old new; do "$B" extract --model runs/$m --format idx --root $FM --split test --limit 12 --out features/$m --workers 0; done
  "$B" eval --features old=features/old --features new=features/new --old old --out g/report
  # The gate is measured on the report; --force: models this tiny may fail it (recorded as forced).
  "$B" gallery rollout g --model new --model-path runs/new --probe-report g/report --force
  cp -r g full
  "$B" gallery backfill full --batch 4 --quiet --threads 1 --workers 0
  "$B" gallery curve full --out g/curve --fractions 0,0.5,1 --threads 1
} > setup.log 2>&1 || { cat setup.log >&2; exit 1; }
node -e '
const fs = require("fs"), zlib = require("zlib");
const raw = zlib.gunzipSync(fs.readFileSync(process.argv[1]));
const i = 3, px = raw.subarray(16 + 784 * i, 16 + 784 * (i + 1));
// A minimal 8-bit grayscale PNG writer (zlib from Node), 28 x 28.
const crc = (b) => { let c = ~0; for (const x of b) { c ^= x; for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1)); } return ~c >>> 0; };
const chunk = (t, d) => { const l = Buffer.alloc(4); l.writeUInt32BE(d.length); const td = Buffer.concat([Buffer.from(t), d]); const c = Buffer.alloc(4); c.writeUInt32BE(crc(td)); return Buffer.concat([l, td, c]); };
const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(28, 0); ihdr.writeUInt32BE(28, 4); ihdr[8] = 8; ihdr[9] = 0;
const rows = []; for (let r = 0; r < 28; r++) rows.push(Buffer.from([0]), px.subarray(r * 28, r * 28 + 28));
fs.writeFileSync("query.png", Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr),
  chunk("IDAT", zlib.deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]));
' "$FM/t10k-images-idx3-ubyte.gz"
head -c 24 /dev/urandom | base64 > token
"$B" serve g --port 0 --token-file token --quiet > serve.out 2> serve.err &
PID=$!
# Up to 2 minutes: on a loaded machine (ctest -j2 beside builds) loading the models and
# building the caches has taken over 10 s.
for _ in $(seq 1200); do grep -q "http://" serve.out 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' serve.out)
[[ -n $PORT ]] || { echo "api_examples: dualtune serve printed no address within 2 minutes" >&2; cat serve.err >&2; exit 1; }
BASE=http://127.0.0.1:$PORT
TOKEN=$(cat token)
D=http://127.0.0.1:8080  # the server as the document shows it
VNEW=$(node -e 'console.log(JSON.stringify(Array.from({length: 12}, (_, i) => +(Math.sin(i + 1)).toFixed(3))))')

# `curl` in an example's command: the same arguments, sent to this server, with the
# answer's headers and body kept for printing or checking.
curl() {
  local a args=()
  for a in "$@"; do args+=("${a//$D/$BASE}"); done
  command curl -D "$W/headers" -o "$W/body" "${args[@]}"
}

pretty() {
  node -e '
let s = require("fs").readFileSync(0, "utf8");
try {
  const abridge = (v) => Array.isArray(v) ? (v.length > 6 && v.every((x) => typeof x === "number" || x === null)
      ? [...v.slice(0, 3), "… " + v.length + " values"] : v.map(abridge))
    : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, abridge(x)])) : v;
  s = JSON.stringify(abridge(JSON.parse(s)), null, 2);
} catch (e) { s = "(" + s.length + " bytes, not JSON)"; }
console.log(s);'
}

# The document's examples (check mode): title -> command line, title -> status line.
declare -A DOC_CMD DOC_STATUS
RUN=()
if [[ -n $CHECK ]]; then
  while IFS=$'\t' read -r title cmd status; do
    DOC_CMD[$title]=$cmd
    DOC_STATUS[$title]=$status
  done < <(awk '
    /^<!-- generated by scripts\/api_examples.sh/ { on = 1 }
    !on { next }
    /^#### / { title = substr($0, 6); cmd = ""; incode = 0; next }
    /^```bash$/ { incode = 1; next }
    incode && /^```$/ { incode = 0; next }
    incode { cmd = $0; next }
    title != "" && /^`HTTP\// { st = $0; sub(/^`/, "", st); sub(/`.*/, "", st); printf "%s\t%s\t%s\n", title, cmd, st; title = "" }
  ' "$CHECK")
  [[ ${#DOC_CMD[@]} -gt 0 ]] || { echo "api_examples: no generated examples found in $CHECK" >&2; exit 1; }
fi
PASSED=0
FAILED=0

# example TITLE COMMAND: runs COMMAND, a shell line as the document shows it, then
# prints it with its answer (generate) or compares it with the document (check).
example() {
  local title=$1 cmd=$2 status ctype
  rm -f "$W/headers" "$W/body"
  eval "$cmd" || true
  # The last status line: curl -D also keeps an interim "100 Continue" (large bodies).
  status=$(grep '^HTTP/' "$W/headers" 2>/dev/null | tail -1 | tr -d '\r')
  ctype=$(grep -i '^content-type:' "$W/headers" 2>/dev/null | tr -d '\r' | cut -d' ' -f2-)
  RUN+=("$title")
  # Answers without the token must not show where the server keeps its files.
  if [[ $cmd != *Authorization* ]] && grep -qF "$W" "$W/body" 2>/dev/null; then
    echo "api_examples: $title: the answer shows the server's directory $W" >&2
    [[ -z $CHECK ]] || { FAILED=$((FAILED + 1)); echo "FAIL  $title: the answer shows the server's directory"; return; }
  fi
  if [[ -n $CHECK ]]; then
    local problem=""
    if [[ -z ${DOC_CMD[$title]+x} ]]; then problem="not in the document"
    elif [[ ${DOC_CMD[$title]} != "$cmd" ]]; then problem="the document shows another command: ${DOC_CMD[$title]}; run: $cmd"
    elif [[ ${DOC_STATUS[$title]} != "$status" ]]; then problem="documented ${DOC_STATUS[$title]}, answered ${status:-nothing}: $(head -c 300 "$W/body" 2>/dev/null)"
    fi
    if [[ -z $problem ]]; then PASSED=$((PASSED + 1)); echo "ok    $title ($status)"
    else FAILED=$((FAILED + 1)); echo "FAIL  $title: $problem"; fi
    return
  fi
  printf '#### %s\n\n```bash\n%s\n```\n\n`%s` (%s)\n\n' "$title" "$cmd" "$status" "$ctype"
  if [[ $ctype == application/json* ]]; then
    echo '```json'; pretty < "$W/body" | sed "s|$W/||g"; echo '```'
  else
    echo "($(wc -c < "$W/body") bytes of $ctype)"
  fi
  echo
}

# Waits until no backfill runs (the examples after a start must not race it).
backfill_idle() {
  for _ in $(seq 1200); do
    command curl -s "$BASE/api/backfill" | grep -q '"running":false' && return
    sleep 0.1
  done
  echo "api_examples: the backfill of 4 items still runs after 2 minutes" >&2
  exit 1
}

J="-H 'Content-Type: application/json'"
A='-H "Authorization: Bearer $TOKEN"'
ITEM=$(command curl -s "$BASE/api/items?offset=3&limit=1" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).items[0].id)')

[[ -n $CHECK ]] || echo "<!-- generated by scripts/api_examples.sh on $(date -u +%F) -->"
example "GET /api/health" "curl -s $D/api/health"
example "GET /api/status" "curl -s $D/api/status"
example "GET /api/items" "curl -s '$D/api/items?offset=0&limit=3'"
example "GET /api/items/{id}/image" "curl -s '$D/api/items/$ITEM/image?size=64'"
example "POST /api/search (posted embedding)" "curl -s $J -d '{\"model\": \"new\", \"k\": 3, \"vector\": $VNEW}' $D/api/search"
example "POST /api/search (a gallery item's image)" "curl -s $J -d '{\"item\": $ITEM, \"k\": 3, \"merge\": \"raw\"}' $D/api/search"
example "POST /api/search/image" "curl -s -H 'Content-Type: image/png' --data-binary @query.png '$D/api/search/image?model=new&k=3'"
example "POST /api/search/image (multipart form)" "curl -s -F image=@query.png '$D/api/search/image?model=old&k=2'"
example "POST /api/backfill (start)" "curl -s $A $J -d '{\"batch_size\": 4, \"max_items\": 4, \"order\": \"random\"}' $D/api/backfill"
backfill_idle
example "GET /api/backfill" "curl -s $D/api/backfill"
example "POST /api/backfill/pause (nothing running)" "curl -s $A -X POST $D/api/backfill/pause"
example "POST /api/items (embeddings of the deployed model)" "curl -s $A $J -d '{\"model\": \"old\", \"items\": [{\"key\": \"ext/0001\", \"label\": \"7\", \"vector\": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}]}' $D/api/items"
example "POST /api/items (an uploaded image)" "curl -s $A -F image=@query.png -F label=3 $D/api/items"
example "POST /api/models/{name}/retire (refused: backfill not done)" "curl -s $A -X POST $D/api/models/old/retire"
example "GET /api/curve" "curl -s $D/api/curve"
example "GET /api/curve/plot" "curl -s $D/api/curve/plot"
example "GET /api/report" "curl -s $D/api/report"
example "GET /api/report/plots/{file}" "curl -s $D/api/report/plots/matrix_map.png"
example "GET /api/metrics" "curl -s $D/api/metrics"
[[ -n $CHECK ]] || printf '### Refusals\n\n'
example "wrong dimension" "curl -s $J -d '{\"model\": \"new\", \"vector\": [1, 2, 3]}' $D/api/search"
example "number out of range" "curl -s $J -d '{\"model\": \"new\", \"vector\": [1e999, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}' $D/api/search"
example "not an image" "curl -s -H 'Content-Type: image/png' --data-binary 'not a PNG' $D/api/search/image"
example "unknown model" "curl -s $J -d '{\"model\": \"newest\", \"vector\": $VNEW}' $D/api/search"
example "k out of range" "curl -s $J -d '{\"k\": 5000, \"vector\": $VNEW}' $D/api/search"
example "body over the limit" "head -c 9000000 /dev/zero | curl -s -H 'Content-Type: image/png' --data-binary @- $D/api/search/image"
example "write route without the token" "curl -s -X POST $D/api/backfill"
example "write route with a wrong token" "curl -s -H 'Authorization: Bearer not-the-token' -X POST $D/api/backfill"
example "no such route" "curl -s $D/api/nothing"
# Last: a rollback changes which model answers, and the examples above query "new".
[[ -n $CHECK ]] || printf '### Rollback\n\n'
example "POST /api/rollback" "curl -s $A -X POST $D/api/rollback"
example "POST /api/rollback (refused: nothing rolling out)" "curl -s $A -X POST $D/api/rollback"

if [[ -n $CHECK ]]; then
  for title in "${!DOC_CMD[@]}"; do
    if ! printf '%s\n' "${RUN[@]}" | grep -qxF -- "$title"; then
      FAILED=$((FAILED + 1))
      echo "FAIL  $title: documented, but the script does not run it"
    fi
  done
  echo "api_examples: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
fi
