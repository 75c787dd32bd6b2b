#!/usr/bin/python3
# Exporter-variant fixture: one set of seeded torchvision weights exported in the shapes users have.
"""usage: make_variants.py OUT_DIR

Exports one seeded resnet18 (random weights; BatchNorm statistics randomised so BN is no
identity) with Debian's torch.onnx, in several shapes that must all explain like the plain file:

  plain.onnx          logits [N, 1000]                      (the reference shape)
  softmax.onnx        nn.Sequential(model, nn.Softmax(1))    (PyTorch users who kept the softmax)
  logsoftmax.onnx     ... nn.LogSoftmax(1)
  sigmoid.onnx        ... nn.Sigmoid()                        (multi-label heads)
  softmax_view.onnx   logits viewed as [N, 1000, 1, 1], Softmax(axis 1), Flatten (a softmax
                      followed by views, as Keras/TF conversions write it)
  softmax_part.onnx   Softmax over each half of the classes ([N, 2, 500], axis -1): NOT class
                      probabilities; camd must treat the output as plain values

plus image.png (224x224 RGB: the model input exactly, so no resize is involved) and
reference.json: PyTorch's float64 logits for the image and the class to explain.
Cached: nothing is rewritten when reference.json exists with this script's hash.
"""
import hashlib
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image

SIZE = 224


def script_hash():
    h = hashlib.sha256(open(os.path.abspath(__file__), "rb").read())
    h.update(("torch " + torch.__version__ + " torchvision " + torchvision.__version__).encode())
    return h.hexdigest()


def build():
    torch.manual_seed(1234)
    model = torchvision.models.resnet18(weights=None)
    gen = torch.Generator().manual_seed(1235)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_var.copy_(torch.empty(c).uniform_(0.5, 2.0, generator=gen))
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.weight.copy_(torch.empty(c).uniform_(0.75, 1.25, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    return model.eval()


class SoftmaxView(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)
        return torch.flatten(torch.softmax(y.reshape(y.shape[0], -1, 1, 1), dim=1), 1)


class SoftmaxPart(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)
        return torch.softmax(y.reshape(y.shape[0], 2, -1), dim=-1).reshape(y.shape[0], -1)


def export(module, path):
    dummy = torch.zeros(1, 3, SIZE, SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, dummy, path, opset_version=13, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ref_path = os.path.join(out, "reference.json")
    h = script_hash()
    if os.path.exists(ref_path) and json.load(open(ref_path)).get("script_hash") == h:
        print("exporter variants: cached")
        return
    model = build()
    variants = {
        "plain": model,
        "softmax": nn.Sequential(model, nn.Softmax(1)),
        "logsoftmax": nn.Sequential(model, nn.LogSoftmax(1)),
        "sigmoid": nn.Sequential(model, nn.Sigmoid()),
        "softmax_view": SoftmaxView(model),
        "softmax_part": SoftmaxPart(model),
    }
    for name, module in variants.items():
        export(module.eval(), os.path.join(out, name + ".onnx"))

    # The test image: chelsea, centre-cropped and resized to the model input with PIL.
    src = Image.open("/usr/lib/python3/dist-packages/skimage/data/chelsea.png").convert("RGB")
    w, h0 = src.size
    s = min(w, h0)
    img = src.crop(((w - s) // 2, (h0 - s) // 2, (w - s) // 2 + s, (h0 - s) // 2 + s))
    img = img.resize((SIZE, SIZE), Image.BILINEAR)
    img.save(os.path.join(out, "image.png"))
    # camd's tensor for this image with scale 1/255, mean 0, std 1 and no resize: pixels / 255.
    x = torch.from_numpy(np.asarray(img, dtype=np.float64) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = model.double()(x)[0]
    ref = {
        "script_hash": h,
        "logits": logits.tolist(),
        "top5": torch.topk(logits, 5).indices.tolist(),
        "variants": list(variants),
    }
    json.dump(ref, open(ref_path + ".tmp", "w"))
    os.replace(ref_path + ".tmp", ref_path)
    print(f"exporter variants: {len(variants)} files, top-1 class {ref['top5'][0]}")


if __name__ == "__main__":
    main()
