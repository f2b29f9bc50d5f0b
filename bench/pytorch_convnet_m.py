#!/usr/bin/python3
"""PyTorch-from-Python side of bench/bench_vs_pytorch.cc (a benchmark, never a test).

Trains (or runs inference with) the same convnet-m as configs/fmnist/new_convnet_m.yml:
3 × [conv3x3 (no bias) → BatchNorm2d → ReLU] with 2×2 max-pools after the first two,
widths 64/128/256, global average pool → Linear(256, 128) → BatchNorm1d(128) (bias frozen
at 0) → bias-free classifier 128 → 10; label-smoothing cross-entropy (ε = 0.1), Adam
(lr 1e-3, L2 weight decay 5e-4, torch's default, not AdamW) with the cosine schedule.
The images are the real Fashion-MNIST training images, normalised with the config's
mean/std and held in memory (no augmentation: this side gets the pure step).

    pytorch_convnet_m.py train|extract --threads 2 --images 12800 --batch 128
                         [--channels-last] [--bf16] [--root /usr/share/datasets/fashion-mnist]

Prints one line:  img/s <value>
"""
import argparse
import contextlib
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx_images(root, n, split="train"):
    """The first n images of Fashion-MNIST's train or t10k split, normalised, and their labels."""
    with gzip.open(os.path.join(root, split + "-images-idx3-ubyte.gz"), "rb") as f:
        data = f.read()
    count, rows, cols = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    n = min(n, count)
    px = np.frombuffer(data, dtype=np.uint8, offset=16, count=n * rows * cols).reshape(n, 1, rows, cols)
    with gzip.open(os.path.join(root, split + "-labels-idx1-ubyte.gz"), "rb") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8, count=n)
    x = (px.astype(np.float32) / 255.0 - 0.2860) / 0.3530
    return torch.from_numpy(x.copy()), torch.from_numpy(labels.astype(np.int64))


class ConvNetM(nn.Module):
    def __init__(self, widths=(64, 128, 256), dim=128, classes=10):
        super().__init__()
        layers, cin = [], 1
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.backbone = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, dim)
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Parameter(torch.empty(classes, dim).normal_(0.0, 0.01))

    def forward(self, x):
        return self.neck(self.proj(self.backbone(x).mean((2, 3))))


def label_smoothing_ce(logits, labels, eps=0.1):
    logp = torch.log_softmax(logits, 1)
    nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1)
    return ((1.0 - eps) * nll - eps * logp.mean(1)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "extract"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=12800)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x_all, y_all = read_idx_images(a.root, a.images)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = ConvNetM().to(memory_format=fmt)
    batches = [(x_all[i:i + a.batch].contiguous(memory_format=fmt), y_all[i:i + a.batch])
               for i in range(0, len(x_all), a.batch)]
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.bf16 else contextlib.nullcontext

    seconds = train(model, batches, cast) if a.mode == "train" else extract(model, batches, cast)
    print("img/s %.1f" % (len(x_all) / seconds))
    return 0


def train(model, batches, cast, lr=1e-3, weight_decay=5e-4):
    """One epoch over `batches` with the trainer's recipe (Adam with L2 weight decay, cosine
    schedule over the epoch's steps, label-smoothing cross-entropy on e @ classifier^T).
    The first step runs once more before the clock starts (oneDNN primitive creation,
    TorchScript's first runs); returns the seconds of the timed epoch."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    model.train()
    total = len(batches)

    def step(it, x, y):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * it / total))
        with cast():
            e = model(x)
            loss = label_smoothing_ce(e @ model.classifier.t(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()  # the trainer reads every term (NaN check, log)

    step(0, *batches[0])  # warm-up: oneDNN primitive creation
    t0 = time.perf_counter()
    for it, (x, y) in enumerate(batches):
        step(it, x, y)
    return time.perf_counter() - t0


def extract(model, batches, cast):
    """No-grad inference over `batches` after one untimed batch; returns the seconds."""
    model.eval()
    with torch.no_grad():
        with cast():
            model(batches[0][0])
        t0 = time.perf_counter()
        for x, _ in batches:
            with cast():
                model(x).float().sum().item()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
