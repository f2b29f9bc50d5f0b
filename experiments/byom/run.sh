#!/bin/bash
# Bring your own model, end to end: the table of docs/RESULTS.md's section "Your own model:
# a scripted ResNet-18, pretrained vs from scratch", from a fresh clone.
#
#   experiments/byom/run.sh DATA OUT
#
# DATA: the open-set glyph benchmark (`/usr/bin/python3 tools/openset/make_glyphs.py --out DATA`).
# OUT:  a new directory for everything this writes:
#   OUT/init/{scratch,pretrained}.pt   the TorchScript ResNet-18 before / after pretraining
#                                      on Fashion-MNIST in Python (pretrain.json: its log)
#   OUT/old                            the old model (configs/glyphs/old_convnet_s.yml, full budget)
#   OUT/{bct,dual_tuning}_{scratch,pretrained}   the four new models
#   OUT/features, OUT/report           test features; `dualtune eval` of the four upgrades (report.json / .md,
#                                      diagnostics.json), and OUT/table.md, the section's table
#   OUT/logs                           one log per step
#
# Environment (defaults are the budget of the published table):
#   DUALTUNE=./build/dualtune   the binary
#   EPOCHS=2 LIMIT=51600        new-model budget: optim.epochs and data.limit (a fixed random
#                               subset of train-new, the same for the four runs; LIMIT=0 = all
#                               128,998 images; the shipped configs' full budget is EPOCHS=3 LIMIT=0)
#   PRETRAIN_EPOCHS=2           Fashion-MNIST epochs in Python
#   THREADS=1                   libtorch threads per training; two trainings run side by side
#   NICE=10                     niceness of every heavy step
# Steps already finished in OUT (their output exists, a run's meta.json says complete) are
# skipped, so a stopped run continues (an unfinished training starts over), and copying
# OUT/init and OUT/old of one run into a new OUT trains only the new models at another
# EPOCHS / LIMIT.
set -euo pipefail

[ $# -eq 2 ] || { sed -n 2,28p "$0"; exit 2; }
DATA=$1
OUT=$2
B=${DUALTUNE:-./build/dualtune}
EPOCHS=${EPOCHS:-2}
LIMIT=${LIMIT:-51600}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-2}
THREADS=${THREADS:-1}
NICE=${NICE:-10}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

[ -f "$DATA/manifest.json" ] || { echo "run.sh: expected the glyph benchmark in $DATA (manifest.json), found none" >&2; exit 1; }
[ -x "$B" ] || { echo "run.sh: expected the dualtune binary at $B (set DUALTUNE=...), found none" >&2; exit 1; }
mkdir -p "$OUT/logs"
both() {  # both PID1 PID2: wait for two background steps, fail if either failed
  local rc=0
  wait "$1" || rc=1
  wait "$2" || rc=1
  return $rc
}
run() {  # run NAME CMD...: timed, niced, logged to OUT/logs/NAME.log
  local name=$1; shift
  echo "== $(date -u +%H:%M:%S) $name"
  /usr/bin/time -f "$name: %e s wall, %U s user, %M KiB peak RSS" -a -o "$OUT/logs/times.txt" \
    nice -n "$NICE" "$@" > "$OUT/logs/$name.log" 2>&1 || { echo "run.sh: $name failed, see $OUT/logs/$name.log" >&2; return 1; }
}

# 1. The network, scratch and pretrained (Python), beside 2. the old model (dualtune).
[ -f "$OUT/init/pretrained.pt" ] || run pretrain "$PY" "$HERE/pretrain_resnet18.py" "$OUT/init" \
  --epochs "$PRETRAIN_EPOCHS" --seed 0 --threads 1 &
p1=$!
grep -qs '"complete": true' "$OUT/old/meta.json" ||
  run old "$B" train -c "$ROOT/configs/glyphs/old_convnet_s.yml" data.root="$DATA" threads="$THREADS" \
    data.workers=1 optim.precision=auto output_dir="$OUT/old" &
p2=$!
both "$p1" "$p2"

# 3. Four new models, two at a time: {scratch, pretrained} x {bct, dual-tuning}.
train_new() {  # train_new METHOD INIT
  local name="$1_$2"
  grep -qs '"complete": true' "$OUT/$name/meta.json" && return 0
  run "$name" "$B" train -c "$ROOT/configs/examples/byom_glyphs/new_$1.yml" data.root="$DATA" \
    model.path="$OUT/init/$2.pt" old.path="$OUT/old" threads="$THREADS" data.workers=1 \
    optim.epochs="$EPOCHS" data.limit="$LIMIT" output_dir="$OUT/$name"
}
for m in bct dual_tuning; do
  train_new "$m" scratch & p1=$!
  train_new "$m" pretrained & p2=$!
  both "$p1" "$p2"
done

# 4. Test features (all 25,800 images of the 600 test syllables no model trained on), then
#    leave-one-out: old/old, new/new and new→old of the four upgrades.
NEW=(bct_scratch bct_pretrained dual_tuning_scratch dual_tuning_pretrained)
feats=() ups=()
for name in old "${NEW[@]}"; do
  [ -f "$OUT/features/$name/features.npy" ] || run "extract_$name" "$B" extract --model "$OUT/$name" \
    --precision auto --threads "$THREADS" --workers 1 --out "$OUT/features/$name"
  feats+=(--features "$name=$OUT/features/$name")
  [ "$name" = old ] || ups+=(--upgrade "$name:old")
done
[ -f "$OUT/report/report.json" ] || run eval "$B" eval "${feats[@]}" "${ups[@]}" --old old --threads 2 \
  --diagnose --seen-classes "$OUT/old" --out "$OUT/report"
"$PY" "$HERE/table.py" "$OUT/report" "${NEW[@]}" |
  tee "$OUT/table.md"
cat "$OUT/logs/times.txt" 2>/dev/null || true
