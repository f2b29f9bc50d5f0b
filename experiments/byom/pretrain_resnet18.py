#!/usr/bin/python3
"""A ResNet-18 for 32 x 32 gray images, pretrained in Python on Fashion-MNIST, saved as
the TorchScript backbone dualtune fine-tunes (`model.backbone: torchscript`,
docs/YOUR_MODEL.md). Fashion-MNIST stands in for ImageNet: another domain (clothes,
light on black) than the glyph benchmark it is fine-tuned on (syllables, dark on white).

Usage: pretrain_resnet18.py OUT_DIR [--epochs 2] [--seed 0] [--threads 2]
                            [--data /usr/share/datasets/fashion-mnist] [--limit N]
       (Debian's python3-torch and numpy; CPU)

Writes to OUT_DIR (each file through a temporary name and a rename):
  scratch.pt      torch.jit.script(backbone) with its random initialisation (torch.manual_seed(seed))
  pretrained.pt   the same network after pretraining (the linear head used for it dropped)
  pretrain.json   settings, per-epoch training loss and accuracy, test accuracy, seconds

The network: torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2], 64-128-256-512 channels,
its module names and initialisation) with 1 input channel: conv1 7 x 7 stride 2 and the
3 x 3 stride-2 max-pool, so a 32 x 32 image reaches layer1 at 8 x 8 and layer4 at 1 x 1.
That is the architecture of dualtune's built-in `model.backbone: resnet18` (the arch
scenario's new model), here written in Python. The stem usual for 32 px (CIFAR's 3 x 3
stride 1, no max-pool, layer1 at 32 x 32) costs 10x more per image: 54 against 538
images/s per training step on one thread, bf16, batch 128, measured on this project's
machine with a 3 x 3 stride-2 conv before the max-pool (the 7 x 7 conv adds under 2 %
of the multiply-adds); 3 x 3 stride 2 without the max-pool: 207. That does not fit a
shared 2-core machine. forward(x) returns the global average pool of layer4, B x 512:
a valid dualtune backbone, which adds its own projection, BatchNorm neck and classifier.

Pretraining: the 60,000 training images, 28 x 28 padded with 2 black pixels to 32 x 32
(black is Fashion-MNIST's background), random horizontal flip and a random shift of up
to 2 px (pad 2 more per side, crop 32), normalised with Fashion-MNIST's own statistics
(mean 0.2860, std 0.3530 of the 28 x 28 training pixels; the glyph benchmark is normalised with its
own, 0.7877 / 0.3361, when dualtune fine-tunes: each domain is fed zero-mean,
unit-variance, as an ImageNet model is pretrained with ImageNet's statistics). A linear
classifier 512 -> 10 on top, cross-entropy, SGD (momentum 0.9, Nesterov, weight decay
5e-4 on weights, none on BatchNorm and biases), lr 0.1 (batch 128) with a cosine decay
per step to 0 over all epochs after 100 warm-up steps, bf16 autocast on the forward
(as dualtune's optim.precision: bf16). Test accuracy on the 10,000 test images (padded,
no augmentation, eval mode).

Deterministic given --seed and --threads: the initialisation, the shuffling and the
augmentation draw from generators seeded with --seed, so two runs save equal tensors
(the files' bytes may differ: TorchScript numbers its generated type names in no fixed
order).
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


class BasicBlock(nn.Module):  # torchvision.models.resnet.BasicBlock
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet18Gray32(nn.Module):
    """ResNet-18 for 1 x 32 x 32 input; forward -> B x 512 pooled features."""

    def __init__(self):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 1)
        self.layer2 = self._make_layer(128, 2)
        self.layer3 = self._make_layer(256, 2)
        self.layer4 = self._make_layer(512, 2)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzip or not): big-endian magic (0, 0, type 0x08 = uint8, ndim), dims, data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: expected an IDX file of uint8 (magic 0x0000 08 nn), found {raw[:4].hex()}")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        sys.exit(f"{path}: header says {dims} = {int(np.prod(dims))} values, file holds {data.size}")
    return data.reshape(dims)


def find_idx(root: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(root, name)):
            return os.path.join(root, name)
    sys.exit(f"expected {stem}[.gz] in {root} (Fashion-MNIST's IDX files), found none")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x 28 x 28 -> float N x 1 x 32 x 32, padded with background 0, normalised."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = F.pad(x, (2, 2, 2, 2), value=0.0)
    return (x - FMNIST_MEAN) / FMNIST_STD


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a shift of up to 2 px (pad 2 more with the background, crop 32)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    bg = (0.0 - FMNIST_MEAN) / FMNIST_STD
    padded = F.pad(x, (2, 2, 2, 2), value=bg)
    dy = torch.randint(0, 5, (n,), generator=gen)
    dx = torch.randint(0, 5, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
    return out


def save_scripted(net: nn.Module, path: str):
    """torch.jit.script(net) in training mode (dualtune switches modes), temp file + rename."""
    net.train()
    tmp = path + ".tmp"
    torch.jit.script(net).save(tmp)
    os.replace(tmp, path)


def evaluate(backbone, head, x, y, batch=500) -> float:
    backbone.eval()
    head.eval()
    correct = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, x.shape[0], batch):
            logits = head(backbone(x[i:i + batch]).float())
            correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (a quick check)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)

    xtr = read_idx(find_idx(a.data, "train-images-idx3-ubyte"))
    ytr = read_idx(find_idx(a.data, "train-labels-idx1-ubyte"))
    xte = read_idx(find_idx(a.data, "t10k-images-idx3-ubyte"))
    yte = read_idx(find_idx(a.data, "t10k-labels-idx1-ubyte"))
    if a.limit > 0:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    xtr, xte = to_tensor(xtr), to_tensor(xte)
    ytr, yte = torch.from_numpy(ytr.astype(np.int64)), torch.from_numpy(yte.astype(np.int64))

    torch.manual_seed(a.seed)
    backbone = ResNet18Gray32()
    head = nn.Linear(512, 10)  # pretraining only; not saved
    save_scripted(backbone, os.path.join(a.out, "scratch.pt"))

    decay = [p for n, p in backbone.named_parameters() if p.ndim > 1] + [head.weight]
    no_decay = [p for n, p in backbone.named_parameters() if p.ndim <= 1] + [head.bias]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(xtr.shape[0] / a.batch)
    total, warmup = a.epochs * steps_per_epoch, min(100, a.epochs * steps_per_epoch // 10)

    def lr_at(step):  # linear warm-up, then cosine to 0
        if step < warmup:
            return a.lr * (step + 1) / warmup
        return 0.5 * a.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    gen = torch.Generator().manual_seed(a.seed)
    t0, step, log = time.time(), 0, []
    for epoch in range(a.epochs):
        backbone.train()
        head.train()
        order = torch.randperm(xtr.shape[0], generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, xtr.shape[0], a.batch):
            idx = order[i:i + a.batch]
            x, y = augment(xtr[idx], gen), ytr[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = head(backbone(x)).float()
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss) * y.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]
            if step % 50 == 0:
                print(f"epoch {epoch + 1} step {step}/{total} loss {loss_sum / seen:.4f} "
                      f"acc {correct / seen:.4f} ({time.time() - t0:.0f}s)", flush=True)
        log.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                    "seconds": time.time() - t0})
    test_acc = evaluate(backbone, head, xte, yte)
    seconds = time.time() - t0
    print(f"test accuracy {test_acc:.4f} after {a.epochs} epochs ({seconds:.0f}s)", flush=True)

    save_scripted(backbone, os.path.join(a.out, "pretrained.pt"))
    summary = {"network": "ResNet-18 (torchvision layout), 1 input channel, forward -> B x 512",
               "data": "Fashion-MNIST train (padded to 32x32), test for accuracy",
               "train_images": int(xtr.shape[0]), "mean": FMNIST_MEAN, "std": FMNIST_STD,
               "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "seed": a.seed, "threads": a.threads,
               "torch": torch.__version__, "epochs_log": log, "test_accuracy": test_acc, "seconds": seconds}
    tmp = os.path.join(a.out, "pretrain.json.tmp")
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp, os.path.join(a.out, "pretrain.json"))


if __name__ == "__main__":
    main()
