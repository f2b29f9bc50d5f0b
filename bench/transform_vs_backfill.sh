#!/usr/bin/env bash
# What a forward transformation saves (issue 14): upgrading a gallery through h from its
# stored old embeddings (`gallery transform`, no image, no backbone) against re-embedding
# it from its images (`gallery backfill`), on the same Fashion-MNIST test images, the same
# models and the same threads, measured one after the other in one run.
#   bench/transform_vs_backfill.sh OLD_RUN NEW_RUN H_RUN [ITEMS=10000] [THREADS=2]
# e.g. with the runs of scripts/transform_table.sh:
#   d=transform_out/default/seed0
#   bench/transform_vs_backfill.sh $d/old $d/independent $d/h_independent
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 h=$3 items=${4:-10000} threads=${5:-2}
B=${DUALTUNE:-./build/dualtune}
FM=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
$B gallery create "$work/g" --model old --model-path "$old" >/dev/null
$B gallery add "$work/g" --format idx --root $FM --split test --limit "$items" --threads "$threads" >/dev/null 2>&1
$B gallery rollout "$work/g" --model new --model-path "$new" >/dev/null
cp -r "$work/g" "$work/g2"

now() { date +%s.%N; }
t0=$(now)
$B gallery transform "$work/g" --transform "$h" --threads "$threads" --quiet
t1=$(now)
$B gallery backfill "$work/g2" --threads "$threads" --quiet
t2=$(now)
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
n=$($B gallery status "$work/g" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"])')
python3 - "$n" "$t0" "$t1" "$t2" "$threads" <<'EOF'
import sys
n, t0, t1, t2, threads = int(sys.argv[1]), *map(float, sys.argv[2:5]), sys.argv[5]
tr, bf = t1 - t0, t2 - t1
print(f"\n{n} items, {threads} threads; wall time of each command (model loading included)")
print("| upgrade of the gallery | seconds | items/s |")
print("|---|---|---|")
print(f"| gallery transform (h on stored old embeddings) | {tr:.1f} | {n / tr:,.0f} |")
print(f"| gallery backfill (new model on the images) | {bf:.1f} | {n / bf:,.0f} |")
print(f"| ratio transform / backfill | | **{bf / tr:.1f}x** |")
EOF
