#!/usr/bin/env bash
# What a forward transformation saves: upgrading a gallery through h from its
# stored old embeddings (`gallery transform`, no image, no backbone) against re-embedding
# it from its images (`gallery backfill`), on the same Fashion-MNIST test images, the same
# models and the same threads, measured one after the other in one run.
#   bench/transform_vs_backfill.sh OLD_RUN NEW_RUN H_RUN [ITEMS=10000] [THREADS=2]
# e.g. with the runs of experiments/transform_table.sh:
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
$B gallery rollout "$work/g" --model new --model-path "$new" --force >/dev/null  # timing only: no gate
cp -r "$work/g" "$work/g2"

now() { date +%s.%N; }
t0=$(now)
tr_out=$($B gallery transform "$work/g" --transform "$h" --threads "$threads" --quiet)
t1=$(now)
bf_out=$($B gallery backfill "$work/g2" --threads "$threads" --quiet)
t2=$(now)
echo "$tr_out"
echo "$bf_out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
n=$($B gallery status "$work/g" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"])')
# Each command's own rate (its work, without process start and model loading), as it prints it.
tr_rate=$(sed -n 's/.* (\([0-9.]*\) \/s).*/\1/p' <<<"$tr_out")
bf_rate=$(sed -n 's/.* (\([0-9.]*\) items\/s).*/\1/p' <<<"$bf_out")
python3 - "$n" "$t0" "$t1" "$t2" "$threads" "$tr_rate" "$bf_rate" <<'EOF'
import sys
n, t0, t1, t2, threads = int(sys.argv[1]), *map(float, sys.argv[2:5]), sys.argv[5]
tr_rate, bf_rate = float(sys.argv[6]), float(sys.argv[7])
tr, bf = t1 - t0, t2 - t1
print(f"\n{n} items, {threads} threads")
print("| upgrade of the gallery | its own rate, items/s | wall time of the command, s |")
print("|---|---|---|")
print(f"| gallery transform (h on stored old embeddings) | {tr_rate:,.0f} | {tr:.1f} |")
print(f"| gallery backfill (new model on the images) | {bf_rate:,.0f} | {bf:.1f} |")
print(f"| ratio transform / backfill | **{tr_rate / bf_rate:.1f}x** | {bf / tr:.1f}x |")
EOF
