#!/usr/bin/env python3
"""Class-centroid queries: a reference point for new→old retrieval (analysis, not a model).

Writes a features directory (the layout `dualtune extract` writes) whose vector for item i
is the leave-one-out class centroid of the input's L2-normalised vectors:

    q_i = Σ_{j ≠ i, y_j = y_i} f_j/|f_j|  /  (n_{y_i} − 1)

Evaluated as a query model against the input as the gallery (`dualtune eval --features
old=IN --features centroid=OUT --old old`), the centroid→old cell is what a new model
would score if it mapped every query image exactly onto the mean old embedding of the
other gallery images of its class: the leave-one-out protocol drops item i from the
gallery, and q_i does not contain f_i. It measures how much of the gap between new→old
and new/new is left to a query-side model; it is not an upper bound on mAP.

Given a new model's features instead (with --components K, the K components eval
compares with an old model of width K), the centroid→old cell separates the two parts of
that gap: where the new model places each class's mean (centroids of its own embeddings)
and how far single images scatter around it (its new→old cell minus this one).

Usage: experiments/centroid_queries.py [--components K] IN_DIR OUT_DIR      (needs python3-numpy)
"""
import os
import shutil
import sys
import tempfile

import numpy as np


def centroid_queries(features, labels):
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
    num_classes = int(labels.max()) + 1
    sums = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, unit)
    counts = np.bincount(labels, minlength=num_classes)
    if counts[labels].min() < 2:
        raise ValueError("every class needs at least 2 items (a leave-one-out centroid of 1 item is empty)")
    return ((sums[labels] - unit) / (counts[labels] - 1)[:, None]).astype(np.float32)


def main(argv):
    args = argv[1:]
    components = 0
    if len(args) == 4 and args[0] == "--components" and args[1].isdigit() and int(args[1]) > 0:
        components, args = int(args[1]), args[2:]
    if len(args) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    src, dst = args
    features = np.load(os.path.join(src, "features.npy"))
    labels = np.load(os.path.join(src, "labels.npy"))
    if features.ndim != 2 or labels.shape != (features.shape[0],) or labels.min() < 0:
        sys.exit(f"{src}: expected features N x D and N labels >= 0, found {features.shape} and {labels.shape}")
    if components > features.shape[1]:
        sys.exit(f"{src}: --components {components} asked for, the features have {features.shape[1]}")
    if components:
        features = features[:, :components]
    try:
        queries = centroid_queries(features.astype(np.float64), labels)
    except ValueError as e:
        sys.exit(f"{src}: {e}")
    parent = os.path.dirname(os.path.abspath(dst))
    tmp = tempfile.mkdtemp(prefix=".centroid-", dir=parent)
    np.save(os.path.join(tmp, "features.npy"), queries)
    for name in ("labels.npy", "cams.npy", "classes.json", "paths.txt"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), tmp)
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.rename(tmp, dst)
    print(f"{dst}: {queries.shape[0]} leave-one-out class centroids of {src} ({queries.shape[1]} components)")


if __name__ == "__main__":
    main(sys.argv)
