#!/usr/bin/env python3
"""Per-group diagnostics of demo runs, averaged over seeds, as one Markdown table.

    experiments/diagnostics_table.py [--per-seed] SCENARIO_DIR [TAG ...]

SCENARIO_DIR is demo_out/<scenario> (holding seed0/, seed1/, ...). For each TAG ("" for
the demo's own report/, else report_TAG/ of a --variant run) it reads every seed's
diagnostics.json (written by `dualtune demo` and `dualtune eval --diagnose`) and prints,
per new model and group (all classes / seen by the old model / unseen), the mean over
seeds of new→old mAP and top-1, new/new mAP, the old-space NN margin of new queries and
the alignment of new class means with old ones. --per-seed: one row per seed (all
classes), to read differences between models seed by seed. Standard library only.
"""
import glob
import json
import os
import sys


def main(argv):
    per_seed = "--per-seed" in argv
    argv = [a for a in argv if a != "--per-seed"]
    if len(argv) < 2:
        sys.exit(__doc__)
    root, tags = argv[1], argv[2:] or [""]
    rows = {}  # (model, group) -> list of per-seed value dicts
    for tag in tags:
        report = "report" + ("_" + tag if tag else "")
        paths = sorted(glob.glob(os.path.join(root, "seed*", report, "diagnostics.json")))
        if not paths:
            sys.exit(f"error: no {report}/diagnostics.json under {root}/seed*")
        for path in paths:
            with open(path) as f:
                doc = json.load(f)
            for up in doc["upgrades"]:
                for g in up["groups"]:
                    if per_seed and g["name"] != "all":
                        continue
                    group = os.path.basename(os.path.dirname(os.path.dirname(path))) if per_seed else g["name"]
                    rows.setdefault((up["new_model"], group), []).append(g["values"])
    print(f"| model | {'seed (all classes)' if per_seed else 'group'} | seeds | new→old mAP / top-1 | new/new mAP / top-1 | NN margin of new queries | alignment |")
    print("|---|---|---|---|---|---|---|")
    mean = lambda vs, f: sum(f(v) for v in vs) / len(vs)
    for (model, group), vs in rows.items():
        print(f"| {model} | {group} | {len(vs)} "
              f"| {100 * mean(vs, lambda v: v['ap']['new_old']):.1f} / {100 * mean(vs, lambda v: v['top1']['new_old']):.1f} "
              f"| {100 * mean(vs, lambda v: v['ap']['new_new']):.1f} / {100 * mean(vs, lambda v: v['top1']['new_new']):.1f} "
              f"| {mean(vs, lambda v: v['nn_margin']['new']):.3f} | {mean(vs, lambda v: v['alignment']):.3f} |")


if __name__ == "__main__":
    main(sys.argv)
