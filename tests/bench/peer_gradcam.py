#!/usr/bin/python3
# Benchmark peer (not a test): the PyTorch Grad-CAM HTTP service camd replaces, as users write it.
"""A PyTorch + pytorch-grad-cam style explanation service behind the standard library's
ThreadingHTTPServer: what camd's users start from, so bench_all.py can load both with the same
client. Same work per request as camd's `POST /explain` with `outputs=overlay`: decode (PIL),
Resize(232) + CenterCrop(224) + normalise, forward with a forward hook on the layer, class score
of the top-1 class, `backward()` with parameter gradients enabled (as pytorch-grad-cam does),
gradients averaged per channel, ReLU, min-max, bilinear upsample to the image, jet colormap,
50 % overlay, PNG + base64 in a JSON answer with the top-5 predictions.

Methods (query `method=`): gradcam (default), scorecam (pytorch-grad-cam's ScoreCAM: channels
upsampled to the input, min-max normalised, masked inputs scored in batches of 16, softmax of the
scores), ablationcam (pytorch-grad-cam's AblationCAM: whole-model forwards in batches of 32, the
layer's output with one channel zeroed per item, weight (s - s_k) / s).

The model is built exactly as the benchmark's ONNX export builds it (torch.manual_seed(0),
torchvision architecture, random weights), so both services compute on the same weights.
One lock serialises the model (hooks keep per-request state); torch.set_num_threads(--threads).

  /usr/bin/python3 tests/bench/peer_gradcam.py --model resnet50 --port 8099 --threads 2
"""
import argparse
import base64
import io
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def target_layer(model, name):
    if name.startswith("resnet"):
        return model.layer4
    if name.startswith("vgg") or name.startswith("mobilenet") or name.startswith("efficientnet") \
            or name.startswith("densenet"):
        return model.features
    raise SystemExit(f"no default layer for {name}")


def preprocess(img):
    w, h = img.size
    s = 232 / min(w, h)
    img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    a = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(a.transpose(2, 0, 1).copy()).unsqueeze(0)


def jet(v):
    """v in [0, 1] → uint8 RGB (matplotlib's jet as OpenCV's COLORMAP_JET draws it)."""
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


class Explainer:
    def __init__(self, name):
        torch.manual_seed(0)
        self.model = getattr(torchvision.models, name)(weights=None).eval()
        self.layer = target_layer(self.model, name)
        self.lock = threading.Lock()
        self.acts = None
        self.grads = None
        self.replace = None
        self.layer.register_forward_hook(self._hook)

    def _hook(self, module, inp, out):
        if self.replace is not None:
            return self.replace(out)
        self.acts = out
        if out.requires_grad:
            out.register_hook(lambda g: setattr(self, "grads", g))
        return None

    def gradcam(self, x):
        out = self.model(x)  # parameters require grad, as in pytorch-grad-cam
        c = int(out[0].argmax())
        self.model.zero_grad()
        out[0, c].backward()
        w = self.grads.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((w * self.acts).sum(1))[0].detach().numpy()
        return out.detach(), c, cam

    def scorecam(self, x, batch=16):
        with torch.no_grad():
            out = self.model(x)
            c = int(out[0].argmax())
            acts = self.acts
            up = F.interpolate(acts, size=x.shape[-2:], mode="bilinear", align_corners=False)
            mx = up.amax(dim=(2, 3), keepdim=True)
            mn = up.amin(dim=(2, 3), keepdim=True)
            up = (up - mn) / (mx - mn + 1e-8)
            scores = []
            for i in range(0, up.shape[1], batch):
                m = up[0, i:i + batch].unsqueeze(1)
                scores.append(F.softmax(self.model(x * m), dim=1)[:, c])
            w = F.softmax(torch.cat(scores), dim=0)
            cam = torch.relu((w[:, None, None] * acts[0]).sum(0)).numpy()
        return out, c, cam

    def ablationcam(self, x, batch=32):
        with torch.no_grad():
            out = self.model(x)
            c = int(out[0].argmax())
            acts = self.acts
            s = float(out[0, c])
            C = acts.shape[1]
            drops = []
            for i in range(0, C, batch):
                n = min(batch, C - i)

                def ablate(o, i=i, n=n):  # o: the layer output of the n-copy batch
                    o = o.clone()
                    for k in range(n):
                        o[k, i + k] = 0
                    return o

                self.replace = ablate
                try:
                    drops.append(self.model(x.repeat(n, 1, 1, 1))[:, c])
                finally:
                    self.replace = None
            sk = torch.cat(drops)
            w = (s - sk) / s if s != 0 else s - sk
            cam = torch.relu((w[:, None, None] * acts[0]).sum(0)).numpy()
        return out, c, cam

    def explain(self, body, method):
        img = Image.open(io.BytesIO(body)).convert("RGB")
        x = preprocess(img)
        with self.lock:
            out, c, cam = getattr(self, method)(x)
        cam = cam - cam.min()
        cam = cam / cam.max() if cam.max() > 0 else cam
        heat = Image.fromarray(cam.astype(np.float32), mode="F").resize(img.size, Image.BILINEAR)
        heat = jet(np.clip(np.asarray(heat), 0, 1))
        over = (0.5 * np.asarray(img, np.float32) + 0.5 * heat).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(over).save(buf, "PNG")
        p = torch.softmax(out[0], 0)
        top = torch.topk(p, 5)
        return {"predictions": [{"index": int(i), "probability": float(v)}
                                for v, i in zip(top.values, top.indices)],
                "explanations": [{"index": c, "method": method,
                                  "overlay": base64.b64encode(buf.getvalue()).decode()}]}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ex = Explainer(args.model)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _send(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200 if self.path == "/readyz" else 404, {"ready": True})

        def do_POST(self):
            u = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(u.query)
            method = q.get("method", ["gradcam"])[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if method not in ("gradcam", "scorecam", "ablationcam"):
                return self._send(400, {"error": f"method {method}"})
            t0 = time.perf_counter()
            res = ex.explain(body, method)
            res["timings_ms"] = {"total": (time.perf_counter() - t0) * 1e3}
            self._send(200, res)

    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.serve_forever()


if __name__ == "__main__":
    main()
