#!/usr/bin/python3
"""Model-parameter randomisation sanity check (Adebayo et al. 2018) for every CAM method.

A map that explains the model must change when the model changes. This script copies the
default model (config/camd.json, fashion_cam) with its head -- the final Gemm (fc.weight,
fc.bias) -- re-initialised at random (normal, with the trained weights' std; seeded), serves both
with the real camd on 127.0.0.1, explains the ground-truth class of held-out scenes
(models/scenes.py, test split) with each method on both models (outputs=raw), and reports per
method, over the scenes:

  spearman   Spearman rank correlation of the two maps' values (layer resolution);
             |spearman| too, as Adebayo et al. report it (the sign of a map may flip)
  ssim       SSIM of the two maps, min-max normalised and upsampled to the input size
             (bilinear, half-pixel centres), 7x7 uniform window, data range 1 (Wang et al. 2004)

Low values mean the method passes (its maps depend on the head); values near 1 mean the map
does not depend on the head at all. A map that is constant (no ranking) counts as NaN and is
left out of the mean (the column n says how many scenes counted).

This is a benchmark, not a test (not in the default suite):

  /usr/bin/python3 tests/bench/sanity_randomization.py --camd build/camd --n 24
"""
import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request

import numpy as np
import onnx
from onnx import numpy_helper
from scipy import ndimage, stats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models"))
sys.path.insert(0, os.path.join(ROOT, "tests", "quality"))
import scenes  # noqa: E402
from quality import METHODS, Server, png_bytes, upsample  # noqa: E402


def randomise_head(src, dst, seed):
    """Copies the ONNX model with the inputs of its last Gemm/MatMul re-drawn at random."""
    m = onnx.load(src)
    head = [n for n in m.graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    inits = {i.name: i for i in m.graph.initializer}
    rng = np.random.default_rng(seed)
    names = []
    for name in head.input[1:]:
        if name not in inits:
            continue
        old = numpy_helper.to_array(inits[name])
        new = rng.normal(0.0, float(old.std()) or 0.01, size=old.shape).astype(old.dtype)
        inits[name].CopyFrom(numpy_helper.from_array(new, name))
        names.append(name)
    onnx.save(m, dst)
    return head.name, names


def ssim(a, b):
    """SSIM with a 7x7 uniform window, data range 1, mean over the valid window positions."""
    c1, c2 = (0.01) ** 2, (0.03) ** 2
    f = lambda x: ndimage.uniform_filter(x, size=7)[3:-3, 3:-3]  # noqa: E731
    ma, mb = f(a), f(b)
    va = f(a * a) - ma * ma
    vb = f(b * b) - mb * mb
    cov = f(a * b) - ma * mb
    n = 49.0 / 48.0  # sample (co)variances, as skimage does
    va, vb, cov = va * n, vb * n, cov * n
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean())


def norm01(x):
    r = x.max() - x.min()
    return (x - x.min()) / r if r > 0 else np.zeros_like(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--camd", default=os.path.join(ROOT, "build", "camd"))
    ap.add_argument("--config", default=os.path.join(ROOT, "config", "camd.json"))
    ap.add_argument("--model", default="fashion_cam")
    ap.add_argument("--n", type=int, default=24, help="scenes (test split)")
    ap.add_argument("--start", type=int, default=5000, help="first scene index")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random head")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--n-samples", type=int, default=4, help="n_samples of the noise methods")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    with open(args.config) as f:
        cfg = json.load(f)
    base = os.path.dirname(os.path.abspath(args.config))
    entry = [m for m in cfg["models"] if m["name"] == args.model][0]
    tmp = tempfile.mkdtemp(prefix="camd-sanity-")
    orig = dict(entry)
    for k in ("path", "labels"):
        if orig.get(k):
            orig[k] = os.path.normpath(os.path.join(base, orig[k]))
    rand = dict(orig, name=args.model + "_random_head", path=os.path.join(tmp, "random_head.onnx"))
    head, names = randomise_head(orig["path"], rand["path"], args.seed)
    cfg = {"models": [orig, rand], "max_batch": 8}
    cfg_path = os.path.join(tmp, "camd.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)

    sc = scenes.generate("test", n=args.n, start=args.start)
    server = Server(args.camd, cfg_path, 2)
    rows = []
    try:
        for method in args.methods.split(","):
            t0 = time.time()
            rho, arho, ss = [], [], []
            for s in sc:
                q = "?method=%s&target=%d&outputs=raw" % (urllib.request.quote(method), s.label)
                if method in ("smoothgradcam++", "sscam", "iscam"):
                    q += "&n_samples=%d" % args.n_samples
                maps = []
                for name in (orig["name"], rand["name"]):
                    out = server.post("/v1/models/%s/explain%s" % (name, q), png_bytes(s.image),
                                      "image/png")
                    raw = out["explanations"][0]["raw"]
                    maps.append(raw)
                a = np.asarray(maps[0]["values"], dtype=np.float64)
                b = np.asarray(maps[1]["values"], dtype=np.float64)
                if np.ptp(a) > 0 and np.ptp(b) > 0:
                    r = stats.spearmanr(a, b).correlation
                    rho.append(r)
                    arho.append(abs(r))
                H, W = s.image.shape[:2]
                ua = norm01(upsample(a, maps[0]["width"], maps[0]["height"], W, H))
                ub = norm01(upsample(b, maps[1]["width"], maps[1]["height"], W, H))
                ss.append(ssim(ua, ub))
            rows.append((method, len(rho), float(np.mean(rho)) if rho else float("nan"),
                         float(np.mean(arho)) if arho else float("nan"), float(np.mean(ss)),
                         (time.time() - t0) / len(sc) * 1000))
            print("# %s done" % method, file=sys.stderr, flush=True)
    finally:
        server.stop()
    print("model %s, head '%s' (%s) re-drawn at random (seed %d); %d test scenes from %d; "
          "n_samples %d for the noise methods" % (args.model, head, ", ".join(names), args.seed,
                                                   args.n, args.start, args.n_samples))
    head_row = ("method", "n", "spearman", "|spearman|", "ssim", "ms/scene")
    if args.markdown:
        print("| " + " | ".join(head_row) + " |")
        print("|" + "---|" * len(head_row))
        for r in rows:
            print("| %s | %d | %.3f | %.3f | %.3f | %.0f |" % r)
    else:
        print("%-20s %4s %9s %11s %7s %9s" % head_row)
        for r in rows:
            print("%-20s %4d %9.3f %11.3f %7.3f %9.0f" % r)


if __name__ == "__main__":
    main()
