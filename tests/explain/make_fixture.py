#!/usr/bin/python3
# Explain-suite fixture: exports models with seeded random weights, writes photos, labels and PyTorch references.
"""Writes into DIR:

  resnet18.onnx          torchvision resnet18, seeded random weights, BatchNorm statistics
                         calibrated on a random batch then perturbed (never an identity)
  resnet18.labels.txt    1000 labels ("class_<i>", with a few real names, one containing a comma)
  tiny.onnx, tiny.labels.txt   a 5-class CNN (3x32x32) for the unit tests of labels / options
  chelsea.png, chelsea.jpg     skimage's chelsea (the JPEG written by PIL, quality 90)
  corrupt.jpg            the JPEG cut in half
  tiny.sha256            hashlib's SHA-256 of tiny.onnx (hex)
  stamp                  hash of this script: a rerun with the same script does nothing
  reference.json         per photo: PyTorch logits and the Grad-CAM map of layer4 for the top
                         class and for class 281, computed on the PIL image with torchvision
                         Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet)

Run with Debian's python: /usr/bin/python3 tests/explain/make_fixture.py DIR
"""

import hashlib
import json
import os
import sys

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torchvision
    import torchvision.transforms as T
    from PIL import Image
except ImportError as e:
    print(f"make_fixture: skipped, {e} (run with /usr/bin/python3)", file=sys.stderr)
    sys.exit(77)

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

REAL_LABELS = {281: "tabby, tabby cat", 282: "tiger cat", 285: "Egyptian cat", 134: "crane",
               517: "crane", 7: "Tabby"}


def perturb_bn(model, gen):
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 224, 224, generator=gen))
    model.eval()
    with torch.no_grad():
        for m in bns:
            c = m.num_features
            m.running_var.mul_(torch.empty(c).uniform_(0.7, 1.4, generator=gen))
            m.running_mean.add_(torch.randn(c, generator=gen) * 0.1 * m.running_var.sqrt())
            m.weight.copy_(torch.empty(c).uniform_(0.7, 1.3, generator=gen))
            m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def export(model, shape, path):
    dummy = torch.randn(*shape)
    with torch.no_grad():
        torch.onnx.export(model, dummy, path, opset_version=13, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(path)


def gap_input_name(path):
    """Name of the value feeding GlobalAveragePool: layer4's output in the ONNX graph."""
    m = onnx.load(path)
    for n in m.graph.node:
        if n.op_type == "GlobalAveragePool":
            return n.input[0]
    raise RuntimeError(f"{path}: no GlobalAveragePool")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def gradcam(model, x, cls):
    """PyTorch Grad-CAM of model.layer4 (ReLU, min-max normalised), at layer resolution."""
    acts = {}

    def hook(_m, _i, out):
        out.retain_grad()
        acts["a"] = out

    h = model.layer4.register_forward_hook(hook)
    logits = model(x)
    h.remove()
    model.zero_grad()
    logits[0, cls].backward()
    a, g = acts["a"][0].detach(), acts["a"].grad[0]
    w = g.mean(dim=(1, 2))
    cam = torch.relu((w[:, None, None] * a).sum(0))
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    return logits.detach()[0], cam


def main():
    if len(sys.argv) != 2:
        print("usage: make_fixture.py DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.abspath(__file__), "rb") as f:
        stamp = hashlib.sha256(f.read() + torch.__version__.encode()).hexdigest()
    stamp_path = os.path.join(out, "stamp")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print(f"make_fixture: {out} is up to date")
        return 0
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(4321)

    model = torchvision.models.resnet18(weights=None)
    perturb_bn(model, gen)
    model.eval()
    export(model, (1, 3, 224, 224), os.path.join(out, "resnet18.onnx"))
    layer = gap_input_name(os.path.join(out, "resnet18.onnx"))
    with open(os.path.join(out, "resnet18.labels.txt"), "w") as f:
        for i in range(1000):
            f.write(REAL_LABELS.get(i, f"class_{i}") + "\n")
    with open(os.path.join(out, "resnet18.short.labels.txt"), "w") as f:
        for i in range(999):
            f.write(f"class_{i}\n")

    tiny = Tiny().eval()
    export(tiny, (1, 3, 32, 32), os.path.join(out, "tiny.onnx"))
    with open(os.path.join(out, "tiny.labels.txt"), "w") as f:
        f.write("cat\nTabby, tabby cat\ndog\ncrane\nCrane\n")

    img = Image.open(os.path.join(SKIMAGE_DATA, "chelsea.png")).convert("RGB")
    img.save(os.path.join(out, "chelsea.png"))
    img.save(os.path.join(out, "chelsea.jpg"), quality=90)
    with open(os.path.join(out, "chelsea.jpg"), "rb") as f:
        data = f.read()
    with open(os.path.join(out, "corrupt.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])

    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    ref = {"layer": layer, "photos": {}}
    for name in ("chelsea.png", "chelsea.jpg"):
        pil = Image.open(os.path.join(out, name)).convert("RGB")
        x = tf(pil).unsqueeze(0)
        logits, _ = gradcam(model, x, 0)
        top = int(logits.argmax())
        _, cam_top = gradcam(model, x, top)
        _, cam_281 = gradcam(model, x, 281)
        ref["photos"][name] = {
            "size": list(pil.size),
            "logits": logits.tolist(),
            "top": top,
            "gradcam_top": cam_top.flatten().tolist(),
            "gradcam_281": cam_281.flatten().tolist(),
            "map_size": [cam_top.shape[1], cam_top.shape[0]],
        }
    for name in ("tiny.onnx", "resnet18.onnx"):
        with open(os.path.join(out, name), "rb") as f:
            ref[name + ".sha256"] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(out, "tiny.sha256"), "w") as f:
        f.write(ref["tiny.onnx.sha256"])
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print(f"make_fixture: wrote {out} (layer {layer})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
