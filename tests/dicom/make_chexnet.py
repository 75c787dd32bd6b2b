#!/usr/bin/python3
# DICOM service fixtures: a CheXNet-style multi-label model and its PyTorch references.
"""Writes into OUT:

  chexnet.onnx        torchvision DenseNet-121, classifier Linear(1024, 14) + Sigmoid, seeded random
                      weights (BatchNorm statistics randomised so every layer matters), 224 x 224
  chexnet.labels.txt  the 14 CheXNet findings
  gray.onnx           a small 1-channel CNN (64 x 64), for "gray images feed 1-channel models"
  camd.json           a server config serving both (dicom_uid_root set)
  refs.json           per source file (pydicom's CT_small.dcm, MR_small.dcm): the 8-bit frame
                      (pydicom's Modality LUT + the DICOM linear VOI function written here, or the
                      min..max window when the file has none), chexnet's probabilities and
                      Grad-CAM maps (PyTorch autograd at the last ReLU, for TARGETS), the gray
                      model's probabilities
  ct_hu16.png         CT_small's HU + 1024 as a 16-bit gray PNG (window option on PNG input)

The references never call camd. Usage: /usr/bin/python3 make_chexnet.py OUT
"""
import json
import os
import sys
import warnings

import numpy as np
import pydicom
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixel_data_handlers.util import apply_modality_lut

warnings.simplefilter("ignore")
LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
          "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
          "Hernia"]
TARGETS = ["Effusion", "Pneumonia", "Mass"]
SOURCES = ["CT_small.dcm", "MR_small.dcm"]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SIZE = 224
GRAY_SIZE = 64
UID_ROOT = "1.3.6.1.4.1.99999.7"  # a test root (digits and dots); real deployments use their own


def chexnet():
    torch.manual_seed(14)
    m = torchvision.models.densenet121(weights=None, num_classes=14)
    g = torch.Generator().manual_seed(15)
    for mod in m.modules():  # randomised statistics: BatchNorm is not the identity in eval mode
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            mod.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return m.eval()


class Gray(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def display_frame(ds):
    """8-bit display levels of frame 0: Modality LUT (pydicom), then the file's first window with
    the DICOM LINEAR function (PS3.3 C.11.2.1.2.1), or min..max (LINEAR_EXACT) without one;
    MONOCHROME1 inverted. round(255 * t) with t in [0, 1]."""
    v = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "WindowCenter" in ds:
        c = float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter)
        w = float(ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth)
        t = ((v - (c - 0.5)) / (w - 1) + 0.5).clip(0, 1)
    else:
        lo, hi = v.min(), v.max()
        t = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    out = np.floor(255 * t + 0.5)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 255 - out
    return out.astype(np.uint8)


def tensor(gray8, size, channels, mean, std):
    """PIL (torchvision's path): gray replicated to RGB, Resize((size, size)) BILINEAR, ToTensor,
    Normalize."""
    img = Image.fromarray(gray8, "L").convert("RGB" if channels == 3 else "L")
    img = img.resize((size, size), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    if channels == 1:
        a = a[:, :, None]
    a = (a - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]


def gradcam(m, x, classes):
    """Grad-CAM at the ReLU after m.features (the last spatial activation), gradients of the
    logits fed into the Sigmoid; ReLU, then min-max per map. Returns (logits, {class: map})."""
    a = F.relu(m.features(x))
    a.retain_grad()
    logits = m.classifier(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))
    maps = {}
    for c in classes:
        a.grad = None
        logits[0, c].backward(retain_graph=True)
        w = a.grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((w * a).sum(1))[0].double()
        lo, hi = cam.min(), cam.max()
        cam = (cam - lo) / (hi - lo) if hi > lo else cam * 0
        maps[c] = cam.tolist()
    return logits.detach()[0].double(), maps


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # cached: the outputs of this very script (its hash) are reused
    import hashlib
    stamp = os.path.join(out, "stamp.txt")
    digest = hashlib.sha256(open(__file__, "rb").read()).hexdigest()
    if os.path.exists(stamp) and open(stamp).read() == digest:
        print(f"make_chexnet: {out} is up to date")
        return
    torch.set_num_threads(2)
    m = chexnet()
    onnx_path = os.path.join(out, "chexnet.onnx")
    torch.onnx.export(nn.Sequential(m, nn.Sigmoid()).eval(), torch.randn(1, 3, SIZE, SIZE),
                      onnx_path, input_names=["image"], output_names=["findings"],
                      opset_version=13, dynamic_axes={"image": {0: "N"}, "findings": {0: "N"}})
    with open(os.path.join(out, "chexnet.labels.txt"), "w") as f:
        f.write("".join(label + "\n" for label in LABELS))
    torch.manual_seed(3)
    g = Gray().eval()
    torch.onnx.export(g, torch.randn(1, 1, GRAY_SIZE, GRAY_SIZE), os.path.join(out, "gray.onnx"),
                      input_names=["image"], output_names=["logits"], opset_version=13)
    cfg = {"listen": "127.0.0.1", "port": 0, "workers": 1, "dicom_uid_root": UID_ROOT,
           "models": [
               {"name": "chexnet", "path": "chexnet.onnx", "labels": "chexnet.labels.txt",
                "width": SIZE, "height": SIZE, "resize": "stretch", "mean": MEAN, "std": STD},
               {"name": "gray", "path": "gray.onnx", "width": GRAY_SIZE, "height": GRAY_SIZE,
                "resize": "stretch", "channels": 1, "mean": [0.5], "std": [0.25]}]}
    with open(os.path.join(out, "camd.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    refs = {}
    for name in SOURCES:
        path = get_testdata_file(name)
        ds = pydicom.dcmread(path)
        gray8 = display_frame(ds)
        with torch.no_grad():
            gl = g(tensor(gray8, GRAY_SIZE, 1, [0.5], [0.25]))[0].double()
        logits, maps = gradcam(m, tensor(gray8, SIZE, 3, MEAN, STD), range(14))
        probs = torch.sigmoid(logits)
        refs[name] = {
            "path": path,
            "frame8": gray8.tolist(),
            "logits": logits.tolist(),
            "probabilities": probs.tolist(),
            "gradcam": {LABELS[c]: maps[c] for c in range(14)},
            "gray_probabilities": torch.softmax(gl, 0).tolist(),
        }
        print(f"make_chexnet: {name}: probabilities {np.round(probs.numpy(), 4).tolist()}")
    # CT_small's values as a 16-bit gray PNG (HU + 1024)
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu = apply_modality_lut(ct.pixel_array, ct).astype(np.int64) + 1024
    Image.fromarray(hu.clip(0, 65535).astype(np.uint16)).save(os.path.join(out, "ct_hu16.png"))
    refs["ct_hu16.png"] = {"values": hu.tolist()}
    with open(os.path.join(out, "refs.json"), "w") as f:
        json.dump(refs, f)
    with open(stamp, "w") as f:
        f.write(digest)


if __name__ == "__main__":
    main()
