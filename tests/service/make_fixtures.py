#!/usr/bin/python3
# Service-test fixtures: two tiny seeded CNNs (ONNX + labels), a server config and test images.
"""Writes into OUT: tiny.onnx / tiny2.onnx (+ .labels.txt), camd.json (a config serving both),
and images: small.png, small.jpg, rgba.png, gray.png, big.png (wider than the tests' image limit),
corrupt.png (PNG signature, garbage after), text.txt. Exits 77 (skip) without torch.

Usage: /usr/bin/python3 tests/service/make_fixtures.py OUT
"""
import io
import json
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    from PIL import Image
except ImportError as e:
    print(f"make_fixtures: skipped, {e}", file=sys.stderr)
    sys.exit(77)


class Tiny(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def export(path, seed, classes, softmax):
    torch.manual_seed(seed)
    m = Tiny(classes).eval()
    if softmax:  # a graph that ends in its own Softmax (camd reports its probabilities as they are)
        m = nn.Sequential(m, nn.Softmax(1)).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.onnx.export(m, x, path, input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, seed, classes, softmax in (("tiny", 1, 10, False), ("tiny2", 2, 5, True)):
        onnx_path = os.path.join(out, name + ".onnx")
        if not os.path.exists(onnx_path + ".softmax" if softmax else onnx_path):
            export(onnx_path, seed, classes, softmax)
            if softmax:
                open(onnx_path + ".softmax", "w").close()  # marks the new export in a cached dir
        with open(os.path.join(out, name + ".labels.txt"), "w") as f:
            f.write("".join(f"{name}_label_{i}\n" for i in range(classes)))
    cfg = {
        "listen": "127.0.0.1",
        "port": 0,
        "workers": 2,
        "models": [
            {"name": "tiny", "path": "tiny.onnx", "labels": "tiny.labels.txt", "width": 32,
             "height": 32, "resize": "stretch"},
            {"name": "tiny2", "path": "tiny2.onnx", "labels": "tiny2.labels.txt", "width": 32,
             "height": 32, "resize": "stretch"},
        ],
    }
    with open(os.path.join(out, "camd.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    rng = np.random.default_rng(0)

    def save(img, fname, **kw):
        img.save(os.path.join(out, fname), **kw)

    for i in range(4):
        arr = rng.integers(0, 256, size=(40 + 8 * i, 48 + 4 * i, 3), dtype=np.uint8)
        save(Image.fromarray(arr), f"img{i}.png")
    arr = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    save(Image.fromarray(arr), "small.png")
    save(Image.fromarray(arr), "small.jpg", quality=90)
    save(Image.fromarray(rng.integers(0, 256, size=(30, 30, 4), dtype=np.uint8), "RGBA"), "rgba.png")
    save(Image.fromarray(rng.integers(0, 256, size=(30, 30), dtype=np.uint8), "L"), "gray.png")
    save(Image.new("RGB", (3000, 20), (10, 20, 30)), "big.png")
    with open(os.path.join(out, "corrupt.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
    with open(os.path.join(out, "text.txt"), "w") as f:
        f.write("this is not an image\n")
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    main()
