#!/usr/bin/python3
"""Embeds the images of an IDX file (MNIST layout) with a `dualtune export` directory
rebuilt in PyTorch by python/dualtune_models.py, and saves the N x D embeddings as a
float32 .npy. tests/torch/test_export.cc compares them with `dualtune extract`.

usage: export_features.py REPO_DIR EXPORT_DIR IMAGES_IDX OUT_NPY [--torchscript]

--torchscript: run EXPORT_DIR/model.pt (torch.jit.load; the export of a torchscript
backbone) instead of the rebuilt network.
"""
import os
import sys

import numpy as np
import torch


def read_idx_images(path):
    raw = open(path, "rb").read()
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 0x803:
        sys.exit("%s: expected IDX magic 0x803, found %#x" % (path, magic))
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows, cols)


def main():
    if len(sys.argv) not in (5, 6) or (len(sys.argv) == 6 and sys.argv[5] != "--torchscript"):
        sys.exit(__doc__)
    repo, export_dir, images, out = sys.argv[1:5]
    sys.path.insert(0, os.path.join(repo, "python"))
    import dualtune_models

    torch.set_num_threads(1)
    if len(sys.argv) == 6:
        model = torch.jit.load(os.path.join(export_dir, "model.pt"))
    else:
        model = dualtune_models.load(export_dir)
    x = dualtune_models.preprocess(read_idx_images(images), export_dir)
    with torch.no_grad():
        e = torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)])
    np.save(out, e.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
