#!/usr/bin/python3
"""Localisation-quality benchmark: how well each CAM method finds a known object.

Scenes come from models/scenes.py (Fashion-MNIST items at random positions and scales on a
cluttered canvas, with the true object box). For each method, camd (the real server, started
here on 127.0.0.1) explains the ground-truth class of each scene; the script scores:

  pointing   peak of the map inside the true box (pointing game, Zhang et al. 2016)
  IoU>=0.5   the box of the largest region >= 20 % of the max (CAM paper) overlaps the true
             box with IoU >= 0.5
  AD / IC    Average Drop % and Increase in Confidence % (Chattopadhyay et al. 2018): the
             class probability on the image multiplied by the map (upsampled, normalised)
             compared with the probability on the image
  del / ins  Deletion and Insertion AUC (Petsiuk et al. 2018): the class probability while
             the most salient pixels are removed (set to 0) / inserted into a blurred copy,
             in STEPS equal steps; area under the curve (lower is better for deletion, higher
             for insertion)

All forwards go through camd's HTTP API (KServe batches for the perturbed images). This is a
benchmark, not a test: it prints a table (Markdown with --markdown) and asserts nothing.

  /usr/bin/python3 tests/quality/quality.py --camd build/camd --n 100
"""
import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from PIL import Image, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models"))
import scenes  # noqa: E402

METHODS = ["cam", "gradcam", "hirescam", "gradcam-elementwise", "gradcam++", "xgradcam",
           "layercam", "eigencam", "eigengradcam", "scorecam", "ablationcam",
           "smoothgradcam++", "sscam", "iscam", "finercam", "shapleycam", "kpcacam",
           "guidedbackprop", "guidedgradcam", "fullgrad", "polycam-plus", "polycam-minus",
           "polycam-plusminus"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Server:
    def __init__(self, camd, config, workers):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [camd, "serve", "--config", config, "--port", str(self.port), "--listen",
             "127.0.0.1", "--workers", str(workers), "--log-level", "error",
             "--max-instances", "64", "--queue-length", "256"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError("camd exited: " + self.proc.stderr.read().decode())
                time.sleep(0.2)
        raise RuntimeError("camd did not become ready")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def post(self, path, body, ctype):
        req = urllib.request.Request(self.url(path), data=body, headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def upsample(values, w, h, out_w, out_h):
    """Bilinear, half-pixel centres, edge clamp (what camd does for the overlay)."""
    m = np.asarray(values, dtype=np.float64).reshape(h, w)
    xs = (np.arange(out_w) + 0.5) * w / out_w - 0.5
    ys = (np.arange(out_h) + 0.5) * h / out_h - 0.5
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x1 = np.clip(x0 + 1, 0, w - 1)
    y1 = np.clip(y0 + 1, 0, h - 1)
    fx = np.clip(xs - np.floor(xs), 0, 1)
    fy = np.clip(ys - np.floor(ys), 0, 1)
    fx = np.where(xs < 0, 0, fx)
    fy = np.where(ys < 0, 0, fy)
    top = m[y0][:, x0] * (1 - fx) + m[y0][:, x1] * fx
    bot = m[y1][:, x0] * (1 - fx) + m[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


_N_LABELS = {}


def n_labels(server, model):
    if model in _N_LABELS:
        return _N_LABELS[model]
    with urllib.request.urlopen(server.url("/v1/models"), timeout=30) as r:
        models = json.loads(r.read())["models"]
    _N_LABELS[model] = [m for m in models if m["name"] == model][0]["labels"]
    return _N_LABELS[model]


def probs_of(server, model, images, cls):
    body = json.dumps({"instances": [{"image": {"b64": base64.b64encode(png_bytes(im)).decode()}}
                                     for im in images],
                       "topk": n_labels(server, model)}).encode()
    out = server.post("/v1/models/%s/predict" % model, body, "application/json")
    res = []
    for pred in out["predictions"]:
        p = {d["index"]: d["probability"] for d in pred["predictions"]}
        res.append(p.get(cls, 0.0))
    return res


def curve_auc(values):
    v = np.asarray(values)
    return float((v[:-1] + v[1:]).sum() / 2 / (len(v) - 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--camd", default=os.path.join(ROOT, "build", "camd"))
    ap.add_argument("--config", default=os.path.join(ROOT, "config", "camd.json"))
    ap.add_argument("--model", default="fashion_cam")
    ap.add_argument("--n", type=int, default=100, help="scenes (test split)")
    ap.add_argument("--start", type=int, default=5000, help="first scene index")
    ap.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-samples", type=int, default=0,
                    help="n_samples for the noise methods (0 = camd's default)")
    ap.add_argument("--score", default="", help="score option of every request (default: "
                    "camd's, logit); Poly-CAM's paper scores with softmax")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    sc = scenes.generate("test", n=args.n, start=args.start)
    server = Server(args.camd, args.config, args.workers)
    rows = []
    try:
        base_probs = []
        for s in sc:
            base_probs.append(probs_of(server, args.model, [s.image], s.label)[0])
        for method in args.methods.split(","):
            t0 = time.time()
            hit = good_iou = 0
            drops, incs, dels, inss = [], [], [], []
            for s, base in zip(sc, base_probs):
                q = "?method=%s&target=%d&outputs=raw,bbox" % (urllib.request.quote(method), s.label)
                if args.n_samples and method in ("smoothgradcam++", "sscam", "iscam"):
                    q += "&n_samples=%d" % args.n_samples
                if args.score:
                    q += "&score=" + urllib.request.quote(args.score)
                out = server.post("/v1/models/%s/explain%s" % (args.model, q), png_bytes(s.image),
                                  "image/png")
                ex = out["explanations"][0]
                H, W = s.image.shape[:2]
                px, py = ex["peak"]["x"], ex["peak"]["y"]
                x0, y0, x1, y1 = s.box
                hit += int(x0 <= px < x1 and y0 <= py < y1)
                bb = ex.get("bbox")
                if bb:
                    good_iou += int(iou((bb["x0"], bb["y0"], bb["x1"] + 1, bb["y1"] + 1),
                                        (x0, y0, x1, y1)) >= 0.5)
                raw = ex["raw"]
                sal = upsample(raw["values"], raw["width"], raw["height"], W, H)
                sal = np.maximum(sal, 0)
                rng = sal.max() - sal.min()
                sal = (sal - sal.min()) / rng if rng > 0 else np.zeros_like(sal)
                masked = s.image.astype(np.float64) * sal[:, :, None]
                order = np.argsort(-sal.ravel(), kind="stable")
                blurred = np.asarray(Image.fromarray(s.image).filter(ImageFilter.GaussianBlur(5)))
                del_imgs, ins_imgs = [], []
                for k in range(args.steps + 1):
                    n_px = int(round(k * order.size / args.steps))
                    keep = np.ones(order.size, dtype=bool)
                    keep[order[:n_px]] = False
                    keep = keep.reshape(H, W)
                    del_imgs.append(np.where(keep[:, :, None], s.image, 0))
                    ins_imgs.append(np.where(keep[:, :, None], blurred, s.image))
                p = probs_of(server, args.model, [masked] + del_imgs + ins_imgs, s.label)
                o = p[0]
                drops.append(max(0.0, base - o) / max(base, 1e-12))
                incs.append(o > base)
                dels.append(curve_auc(p[1:args.steps + 2]))
                inss.append(curve_auc(p[args.steps + 2:]))
            n = len(sc)
            rows.append((method, 100.0 * hit / n, 100.0 * good_iou / n, 100.0 * np.mean(drops),
                         100.0 * np.mean(incs), float(np.mean(dels)), float(np.mean(inss)),
                         (time.time() - t0) / n * 1000))
            print("# %s done" % method, file=sys.stderr, flush=True)
    finally:
        server.stop()
    head = ("method", "pointing %", "IoU>=0.5 %", "avg drop %", "incr. conf %", "deletion AUC",
            "insertion AUC", "ms/scene")
    print("scenes: %d (test split from %d), model %s, %d deletion/insertion steps%s" %
          (args.n, args.start, args.model, args.steps,
           ", n_samples %d for noise methods" % args.n_samples if args.n_samples else ""))
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| %s | %.1f | %.1f | %.1f | %.1f | %.3f | %.3f | %.0f |" % r)
    else:
        print("%-20s %10s %10s %10s %12s %12s %13s %9s" % head)
        for r in rows:
            print("%-20s %10.1f %10.1f %10.1f %12.1f %12.3f %13.3f %9.0f" % r)


if __name__ == "__main__":
    main()
