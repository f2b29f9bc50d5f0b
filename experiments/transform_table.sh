#!/usr/bin/env bash
# The forward-transformation table of docs/RESULTS.md. Per seed: the demo's models (old
# convnet-s on classes 0-4; independent, bct and dual-tuning convnet-m on all 10), h
# fitted from old into the independent model's space and into the dual-tuning model's
# space, the old test features mapped through each h, and one eval judging
# new→old (bct, dual-tuning, independent), new→h(old) (independent, dual-tuning).
#   [DUALTUNE=binary] [H_SET="transform.width=512 ..."] experiments/transform_table.sh \
#       [OUT=transform_out] [SEEDS=2] [demo options, e.g. --quick --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-transform_out}; seeds=${2:-2}; shift $(( $# > 2 ? 2 : $# )) || true
B=${DUALTUNE:-./build/dualtune}
$B demo --out "$out" --seeds "$seeds" --methods independent,bct,dual-tuning "$@"
for ((s = 0; s < seeds; s++)); do
  d=$out/default/seed$s
  for m in independent dual-tuning; do
    # shellcheck disable=SC2086  # H_SET holds several overrides
    $B transform train --old "$d/old" --new "$d/$m" -c configs/fmnist/transform.yml output_dir="$d/h_$m" \
      seed="$s" ${H_SET:-}
    $B transform apply --transform "$d/h_$m" --features "$d/features/old" --out "$d/features/h_$m"
  done
  f=$d/features
  $B eval --features old="$f/old" --features independent="$f/independent" --features bct="$f/bct" \
    --features dual-tuning="$f/dual-tuning" --features "h-old=$f/h_independent" \
    --features "h-dt-old=$f/h_dual-tuning" --upgrade bct:old --upgrade dual-tuning:old --upgrade independent:old \
    --upgrade "independent:old:h-old" --upgrade "dual-tuning:old:h-dt-old" --seed "$s" --out "$d/report_transform"
  echo "=== seed $s: $d/report_transform/report.md"
done
