#!/usr/bin/env bash
# Backfill curves of the open-set benchmark from a finished `demo --scenario openset` seed:
# for each compatible new model (bct, dual-tuning), a gallery of the demo's test features
# (old imported as deployed, new imported for every item), calibrations and the
# uncertainty order fitted on N train-new images embedded by both models, then
# `gallery curve` over 4 merges x 3 orders, with the random order under seeds 1 and 2.
#   scripts/openset_curve.sh SEED_DIR DATA_DIR OUT [N=4000] [build/dualtune]
# SEED_DIR: demo_out/openset/seed0 (runs old/, bct/, dual-tuning/ and features/);
# DATA_DIR: the generated glyph benchmark. Writes OUT/curve_<model>_seed<s>/curve.{md,json}.
set -euo pipefail
R=$(realpath "$1"); D=$(realpath "$2"); W=$3; N=${4:-4000}; B=$(realpath "${5:-build/dualtune}")
mkdir -p "$W"; cd "$W"
dim() { sed -n 's/.*"embedding_dim": *\([0-9]*\).*/\1/p' "$1/meta.json" | head -1; }
for m in old bct dual-tuning; do
  [ -f train/$m/features.npy ] || "$B" extract --model "$R/$m" --format image_folder --root "$D" --split train-new \
    --limit "$N" --out train/$m --workers 1 --threads 1
done
for new in bct dual-tuning; do
  G=$PWD/g_$new
  rm -rf "$G"
  "$B" gallery create "$G" --model old --dim "$(dim "$R/old")"
  "$B" gallery import "$G" --model old --features "$R/features/old" --format image_folder --root "$D" --split test
  "$B" gallery rollout "$G" --model new --dim "$(dim "$R/$new")"
  "$B" gallery import "$G" --model new --features "$R/features/$new" --format image_folder --root "$D" --split test
  "$B" gallery calibrate "$G" --old-features train/old --new-features train/$new
  for seed in 1 2; do
    "$B" gallery curve "$G" --orders random,uncertainty,oracle --merges raw,rank,aligned,calibrated --seed $seed \
      --fractions 0,0.1,0.25,0.5,0.75,1 --out "$PWD/curve_${new}_seed$seed" --threads 1
  done
done
