#!/usr/bin/python3
"""PyTorch-from-Python side of bench/bench_torchscript_vs_pytorch.cc (a benchmark, never a test).

    pytorch_torchscript.py write OUT.pt [--arch resnet-s|resnet18]
        writes the benchmark's network as TorchScript (torch.jit.script(net).save), built
        from torchvision's BasicBlock (tests/fixtures/torchvision/make_resnet18.py, rebuilt
        from torch.nn), for 1 x 28 x 28 Fashion-MNIST; forward(x) is the average-pooled
        features, what `model.backbone: torchscript` takes. Weights from torch.manual_seed(0).
          resnet-s   (default) stem + three BasicBlocks 32/64/128: B x 128 (class ResNetS)
          resnet18   torchvision's ResNet-18 with a 1-channel conv1 and no fc: B x 512
                     (about 4x convnet-m's training time on 2 cores)

    pytorch_torchscript.py train --module OUT.pt [--arch resnet-s|resnet18] [--as scripted|no-optimize|eager]
                           [--threads 2] [--images 12800] [--batch 128] [--shuffle]
                           [--test] [--channels-last] [--root /usr/share/datasets/fashion-mnist]
        trains the module for one epoch with the recipe of bench/pytorch_convnet_m.py
        (its train(): Adam, L2 weight decay, cosine schedule, label smoothing 0.1) under
        the head `dualtune train` puts on it with model.embedding_dim: 0 — a BatchNorm1d
        neck over the F features, its shift frozen at 0, and a bias-free classifier
        F -> 10 initialised N(0, 0.01). The module runs
          scripted     torch.jit.load(OUT.pt) as PyTorch runs it by default (profiling
                       executor with graph optimisation)
          no-optimize  the same with torch.jit.optimized_execution(False): op by op in the
                       interpreter, as dualtune runs it (models/torchscript_backbone.h)
          eager        the Python nn.Module (--arch) with the file's weights (plain eager PyTorch)
        --test: afterwards top-1 of the classifier on the 10,000 test images (eval mode).

Prints "img/s <value>" and with --test "test top-1 <percent>".
"""
import argparse
import contextlib
import os
import sys

import torch
import torch.nn as nn

from pytorch_convnet_m import read_idx_images, train  # bench/pytorch_convnet_m.py, same folder

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "torchvision"))
from make_resnet18 import BasicBlock, ResNet18  # noqa: E402


class ResNetS(nn.Module):
    """A small ResNet for 28 x 28: conv3x3 1->32, BN, ReLU, 2x2 max-pool (14 x 14), then
    torchvision BasicBlocks 32 (stride 1), 64 (stride 2, 7 x 7), 128 (stride 2, 4 x 4),
    global average pool: B x 128; about 10 M multiply-adds per image forward."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        blocks, cin = [], 32
        for w, s in ((32, 1), (64, 2), (128, 2)):
            down = None if s == 1 and cin == w else nn.Sequential(nn.Conv2d(cin, w, 1, s, bias=False), nn.BatchNorm2d(w))
            blocks.append(BasicBlock(cin, w, s, down))
            cin = w
        self.layers = nn.Sequential(*blocks)

    def forward(self, x):
        return self.layers(self.maxpool(self.relu(self.bn1(self.conv1(x))))).mean((2, 3))


def resnet_s():
    torch.manual_seed(0)
    return ResNetS()


def resnet18_fmnist():
    """torchvision's ResNet-18 with a 1-channel stem and the fc removed: B x 1 x 28 x 28 -> B x 512."""
    torch.manual_seed(0)
    net = ResNet18()
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    net.fc = nn.Identity()
    return net


ARCHS = {"resnet-s": (resnet_s, 128), "resnet18": (resnet18_fmnist, 512)}


class Head(nn.Module):
    """dualtune's EmbeddingModel without projection (model.embedding_dim: 0): neck(backbone(x))."""

    def __init__(self, backbone, width, classes=10):
        super().__init__()
        self.backbone = backbone
        self.neck = nn.BatchNorm1d(width)
        self.neck.bias.requires_grad_(False)  # BNNeck: shift frozen at zero
        self.classifier = nn.Parameter(torch.empty(classes, width).normal_(0.0, 0.01))

    def forward(self, x):
        f = self.backbone(x)
        return self.neck(f.mean((2, 3)) if f.dim() == 4 else f)


def top1(model, root, batch=256):
    x, y = read_idx_images(root, 10000, "t10k")
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int(((model(x[i:i + batch]) @ model.classifier.t()).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["write", "train"])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--module")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="resnet-s")
    ap.add_argument("--as", dest="run_as", choices=["scripted", "no-optimize", "eager"], default="scripted")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=12800)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--test", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    if a.mode == "write":
        if not a.out:
            sys.exit("write: expected the output file, e.g. pytorch_torchscript.py write resnet18_fmnist.pt")
        tmp = a.out + ".tmp"
        torch.jit.script(ARCHS[a.arch][0]()).save(tmp)
        os.replace(tmp, a.out)
        return 0
    if not a.module:
        sys.exit("train: expected --module FILE.pt (written by the write mode)")
    torch.set_num_threads(a.threads)
    scripted = torch.jit.load(a.module)
    if a.run_as == "eager":
        backbone = ARCHS[a.arch][0]()
        backbone.load_state_dict(scripted.state_dict())
    else:
        backbone = scripted
    torch.manual_seed(0)
    model = Head(backbone, ARCHS[a.arch][1])
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    x_all, y_all = read_idx_images(a.root, a.images)
    order = torch.randperm(len(x_all)) if a.shuffle else torch.arange(len(x_all))
    batches = [(x_all[order[i:i + a.batch]].contiguous(memory_format=fmt), y_all[order[i:i + a.batch]])
               for i in range(0, len(x_all), a.batch)]
    optimize = contextlib.nullcontext() if a.run_as != "no-optimize" else torch.jit.optimized_execution(False)
    with optimize:
        seconds = train(model, batches, contextlib.nullcontext)
        print("img/s %.1f" % (len(x_all) / seconds))
        if a.test:
            print("test top-1 %.2f" % top1(model, a.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
