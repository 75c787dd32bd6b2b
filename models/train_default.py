#!/usr/bin/python3
"""Trains camd's default model: a small CAM-ready CNN on cluttered Fashion-MNIST scenes.

    /usr/bin/python3 models/train_default.py            # writes models/fashion_cam.{onnx,json,labels.txt}

Architecture (PyTorch; BatchNorm is folded into the convolutions by the ONNX exporter):

    block1  Conv 5x5/2  3->32   + BN + ReLU   128 -> 64,  MaxPool 2 -> 32
    block2  Conv 3x3    32->64  + BN + ReLU   32,         MaxPool 2 -> 16
    block3  Conv 3x3    64->128 + BN + ReLU   16,         MaxPool 2 -> 8
    block4  Conv 3x3   128->256 + BN + ReLU   8x8   <- default CAM layer (its ReLU output)
    head    GlobalAveragePool -> Flatten -> Gemm(256 -> 10)   (CAM applies directly)

Everything is seeded and single-threaded (deterministic on one installation). See
models/README.md for the recorded results.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402

INPUT_SIZE = 128


class Block(nn.Sequential):
    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)


class FashionCAM(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("block1", Block(3, 32, 5, 2))
        self.features.add_module("pool1", nn.MaxPool2d(2))
        self.features.add_module("block2", Block(32, 64))
        self.features.add_module("pool2", nn.MaxPool2d(2))
        self.features.add_module("block3", Block(64, 128))
        self.features.add_module("pool3", nn.MaxPool2d(2))
        self.features.add_module("block4", Block(128, 256))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.gap(self.features(x))))


def log(t0, msg):
    print("[%7.1fs] %s" % (time.time() - t0, msg), flush=True)


def make_set(split, n, t0, cache=None):
    if cache:
        path = os.path.join(cache, "%s_%d_%d.npz" % (split, scenes.default_seed(split), n))
        if os.path.exists(path):
            d = np.load(path)
            log(t0, "loaded %s (%d scenes) from %s" % (split, n, path))
            return d["images"], d["labels"]
    imgs, labs, _ = scenes.batch(split, n, size=INPUT_SIZE)
    log(t0, "generated %d %s scenes" % (n, split))
    if cache:
        os.makedirs(cache, exist_ok=True)
        np.savez(path, images=imgs, labels=labs)
    return imgs, labs


def to_tensor(imgs, mean, std):
    """uint8 NHWC -> normalised float32 NCHW, exactly the camd preprocessing (scale 1/255)."""
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() * (1.0 / 255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def evaluate(model, imgs, labs, mean, std, bs=100):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(imgs), bs):
            out = model(to_tensor(imgs[i:i + bs], mean, std))
            correct += int((out.argmax(1).numpy() == labs[i:i + bs]).sum())
    return correct / len(imgs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=HERE, help="directory for fashion_cam.* (default models/)")
    ap.add_argument("--n-train", type=int, default=18000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-heldout", type=int, default=500,
                    help="test scenes 0..N-1 = the set heldout.py writes by default")
    ap.add_argument("--n-test", type=int, default=2000, help="larger test evaluation")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pct-start", type=float, default=0.15, help="OneCycle warm-up fraction")
    ap.add_argument("--cache", default=None, help="directory to cache generated scene sets")
    ap.add_argument("--stop-after", type=int, default=0, help="pilot runs: stop after N steps")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    c0 = time.process_time()

    xtr, ytr = make_set("train", args.n_train, t0, args.cache)
    xva, yva = make_set("val", args.n_val, t0, args.cache)

    # Per-channel statistics of the training scenes (rounded: they go into the config).
    sub = xtr[:2000].reshape(-1, 3).astype(np.float64) / 255.0
    mean_l = [round(float(v), 3) for v in sub.mean(0)]
    std_l = [round(float(v), 3) for v in sub.std(0)]
    mean, std = torch.tensor(mean_l), torch.tensor(std_l)
    log(t0, "mean %s std %s" % (mean_l, std_l))

    model = FashionCAM()
    nparams = sum(p.numel() for p in model.parameters())
    steps_per_epoch = args.n_train // args.batch
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch,
                                                pct_start=args.pct_start)
    log(t0, "model: %d parameters; %d epochs x %d steps" % (nparams, args.epochs, steps_per_epoch))
    for ep in range(args.epochs):
        model.train()
        perm = rng.permutation(args.n_train)
        run_loss, run_ok, run_n = 0.0, 0, 0
        for st in range(steps_per_epoch):
            idx = np.sort(perm[st * args.batch:(st + 1) * args.batch])
            x = to_tensor(xtr[idx], mean, std)
            y = torch.from_numpy(ytr[idx])
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += float(loss) * len(idx)
            run_ok += int((out.argmax(1) == y).sum())
            run_n += len(idx)
            if args.stop_after and ep * steps_per_epoch + st + 1 >= args.stop_after:
                log(t0, "pilot stop; CPU %.0fs" % (time.process_time() - c0))
                return
            if (st + 1) % 50 == 0:
                log(t0, "epoch %d step %d/%d loss %.3f acc %.3f" %
                    (ep + 1, st + 1, steps_per_epoch, run_loss / run_n, run_ok / run_n))
                run_loss, run_ok, run_n = 0.0, 0, 0
        log(t0, "epoch %d: val accuracy %.4f" % (ep + 1, evaluate(model, xva, yva, mean, std)))
    train_cpu = time.process_time() - c0
    train_wall = time.time() - t0
    del xtr

    # Held-out evaluation: test scenes 0..N-1, the same generator heldout.py uses.
    xte, yte, _ = scenes.batch("test", args.n_test, size=INPUT_SIZE)
    acc_heldout = evaluate(model, xte[:args.n_heldout], yte[:args.n_heldout], mean, std)
    acc_test = evaluate(model, xte, yte, mean, std)
    log(t0, "test accuracy: %.4f on scenes 0..%d, %.4f on 0..%d" %
        (acc_heldout, args.n_heldout - 1, acc_test, args.n_test - 1))

    # Export.
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "fashion_cam.onnx")
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), onnx_path,
                      opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    import onnx
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    gap = [n for n in m.graph.node if n.op_type == "GlobalAveragePool"]
    assert len(gap) == 1, "expected one GlobalAveragePool"
    layer = gap[0].input[0]
    # Self-check: the exported graph, evaluated by heldout.py's PyTorch ONNX interpreter,
    # reproduces the trained model on a few held-out scenes.
    import heldout
    xchk = to_tensor(xte[:8], mean, std)
    with torch.no_grad():
        ref = model(xchk).numpy()
    got = heldout.run_onnx_torch(onnx_path, np.ascontiguousarray(xchk.numpy()))
    diff = float(np.abs(got - ref).max())
    log(t0, "ONNX (BN folded) vs PyTorch model: max |diff| %.2e" % diff)
    assert diff <= 1e-4 * max(1.0, float(np.abs(ref).max())), "exported ONNX differs"
    ops = [n.op_type for n in m.graph.node]
    log(t0, "ONNX ops: %s; default layer %s" % (ops, layer))

    with open(os.path.join(args.out, "fashion_cam.labels.txt"), "w") as f:
        f.write("\n".join(scenes.LABELS) + "\n")
    cfg = {
        "name": "fashion_cam",
        "description": "Fashion-MNIST items on cluttered 128x128 RGB scenes (models/scenes.py); "
                       "small CNN with a GlobalAveragePool -> Gemm head (CAM-ready)",
        "onnx": "fashion_cam.onnx",
        "labels": "fashion_cam.labels.txt",
        "input_name": "input",
        "output_name": "logits",
        "input_width": INPUT_SIZE,
        "input_height": INPUT_SIZE,
        "channels": 3,
        "channel_order": "RGB",
        "layout": "NCHW",
        "resize": "stretch",
        "interpolation": "bilinear",
        "scale": 1.0 / 255.0,
        "mean": mean_l,
        "std": std_l,
        "output_activation": "softmax",
        "default_layer": layer,
        "default_method": "gradcam",
        "test_accuracy": round(acc_heldout, 4),
        "test_accuracy_set": {"generator": "models/scenes.py", "split": "test",
                              "seed": scenes.TEST_SEED, "first": 0, "n": args.n_heldout,
                              "note": "the set models/heldout.py writes with --n %d"
                                      % args.n_heldout},
        "test_accuracy_large": {"split": "test", "first": 0, "n": args.n_test,
                                "accuracy": round(acc_test, 4)},
        "training": {"command": "/usr/bin/python3 models/train_default.py",
                     "seed": args.seed, "n_train": args.n_train, "epochs": args.epochs,
                     "batch": args.batch, "optimizer": "AdamW + OneCycle, max lr %g" % args.lr,
                     "cpu_seconds": round(train_cpu, 1), "wall_seconds": round(train_wall, 1),
                     "torch": torch.__version__, "parameters": nparams},
    }
    with open(os.path.join(args.out, "fashion_cam.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    log(t0, "wrote %s (%d bytes), fashion_cam.json, fashion_cam.labels.txt; total CPU %.0fs" %
        (onnx_path, os.path.getsize(onnx_path), time.process_time() - c0))


if __name__ == "__main__":
    main()
