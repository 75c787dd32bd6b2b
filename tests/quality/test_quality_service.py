#!/usr/bin/python3
"""Quality metrics on request (options quality / metrics) against an independent PyTorch reference.

The real server (tests/service/camdtest.py) serves a small seeded CNN exported here (its head
scaled so the class probability moves a lot when pixels change: a tolerance of 1e-4 then means
something). For each case camd returns the map (outputs=raw) and its "quality"; this script
recomputes every metric from the papers' definitions with PyTorch on the same map:

  drop_increase  Chattopadhay et al. 2018: p(x * m), m = min-max normalised saliency
  deletion       Petsiuk et al. 2018: most relevant pixels set to 0, N steps, trapezoid AUC
  insertion      the same pixels put back into a blurred input (Gaussian 11x11, sigma 5, weights
                 renormalised at the borders: conv(x, k) / conv(1, k))
  road           Rong et al. 2022: MoRF / LeRF at 10..90 %, removed pixels imputed by the linear
                 system "pixel = weighted mean of its in-image 8-neighbours (1/6, 1/12)", solved
                 directly (scipy.sparse.linalg.spsolve); road_noise=0 for the exact comparison

The saliency is the raw map upsampled bilinearly (half-pixel centres) and ranked most relevant
first, ties by pixel index. Also: noise on (deterministic, close to the noise-free curve),
batching (KServe instances, max_batch), the forward count, and the errors (bad metric 400, over
max_quality_forwards 413 with the key named).

  /usr/bin/python3 tests/quality/test_quality_service.py CAMD WORKDIR
"""
import base64
import io
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "service"))
import camdtest  # noqa: E402

try:
    import numpy as np
    import scipy.sparse
    import scipy.sparse.linalg
    import torch
    import torch.nn as nn
    from PIL import Image
except ImportError as e:
    print(f"test_quality_service: skipped, {e}", file=sys.stderr)
    sys.exit(77)

TOL = 1e-4
W = H = 32
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
CAP = 200  # max_quality_forwards of the test server


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def make_model(path):
    torch.manual_seed(11)
    m = Net().eval()
    with torch.no_grad():
        m.fc.weight.mul_(40.0)  # sharp probabilities: the metrics' curves move by tenths
    torch.onnx.export(m, torch.randn(1, 3, H, W), path, input_names=["input"],
                      output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    return m


def make_image(seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((W, H), Image.BILINEAR)
    arr = np.asarray(img).astype(np.int32) + rng.integers(-20, 21, size=(H, W, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue(), np.clip(arr, 0, 255).astype(np.uint8)


# ---- the reference (PyTorch / NumPy / SciPy), from the papers' definitions ----

def preprocess(arr):
    x = (arr.astype(np.float32) * np.float32(1 / 255) - MEAN.astype(np.float32)) / STD.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float()


def probs(model, xs, cls):
    with torch.no_grad():
        logits = model(torch.stack(xs)).double()
    return torch.softmax(logits, 1)[:, cls].numpy()


def saliency(raw):
    """Bilinear, align_corners=False, written out (lerp form) in float64."""
    lw, lh = raw["width"], raw["height"]
    # the JSON's 9 digits name a float32: read them as float32 (as camd holds them), then widen
    m = np.array([0.0 if v is None else v for v in raw["values"]], dtype=np.float32)
    m = m.astype(np.float64).reshape(lh, lw)

    def axis(n_out, n_in):
        s = np.maximum(((np.arange(n_out) + 0.5) * n_in) / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(s).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    y0, y1, fy = axis(H, lh)
    x0, x1, fx = axis(W, lw)
    a00, a01 = m[y0][:, x0], m[y0][:, x1]
    a10, a11 = m[y1][:, x0], m[y1][:, x1]
    top = a00 + fx[None, :] * (a01 - a00)
    bot = a10 + fx[None, :] * (a11 - a10)
    return top + fy[:, None] * (bot - top)


def ranking(s):
    flat = s.ravel()
    return np.lexsort((np.arange(flat.size), -flat))  # most relevant first, ties by index


def gaussian_blur(x):
    g = torch.exp(-torch.arange(-5, 6, dtype=torch.float64) ** 2 / (2 * 5.0 ** 2))
    k = (g[:, None] * g[None, :])[None, None]
    xd = x.double()[:, None]  # C x 1 x H x W
    num = torch.nn.functional.conv2d(xd, k, padding=5)
    den = torch.nn.functional.conv2d(torch.ones_like(xd[:1]), k, padding=5)
    return (num / den)[:, 0].float()


def road_impute(x, removed):
    """removed: bool H x W. Solves, per channel, x_i * sum_j w_ij = sum_j w_ij x_j for removed i."""
    idx = -np.ones(H * W, dtype=int)
    rem = np.flatnonzero(removed.ravel())
    idx[rem] = np.arange(rem.size)
    rows, cols, vals = [], [], []
    b = np.zeros((rem.size, x.shape[0]))
    xn = x.double().numpy().reshape(x.shape[0], -1)
    for i, p in enumerate(rem):
        py, px = divmod(p, W)
        diag = 0.0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == dx == 0:
                    continue
                qy, qx = py + dy, px + dx
                if not (0 <= qy < H and 0 <= qx < W):
                    continue
                w = 1 / 6 if dy == 0 or dx == 0 else 1 / 12
                diag += w
                q = qy * W + qx
                if idx[q] >= 0:
                    rows.append(i)
                    cols.append(idx[q])
                    vals.append(-w)
                else:
                    b[i] += w * xn[:, q]
        rows.append(i)
        cols.append(i)
        vals.append(diag)
    A = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(rem.size, rem.size))
    sol = scipy.sparse.linalg.spsolve(A, b).reshape(rem.size, -1)
    out = xn.copy()
    out[:, rem] = sol.T
    return torch.from_numpy(out.reshape(x.shape)).float()


def reference(model, x, cls, raw, steps, metrics):
    s = saliency(raw)
    order = ranking(s)
    n_px = H * W
    p0 = float(probs(model, [x], cls)[0])
    out = {"score": p0}
    if "drop_increase" in metrics:
        m = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.zeros_like(s)
        masked = (x.double() * torch.from_numpy(m)[None]).float()
        o = float(probs(model, [masked], cls)[0])
        out["drop_increase"] = {"masked_score": o, "average_drop": 100 * max(0.0, p0 - o) / p0,
                                "increase_in_confidence": o > p0}

    def keep_mask(n):
        keep = np.ones(n_px, dtype=bool)
        keep[order[:n]] = False
        return torch.from_numpy(keep.reshape(H, W))[None]

    def auc(c):
        return float(((c[:-1] + c[1:]) / 2).sum() / (len(c) - 1))  # trapezoid rule on [0, 1]

    counts = [k * n_px // steps for k in range(steps + 1)]
    if "deletion" in metrics:
        c = probs(model, [torch.where(keep_mask(n), x, torch.zeros_like(x)) for n in counts], cls)
        out["deletion"] = {"curve": c.tolist(), "auc": auc(c)}
    if "insertion" in metrics:
        bl = gaussian_blur(x)
        c = probs(model, [torch.where(keep_mask(n), bl, x) for n in counts], cls)
        out["insertion"] = {"curve": c.tolist(), "auc": auc(c)}
    if "road" in metrics:
        morf, lerf = [], []
        for lvl in range(1, 10):
            n = lvl * n_px // 10
            for first, dst in ((0, morf), (n_px - n, lerf)):
                removed = np.zeros(n_px, dtype=bool)
                removed[order[first:first + n]] = True
                dst.append(road_impute(x, removed.reshape(H, W)))
        pm, pl = probs(model, morf, cls), probs(model, lerf, cls)
        out["road"] = {"morf": pm.tolist(), "lerf": pl.tolist(), "morf_mean": float(pm.mean()),
                       "lerf_mean": float(pl.mean())}
    return out


def compare(chk, got, want, what):
    if isinstance(want, dict):
        for k, v in want.items():
            if chk.check(k in got, f"{what}: key {k} missing in {sorted(got)}"):
                compare(chk, got[k], v, f"{what}.{k}")
    elif isinstance(want, list):
        if chk.check(len(got) == len(want), f"{what}: {len(got)} values, want {len(want)}"):
            err = max(abs(a - b) for a, b in zip(got, want))
            chk.check(err <= TOL, f"{what}: max |camd - reference| = {err:.3g} > {TOL}: camd "
                      f"{got}, reference {want}")
    elif isinstance(want, bool):
        chk.check(got == want, f"{what}: {got}, want {want}")
    else:
        # average_drop is a percentage: the same absolute tolerance on the fraction
        tol = TOL * 100 if what.endswith("average_drop") else TOL
        chk.check(abs(got - want) <= tol, f"{what}: camd {got:.9g}, reference {want:.9g}")


def spread(curve):
    return max(curve) - min(curve)


def main():
    camd, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    model = make_model(os.path.join(work, "qnet.onnx"))
    cfg = {"listen": "127.0.0.1", "port": 0, "workers": 1, "max_batch": 4,
           "batch_window_us": 0, "max_quality_forwards": CAP,
           "models": [{"name": "qnet", "path": "qnet.onnx", "width": W, "height": H,
                       "resize": "stretch"}]}
    cfg_path = os.path.join(work, "camd.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    camdtest.CAMD, camdtest.FIX = camd, work
    chk = camdtest.Checker()
    images = [make_image(s) for s in (1, 2, 3)]
    all_metrics = ["drop_increase", "deletion", "insertion", "road"]
    with camdtest.Server(config=cfg_path) as srv:
        def explain(png, query):
            return srv.json("POST", "/v1/models/qnet/explain?" + query, png,
                            {"Content-Type": "image/png"})

        moved = []
        cases = [(0, "gradcam", 16, None), (1, "gradcam++", 10, 2), (2, "scorecam", 5, None),
                 (0, "layercam", 3, 4)]
        for img_i, method, steps, target in cases:
            png, arr = images[img_i]
            x = preprocess(arr)
            q = f"quality=true&road_noise=0&outputs=raw&method={method.replace('+', '%2B')}&quality_steps={steps}"
            if target is not None:
                q += f"&target={target}"
            st, _, body = explain(png, q)
            what = f"image {img_i} {method} N={steps}"
            if not chk.check(st == 200, f"{what}: status {st} {body}"):
                continue
            ex = body["explanations"][0]
            cls = ex["index"]
            with torch.no_grad():
                logits = model(x[None])[0]
            chk.check(abs(float(logits[cls]) - ex["score"]) < 1e-4,
                      f"{what}: camd logit {ex['score']} vs PyTorch {float(logits[cls])} (same "
                      f"model and input)")
            got = ex["quality"]
            chk.check(got["forwards"] == 1 + 2 * steps + 18,
                      f"{what}: forwards {got['forwards']}, want {1 + 2 * steps + 18}")
            chk.check(body["options"]["metrics"] == all_metrics and
                      body["options"]["quality_steps"] == steps, f"{what}: options echo")
            want = reference(model, x, cls, ex["raw"], steps, all_metrics)
            compare(chk, got, want, what)
            moved.append(max(spread(want["deletion"]["curve"]), spread(want["insertion"]["curve"])))
        # The comparison means something only if the curves move far more than the tolerance.
        chk.check(moved and min(moved) > 0.05, f"reference curves move by {moved} (want > 0.05)")

        # Only the metrics asked for; a KServe request with two instances (one batch).
        body_json = json.dumps({"instances": [{"image": {"b64": base64.b64encode(p).decode()}}
                                              for p, _ in images[:2]],
                                "metrics": "deletion,road", "road_noise": "0",
                                "quality_steps": "8", "outputs": "raw", "target": "1"}).encode()
        st, _, body = srv.json("POST", "/v1/models/qnet/explain", body_json,
                               {"Content-Type": "application/json"})
        if chk.check(st == 200, f"kserve: status {st} {body}"):
            for k, pred in enumerate(body["predictions"]):
                ex = pred["explanations"][0]
                got = ex["quality"]
                chk.check("insertion" not in got and "drop_increase" not in got,
                          f"kserve {k}: only deletion and road: {sorted(got)}")
                chk.check(got["forwards"] == 8 + 18, f"kserve {k}: forwards {got['forwards']}")
                want = reference(model, preprocess(images[k][1]), 1, ex["raw"], 8,
                                 ["deletion", "road"])
                compare(chk, got, want, f"kserve {k}")

        # ROAD's noise: deterministic for a seed, close to the noise-free imputation, not equal.
        png = images[0][0]
        q = "metrics=road&outputs=raw&target=0"
        _, _, a = explain(png, q)
        _, _, b = explain(png, q)
        _, _, c = explain(png, q + "&seed=5")
        _, _, z = explain(png, q + "&road_noise=0")
        ra, rb, rc_, rz = (r["explanations"][0]["quality"]["road"] for r in (a, b, c, z))
        chk.check(ra == rb, "road: same request, same noise")
        chk.check(ra["morf"] != rc_["morf"], "road: another seed, other noise")
        dev = max(abs(u - v) for u, v in zip(ra["morf"] + ra["lerf"], rz["morf"] + rz["lerf"]))
        chk.check(0 < dev < 0.05, f"road: noise 0.01 moves the scores by {dev} (want 0 < d < 0.05)")
        chk.check(a["options"]["road_noise"] == 0.01, "road: default road_noise 0.01 echoed")

        # Without the options: no "quality" and no extra work.
        _, _, plain = explain(png, "outputs=raw")
        chk.check("quality" not in plain["explanations"][0], "no quality unless asked")
        chk.check(plain["options"]["metrics"] == [], "options echo: metrics []")

        # Errors.
        st, h, body = explain(png, "metrics=deletion,bogus")
        chk.error(st, h, body, 400, "invalid_argument", "unknown metric 'bogus'", "bad metric")
        st, h, body = explain(png, "quality=maybe")
        chk.error(st, h, body, 400, "invalid_argument", "quality", "bad quality boolean")
        st, h, body = explain(png, "quality=true&quality_steps=0")
        chk.error(st, h, body, 400, "invalid_argument", "quality_steps", "quality_steps 0")
        st, h, body = explain(png, "quality=true&quality_steps=2000")
        chk.error(st, h, body, 400, "invalid_argument", "1..1024", "quality_steps over 1024")
        st, h, body = explain(png, "quality=true&road_noise=2")
        chk.error(st, h, body, 400, "invalid_argument", "road_noise", "road_noise 2")
        # 1 + 2*16 + 18 = 51 per map: top4 = 204 > 200; steps 100 = 219 > 200
        st, h, body = explain(png, "quality=true&target=top4")
        chk.error(st, h, body, 413, "limit_exceeded", "max_quality_forwards is 200", "top4 over cap")
        chk.check("204 forwards" in body["error"]["message"], f"cap message: {body['error']}")
        st, h, body = explain(png, "quality=true&quality_steps=100")
        chk.error(st, h, body, 413, "limit_exceeded", "max_quality_forwards", "steps over cap")
        st, _, body = explain(png, "quality=true&target=top3")  # 153 <= 200
        chk.check(st == 200 and all("quality" in e for e in body["explanations"]),
                  f"top3 within the cap: {st}")
        # SIGTERM: a clean exit (under ASan, a leak of the quality buffers makes it non-zero).
        rc = srv.stop()
        chk.check(rc == 0, f"camd exit status {rc} after SIGTERM:\n{srv.text()[-3000:]}")
    chk.done("quality.service")


if __name__ == "__main__":
    main()
