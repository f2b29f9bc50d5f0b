#!/usr/bin/env bash
# The Dual-Tuning ablation on the full demo protocol (Fashion-MNIST, old convnet-s on
# classes 0-4, new convnet-m on all 10, 3 epochs). Every variant reuses the demo's old
# model and writes OUT/default/summary_<variant>.md; docs/RESULTS.md collects them.
#   [THREADS=n] [DUALTUNE=binary] scripts/ablation.sh [OUT=demo_out] [SEED=0] [variant ...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo_out}; seed=${2:-0}; shift $(( $# > 2 ? 2 : $# )) || true
B=${DUALTUNE:-./build/dualtune}
declare -A V=(
  # The first defaults (triplet prototypes λp 0.1, L_n2o 0.2, L_o2n 0.2), each term off in turn
  [tri]="compat.proto_form=triplet compat.proto_weight=0.1 compat.n2o_weight=0.2 compat.o2n_weight=0.2"
  [tri-noproto]="compat.proto_form=triplet compat.proto_weight=0 compat.n2o_weight=0.2 compat.o2n_weight=0.2"
  [tri-non2o]="compat.proto_form=triplet compat.proto_weight=0.1 compat.n2o_weight=0 compat.o2n_weight=0.2"
  [tri-noo2n]="compat.proto_form=triplet compat.proto_weight=0.1 compat.n2o_weight=0.2 compat.o2n_weight=0"
  # softmax prototypes
  [sm1]="compat.proto_form=softmax compat.proto_weight=1 compat.n2o_weight=0.5 compat.o2n_weight=0.5"
  # L_n2o over the extended rescaled classifier
  [ext-sm1]="compat.proto_form=softmax compat.proto_weight=1 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0.5"
  [ext-sm025]="compat.proto_form=softmax compat.proto_weight=0.25 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0.5"
  [ext-sm0]="compat.proto_form=softmax compat.proto_weight=0 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0.5"
  [ext-tri01]="compat.proto_form=triplet compat.proto_weight=0.1 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0.5"
  [ext-sm025-noo2n]="compat.proto_form=softmax compat.proto_weight=0.25 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0"
  [ext-tri01-noo2n]="compat.proto_form=triplet compat.proto_weight=0.1 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0"
  # L_o2n off, around the winner ext-tri01-noo2n: prototype weight and form, a little
  # L_o2n, component mixing
  [ext-sm1-noo2n]="compat.proto_form=softmax compat.proto_weight=1 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0"
  [ext-tri03-noo2n]="compat.proto_form=triplet compat.proto_weight=0.3 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0"
  [ext-tri01-o2n01]="compat.proto_form=triplet compat.proto_weight=0.1 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0.1"
  [ext-tri01-noo2n-mix]="compat.proto_form=triplet compat.proto_weight=0.1 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0 compat.mix_weight=0.5"
  [ext-sm025-mix]="compat.proto_form=softmax compat.proto_weight=0.25 compat.n2o_extended=true compat.n2o_weight=1 compat.o2n_weight=0.5 compat.mix_weight=0.5"
)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(tri tri-noproto tri-non2o tri-noo2n sm1 ext-sm1 ext-sm025 ext-sm0 ext-tri01 ext-sm025-mix)
for v in "${variants[@]}"; do
  [ -n "${V[$v]+x}" ] || { echo "unknown variant $v (known: ${!V[*]})" >&2; exit 2; }
  # The ablation was measured with the triplet margin in absolute old-space units (m 0.3),
  # the default before compat.proto_margin_unit existed; pinned so that it reproduces.
  sets=(--set compat.proto_margin_unit=absolute --set compat.proto_margin=0.3)
  for kv in ${V[$v]}; do sets+=(--set "$kv"); done
  echo "=== variant $v: ${V[$v]}"
  $B demo --out "$out" --first-seed "$seed" --threads "${THREADS:-0}" --methods dual-tuning --variant "$v" "${sets[@]}"
done
