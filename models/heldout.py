#!/usr/bin/python3
"""Writes the held-out test set of the default model as raw tensors, plus PyTorch's logits.

    /usr/bin/python3 models/heldout.py --out DIR [--n 500] [--config models/fashion_cam.json]

The scenes are test-split scenes 0..n-1 of models/scenes.py (official Fashion-MNIST t10k items,
seed scenes.TEST_SEED, never used in training). Each is preprocessed in numpy exactly as the
model's config describes (canvas == input size, so the "stretch" resize is the identity;
x = (pixel * scale - mean) / std per RGB channel, NCHW float32).

Files written to DIR (all raw little-endian, no header):
  inputs.f32    n x C x H x W float32   preprocessed images
  labels.i32    n int32                 true class
  boxes.i32     n x 4 int32             true object box (x0, y0, x1, y1), x1/y1 exclusive
  logits.f32    n x K float32           reference logits: the ONNX graph evaluated with PyTorch
  heldout.json  {"n", "channels", "height", "width", "classes", "torch_accuracy", ...}

The reference logits come from a small PyTorch interpreter of the ONNX file itself (every node
mapped to torch.nn.functional), so they test camd's reading of the very same file.
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402


def preprocess(images, cfg):
    """uint8 (N, H, W, 3) RGB -> float32 (N, 3, H, W) per the config (no resize needed)."""
    h, w = int(cfg["input_height"]), int(cfg["input_width"])
    assert images.shape[1:3] == (h, w), "scene size must equal the model input size"
    assert cfg.get("channel_order", "RGB") == "RGB"
    scale = np.float32(cfg.get("scale", 1.0 / 255.0))
    mean = np.asarray(cfg["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(cfg["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    x = images.transpose(0, 3, 1, 2).astype(np.float32) * scale
    return ((x - mean) / std).astype(np.float32)


def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_onnx_torch(path, x):
    """Evaluates the ONNX graph at `path` on numpy input x with PyTorch (float32, CPU)."""
    import onnx
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper
    torch.set_num_threads(1)
    m = onnx.load(path)
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    inputs = [i.name for i in m.graph.input if i.name not in env]
    env[inputs[0]] = torch.from_numpy(x)

    def pads2d(a, k):
        p = list(a.get("pads", [0] * (2 * k)))
        return p

    with torch.no_grad():
        for n in m.graph.node:
            a = _attrs(n)
            i = [env[name] if name else None for name in n.input]
            op = n.op_type
            if op == "Conv":
                p = pads2d(a, 2)
                xin = i[0]
                if p[0] != p[2] or p[1] != p[3]:
                    xin, pad = F.pad(xin, (p[1], p[3], p[0], p[2])), (0, 0)
                else:
                    pad = (p[0], p[1])
                y = F.conv2d(xin, i[1], i[2] if len(i) > 2 else None,
                             stride=tuple(a.get("strides", [1, 1])), padding=pad,
                             dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))
            elif op == "Relu":
                y = F.relu(i[0])
            elif op == "MaxPool":
                p = pads2d(a, 2)
                assert p[0] == p[2] and p[1] == p[3]
                y = F.max_pool2d(i[0], tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1])),
                                 (p[0], p[1]), tuple(a.get("dilations", [1, 1])),
                                 ceil_mode=bool(a.get("ceil_mode", 0)))
            elif op == "AveragePool":
                p = pads2d(a, 2)
                assert p[0] == p[2] and p[1] == p[3]
                y = F.avg_pool2d(i[0], tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1])),
                                 (p[0], p[1]), ceil_mode=bool(a.get("ceil_mode", 0)),
                                 count_include_pad=bool(a.get("count_include_pad", 0)))
            elif op == "GlobalAveragePool":
                y = i[0].mean(dim=(2, 3), keepdim=True)
            elif op == "Flatten":
                ax = a.get("axis", 1)
                y = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
            elif op == "Gemm":
                A, B = i[0], i[1]
                if a.get("transA", 0):
                    A = A.t()
                if a.get("transB", 0):
                    B = B.t()
                y = a.get("alpha", 1.0) * (A @ B)
                if len(i) > 2 and i[2] is not None:
                    y = y + a.get("beta", 1.0) * i[2]
            elif op == "BatchNormalization":
                y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
            elif op == "Add":
                y = i[0] + i[1]
            elif op == "Mul":
                y = i[0] * i[1]
            elif op == "Identity":
                y = i[0]
            else:
                raise NotImplementedError("heldout.py reference: ONNX op %s" % op)
            env[n.output[0]] = y
        return env[m.graph.output[0].name].numpy().astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write the default model's held-out test set.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--config", default=os.path.join(HERE, "fashion_cam.json"))
    ap.add_argument("--model", default=None, help="default: the config's onnx file")
    ap.add_argument("--no-reference", action="store_true", help="skip the PyTorch logits")
    args = ap.parse_args(argv)

    with open(args.config) as f:
        cfg = json.load(f)
    model = args.model or os.path.join(os.path.dirname(os.path.abspath(args.config)), cfg["onnx"])
    size = int(cfg["input_width"])
    imgs, labs, boxes = scenes.batch("test", args.n, start=args.start, size=size)
    x = preprocess(imgs, cfg)
    os.makedirs(args.out, exist_ok=True)
    x.astype("<f4").tofile(os.path.join(args.out, "inputs.f32"))
    labs.astype("<i4").tofile(os.path.join(args.out, "labels.i32"))
    boxes.astype("<i4").tofile(os.path.join(args.out, "boxes.i32"))

    meta = {"n": args.n, "channels": int(x.shape[1]), "height": int(x.shape[2]),
            "width": int(x.shape[3]), "split": "test", "seed": scenes.TEST_SEED,
            "first": args.start, "config": os.path.abspath(args.config),
            "model": os.path.abspath(model)}
    if not args.no_reference:
        logits = np.concatenate([run_onnx_torch(model, x[i:i + 50])
                                 for i in range(0, args.n, 50)])
        logits.astype("<f4").tofile(os.path.join(args.out, "logits.f32"))
        acc = float((logits.argmax(1) == labs).mean())
        meta["classes"] = int(logits.shape[1])
        meta["torch_accuracy"] = acc
        meta["max_abs_logit"] = float(np.abs(logits).max())
        print("heldout: %d scenes, PyTorch accuracy %.4f (config test_accuracy %s)"
              % (args.n, acc, cfg.get("test_accuracy")))
    with open(os.path.join(args.out, "heldout.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
