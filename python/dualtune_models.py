"""Rebuild a `dualtune export` directory as a PyTorch module.

    import dualtune_models
    model = dualtune_models.load("EXPORT_DIR")            # eval mode
    x = dualtune_models.preprocess(images, "EXPORT_DIR")  # uint8 N x H x W x C -> float N x C x H x W
    e = model(x)                                         # N x D, equal to `dualtune extract`

Needs torch and numpy only (OpenCV only to resize images of another size). The network
mirrors src/dualtune/models/ with the same parameter names, so the export's state dict
loads with strict=True:

    backbone   convnet-s / convnet-m: block{1,2,3} = conv3x3 (no bias), BatchNorm2d,
               2x2 max-pool (blocks 1, 2), ReLU; widths 32/64/128 or 64/128/256.
               resnet18 / resnet50: torchvision's ResNet up to layer4 (same names).
    pool       mean over H and W
    proj       Linear(backbone width, D), only when D differs from the width
    neck       BatchNorm1d(D) (its bias was frozen at 0 in training)
    classifier weight C x D (softmax: logits = e W^T; cosface/arcface: s cos(e, W_c))

forward(x) returns the raw embedding e (dualtune compares embeddings by cosine
similarity; it does not store them L2-normalised). model.logits(e) gives the classifier.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "dualtune-export"


def _conv(cin, cout, k, stride=1, pad=0):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False)


class ConvNet(nn.Module):
    def __init__(self, in_channels, widths):
        super().__init__()
        cin = in_channels
        for i, w in enumerate(widths):
            layers = [_conv(cin, w, 3, 1, 1), nn.BatchNorm2d(w)]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.ReLU(inplace=True))
            setattr(self, "block%d" % (i + 1), nn.Sequential(*layers))
            cin = w
        self.out_channels = widths[-1]

    def forward(self, x):
        return self.block3(self.block2(self.block1(x)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(_conv(cin, planes, 1, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride, 1)  # stride on the 3x3 ("ResNet v1.5")
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(_conv(cin, planes * 4, 1, stride), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, in_channels, block, layers):
        super().__init__()
        self.conv1 = _conv(in_channels, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for b in range(n):
                blocks.append(block(cin, planes, 2 if (b == 0 and i > 0) else 1))
                cin = planes * block.expansion
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.out_channels = cin

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def make_backbone(name, in_channels):
    if name == "convnet-s":
        return ConvNet(in_channels, (32, 64, 128))
    if name == "convnet-m":
        return ConvNet(in_channels, (64, 128, 256))
    if name == "resnet18":
        return ResNet(in_channels, BasicBlock, (2, 2, 2, 2))
    if name == "resnet50":
        return ResNet(in_channels, Bottleneck, (3, 4, 6, 3))
    raise ValueError("unknown backbone %r: expected convnet-s, convnet-m, resnet18 or resnet50" % name)


class Classifier(nn.Module):
    def __init__(self, dim, num_classes, normalized, scale):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_classes, dim))
        self.normalized, self.scale = normalized, scale

    def forward(self, e):
        if self.normalized:
            return self.scale * F.normalize(e, dim=1) @ F.normalize(self.weight, dim=1).t()
        return e @ self.weight.t()


class EmbeddingModel(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.backbone = make_backbone(arch["backbone"], arch["in_channels"])
        width, dim = self.backbone.out_channels, arch["embedding_dim"]
        self.proj = nn.Linear(width, dim) if dim != width else None
        self.neck = nn.BatchNorm1d(dim)
        c = arch["classifier"]
        self.classifier = Classifier(dim, arch["num_classes"], c["normalized"], c["scale"])

    def forward(self, x):
        f = self.backbone(x).mean((2, 3))
        if self.proj is not None:
            f = self.proj(f)
        return self.neck(f)

    def logits(self, e):
        return self.classifier(e)


def read_description(export_dir):
    with open(os.path.join(export_dir, "model.json")) as f:
        d = json.load(f)
    if d.get("format") != FORMAT or d.get("format_version") != 1:
        raise ValueError("%s/model.json: expected format %r version 1, found %r version %r"
                         % (export_dir, FORMAT, d.get("format"), d.get("format_version")))
    return d


def load(export_dir):
    """The exported network in eval mode, its weights loaded with strict=True."""
    d = read_description(export_dir)
    model = EmbeddingModel(d["architecture"])
    state = torch.load(os.path.join(export_dir, d["files"]["state_dict"]), map_location="cpu")
    model.load_state_dict(state, strict=True)
    return model.eval()


def preprocess(images, export_dir_or_description):
    """uint8 images, N x H x W x C (C = 1 or 3, RGB) or N x H x W, -> float32 N x C x H x W
    as dualtune's test-time transform makes them: gray <-> RGB when the channels differ
    (OpenCV's formulas), resize when the size differs (needs OpenCV, as dualtune uses it),
    then per channel
    x / 255 normalised as x * (1 / (255 std)) - mean / std in float32, dualtune's formula."""
    d = export_dir_or_description
    if isinstance(d, str):
        d = read_description(d)
    inp = d["input"]
    h, w, c = inp["height"], inp["width"], inp["channels"]
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise ValueError("preprocess: expected uint8 images, found dtype %s" % a.dtype)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[3] not in (1, 3):
        raise ValueError("preprocess: expected N x H x W x {1,3} images, found shape %s" % (a.shape,))
    if a.shape[3] == 1 and c == 3:  # OpenCV's GRAY2RGB: the gray value in every channel
        a = np.repeat(a, 3, axis=3)
    elif a.shape[3] == 3 and c == 1:  # OpenCV's RGB2GRAY on uint8, in its 14-bit fixed point
        r, g, b = (a[..., k].astype(np.int32) for k in range(3))
        a = ((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14).astype(np.uint8)[..., None]
    if a.shape[1:3] != (h, w):
        import cv2  # only for images that are not already at the model's size
        out = []
        for im in a:
            if im.shape[:2] != (h, w):
                shrink = im.shape[0] > h or im.shape[1] > w
                im = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            out.append(im.reshape(h, w, c))
        a = np.stack(out)
    mean = np.asarray(inp["mean"], dtype=np.float64).astype(np.float32)
    std = np.asarray(inp["std"], dtype=np.float64).astype(np.float32)
    scale = np.float32(1.0) / (np.float32(255.0) * std)
    shift = mean / std
    x = a.astype(np.float32) * scale - shift
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 2:
        sys.exit("usage: python3 dualtune_models.py EXPORT_DIR  (loads it and prints its description)")
    m = load(sys.argv[1])
    d = read_description(sys.argv[1])
    inp = d["input"]
    e = m(torch.zeros(1, inp["channels"], inp["height"], inp["width"]))
    print(json.dumps(d["architecture"], indent=2))
    print("input %dx%dx%d, embedding %s" % (inp["channels"], inp["height"], inp["width"], tuple(e.shape)))
