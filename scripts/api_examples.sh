#!/usr/bin/env bash
# Generates the example requests and responses of docs/API.md from a running
# `dualtune serve` on tiny data, so the document shows what the server really answers:
#   scripts/api_examples.sh [build/dualtune] > /tmp/api_examples.md
# Trains two tiny models (seconds), builds a gallery of 12 Fashion-MNIST test images with
# the models' report and backfill curve beside it, serves it on a free loopback port,
# sends one request per route (and the typical bad ones) with curl, and prints each
# request and its answer as Markdown. Long number arrays in answers are abridged to
# their first values ("… N values"); nothing else is edited.
set -euo pipefail
B=$(realpath "${1:-build/dualtune}")
FM=/usr/share/datasets/fashion-mnist
SRC=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/dualtune_api_examples.XXXXXX)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$W"' EXIT
cd "$W"
common="data.workers=0 threads=1 log_every=1000 optim.epochs=1 augment.pad=0"
{
  "$B" train -c "$SRC/configs/fmnist/old_convnet_s.yml" data.limit=600 model.embedding_dim=8 output_dir=runs/old $common
  "$B" train -c "$SRC/configs/fmnist/new_bct.yml" data.limit=1000 model.backbone=convnet-s model.embedding_dim=12 \
    old.path=runs/old output_dir=runs/new $common
  "$B" gallery create g --model old --model-path runs/old
  "$B" gallery add g --format idx --root $FM --split test --limit 12 --threads 1 --workers 0
  "$B" gallery rollout g --model new --model-path runs/new
  for m in old new; do "$B" extract --model runs/$m --format idx --root $FM --split test --limit 12 --out features/$m --workers 0; done
  "$B" eval --features old=features/old --features new=features/new --old old --out g/report
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
for _ in $(seq 100); do grep -q "http://" serve.out 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' serve.out)
BASE=http://127.0.0.1:$PORT
TOKEN=$(cat token)
VNEW=$(node -e 'console.log(JSON.stringify(Array.from({length: 12}, (_, i) => +(Math.sin(i + 1)).toFixed(3))))')

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

# example TITLE CURL-ARGS...: prints the request as a shell command and the answer.
example() {
  local title=$1; shift
  echo "#### $title"
  echo
  echo '```bash'
  printf 'curl -s'
  for a in "$@"; do
    a=${a//$BASE/http://127.0.0.1:8080}
    a=${a//$TOKEN/\$TOKEN}
    a=${a//$W\//}
    if [[ $a == *" "* || $a == *'"'* || $a == *'{'* ]]; then printf " '%s'" "$a"; else printf ' %s' "$a"; fi
  done
  echo
  echo '```'
  curl -s -o body -D headers "$@" || true
  local status ctype
  status=$(head -1 headers | tr -d '\r')
  ctype=$(grep -i '^content-type:' headers | tr -d '\r' | cut -d' ' -f2-)
  echo
  echo "\`$status\` ($ctype)"
  echo
  if [[ $ctype == application/json* ]]; then
    echo '```json'; pretty < body | sed "s|$W/||g"; echo '```'
  else
    echo "($(wc -c < body) bytes of $ctype)"
  fi
  echo
}

J=(-H 'Content-Type: application/json')
A=(-H "Authorization: Bearer $TOKEN")
ITEM=$(curl -s "$BASE/api/items?offset=3&limit=1" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).items[0].id)')

echo "<!-- generated by scripts/api_examples.sh on $(date -u +%F) -->"
example "GET /api/health" "$BASE/api/health"
example "GET /api/status" "$BASE/api/status"
example "GET /api/items" "$BASE/api/items?offset=0&limit=3"
example "GET /api/items/{id}/image" "$BASE/api/items/$ITEM/image?size=64"
example "POST /api/search (posted embedding)" "${J[@]}" -d "{\"model\": \"new\", \"k\": 3, \"vector\": $VNEW}" "$BASE/api/search"
example "POST /api/search (a gallery item's image)" "${J[@]}" -d "{\"item\": $ITEM, \"k\": 3, \"merge\": \"raw\"}" "$BASE/api/search"
example "POST /api/search/image" -H 'Content-Type: image/png' --data-binary @query.png "$BASE/api/search/image?model=new&k=3"
example "POST /api/search/image (multipart form)" -F image=@query.png "$BASE/api/search/image?model=old&k=2"
example "POST /api/backfill (start)" "${A[@]}" "${J[@]}" -d '{"batch_size": 4, "max_items": 4, "order": "random"}' "$BASE/api/backfill"
sleep 2
example "GET /api/backfill" "$BASE/api/backfill"
example "POST /api/backfill/pause (nothing running)" "${A[@]}" -X POST "$BASE/api/backfill/pause"
example "POST /api/items (embeddings of the deployed model)" "${A[@]}" "${J[@]}" \
  -d '{"model": "old", "items": [{"key": "ext/0001", "label": "7", "vector": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}]}' "$BASE/api/items"
example "POST /api/items (an uploaded image)" "${A[@]}" -F image=@query.png -F label=3 "$BASE/api/items"
example "POST /api/models/{name}/retire (refused: backfill not done)" "${A[@]}" -X POST "$BASE/api/models/old/retire"
example "GET /api/curve" "$BASE/api/curve"
example "GET /api/curve/plot" "$BASE/api/curve/plot"
example "GET /api/report" "$BASE/api/report"
example "GET /api/report/plots/{file}" "$BASE/api/report/plots/matrix_map.png"
example "GET /api/metrics" "$BASE/api/metrics"
echo "### Refusals"
echo
example "wrong dimension" "${J[@]}" -d '{"model": "new", "vector": [1, 2, 3]}' "$BASE/api/search"
example "not an image" -H 'Content-Type: image/png' --data-binary @token "$BASE/api/search/image"
example "unknown model" "${J[@]}" -d "{\"model\": \"newest\", \"vector\": $VNEW}" "$BASE/api/search"
example "k out of range" "${J[@]}" -d "{\"k\": 5000, \"vector\": $VNEW}" "$BASE/api/search"
head -c 9000000 /dev/zero > big.bin
example "body over the limit" -H 'Content-Type: image/png' --data-binary @big.bin "$BASE/api/search/image"
example "write route without the token" -X POST "$BASE/api/backfill"
example "write route with a wrong token" -H 'Authorization: Bearer not-the-token' -X POST "$BASE/api/backfill"
example "no such route" "$BASE/api/nothing"
