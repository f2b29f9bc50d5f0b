#!/usr/bin/env bash
# Backfill curves from a finished demo seed, from its stored features (no image is
# re-embedded): for each compatible new model, a gallery of the demo's test features (old
# imported as deployed, new imported for every item), calibrations and the uncertainty
# order fitted on N training images embedded by both models, then `gallery curve` over
# the merges and orders, the random order under each of SEEDS.
#   experiments/transition_curve.sh SEED_DIR DATA_DIR OUT [N=4000] [build/dualtune]
# SEED_DIR: demo_out/<scenario>/seedK (runs old/ and the new models, and features/).
# Writes OUT/curve_<model>_seed<s>/curve.{md,json} (one OUT per SEED_DIR). Defaults: the
# open-set benchmark.
# Environment (defaults in brackets):
#   FORMAT [image_folder]  TRAIN_SPLIT [train-new]  TEST_SPLIT [test]  MODELS [bct dual-tuning]
#   ORDERS [random,uncertainty,oracle]  MERGES [raw,rank,aligned,calibrated]
#   FRACTIONS [0,0.1,0.25,0.5,0.75,1]  SEEDS [1 2]
# The Fashion-MNIST demo's transition (its 10 steps, orders and merges) on another seed:
#   FORMAT=idx TRAIN_SPLIT=train MODELS=dual-tuning ORDERS=random,uncertainty \
#   MERGES=raw,rank,calibrated FRACTIONS=steps:10 SEEDS=0 \
#   experiments/transition_curve.sh OUT/default/seed1 /usr/share/datasets/fashion-mnist W 5000
set -euo pipefail
R=$(realpath "$1"); D=$(realpath "$2"); W=$3; N=${4:-4000}; B=$(realpath "${5:-build/dualtune}")
FORMAT=${FORMAT:-image_folder} TRAIN_SPLIT=${TRAIN_SPLIT:-train-new} TEST_SPLIT=${TEST_SPLIT:-test}
MODELS=${MODELS:-bct dual-tuning} ORDERS=${ORDERS:-random,uncertainty,oracle}
MERGES=${MERGES:-raw,rank,aligned,calibrated} FRACTIONS=${FRACTIONS:-0,0.1,0.25,0.5,0.75,1} SEEDS=${SEEDS:-1 2}
mkdir -p "$W"; cd "$W"
dim() { sed -n 's/.*"embedding_dim": *\([0-9]*\).*/\1/p' "$1/meta.json" | head -1; }
# Training features, kept per (seed directory, split, N): OUT can serve several seeds.
T=train/$(printf '%s\n' "$R" "$FORMAT" "$TRAIN_SPLIT" "$N" | md5sum | cut -c1-12)
for m in old $MODELS; do
  [ -f $T/$m/features.npy ] || "$B" extract --model "$R/$m" --format "$FORMAT" --root "$D" --split "$TRAIN_SPLIT" \
    --limit "$N" --out $T/$m --workers 1 --threads 1
done
for new in $MODELS; do
  G=$PWD/g_$new
  rm -rf "$G"
  "$B" gallery create "$G" --model old --dim "$(dim "$R/old")"
  "$B" gallery import "$G" --model old --features "$R/features/old" --format "$FORMAT" --root "$D" --split "$TEST_SPLIT"
  # The gate is measured on the test features; --force: the curve of an incompatible model is wanted too.
  "$B" gallery rollout "$G" --model new --dim "$(dim "$R/$new")" --probe-features "$R/features/old" "$R/features/$new" --force
  "$B" gallery import "$G" --model new --features "$R/features/$new" --format "$FORMAT" --root "$D" --split "$TEST_SPLIT"
  "$B" gallery calibrate "$G" --old-features $T/old --new-features $T/$new
  for seed in $SEEDS; do
    "$B" gallery curve "$G" --orders "$ORDERS" --merges "$MERGES" --seed $seed \
      --fractions "$FRACTIONS" --out "$PWD/curve_${new}_seed$seed" --threads 1
  done
done
