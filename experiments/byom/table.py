#!/usr/bin/python3
"""The table of docs/RESULTS.md's "Your own model" section from one `dualtune eval` report.

    experiments/byom/table.py REPORT_DIR [MODEL ...]

REPORT_DIR holds report.json (schema dualtune.compatibility_report/1) of an eval run with
the old model as --old; MODEL names the new models in row order (default: the report's
order). Prints one Markdown row per upgrade: old/old, new/new and new→old mAP / top-1,
new→old top-1 flips (queries right in old/old and wrong in new→old (−), and the
reverse (+)) and the mAP gain (M(new→old) − M(old/old)) / (M(new/new) − M(old/old)),
all in % with two decimals but the gain. The metrics in report.json are fractions. With
diagnostics.json beside it (`dualtune eval --diagnose`), also the alignment: the mean
cosine between each test class's mean new embedding and its mean old one (group "all").
Standard library only.
"""
import json
import os
import sys


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    path = os.path.join(argv[1], "report.json")
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != "dualtune.compatibility_report/1":
        sys.exit(f"{path}: expected schema dualtune.compatibility_report/1, found {doc.get('schema')!r}")
    ups = {u["new_model"]: u for u in doc["upgrades"]}
    order = argv[2:] or list(ups)
    missing = [m for m in order if m not in ups]
    if missing:
        sys.exit(f"{path}: no upgrade for {', '.join(missing)}; it has {', '.join(ups)}")
    align = {}
    diag = os.path.join(argv[1], "diagnostics.json")
    if os.path.exists(diag):
        with open(diag) as f:
            for u in json.load(f)["upgrades"]:
                align.update({u["new_model"]: g["values"]["alignment"] for g in u["groups"] if g["name"] == "all"})
    pct = lambda m: f"{100 * m['map']:.2f} / {100 * m['rank1']:.2f}"
    print("| new model | old/old mAP / top-1 | new/new mAP / top-1 | new→old mAP / top-1 | new→old flips − / + | gain (mAP) |" + (" alignment |" if align else ""))
    print("|---|---|---|---|---|---|" + ("---|" if align else ""))
    for name in order:
        u = ups[name]
        fl = u["flips"]["new_old"]
        print(f"| {name} | {pct(u['old_old'])} | {pct(u['new_new'])} | {pct(u['new_old'])} "
              f"| {100 * fl['negative']:.2f} / {100 * fl['positive']:.2f} | {u['verdict']['map']['gain']:.2f} |"
              + (f" {align[name]:.3f} |" if name in align else (" |" if align else "")))
    print(f"\n{doc['num_query']} queries, leave-one-out, old model: {doc['old_model']}")


if __name__ == "__main__":
    main(sys.argv)
