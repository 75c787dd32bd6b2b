#!/usr/bin/python3
# Metamorphic matrix: every exporter shape of one model explains like its plain export, for all
# 14 CAM methods (variants from make_matrix.py), through the server and the CLI.
"""usage: check_matrix.py CAMD_BINARY FIXTURE_DIR

One `camd serve` holds every variant of make_matrix.py as a model (each loaded once), configured
as users would: input_size, stretch resize, mean 0 / std 1 (the tensor is the image / 255),
the ':0' names of the colon_names variant as input_name / output_name / default_layer, and
layer_layout for the variant whose graph does not decide it. For every family (plain, qdq,
pad_same, gmp) the family's reference file and every other variant of it are explained with
every CAM method, two target classes and raw maps (relu off, normalize none); each answer must
give:
  - the reference's scores (the logits: for a graph that ends in its own softmax / sigmoid,
    the values fed into it) within 1e-5 of the largest, the same top-5, and probabilities
    from the model's own activation (never a second softmax) within 1e-5;
  - the reference's maps within 1e-4 of their largest value, at the same width x height;
  - for the reference itself: PyTorch's float64 logits within 1e-4 (plain, pad_same_static,
    gmp; the qdq family's reference is the plain graph with the int8-rounded float weights).
Methods that run one forward per channel (scorecam, sscam, iscam, ablationcam) explain the
'cheap' layer (few channels), the others the 'deep' one (the map before global pooling). Also:
the default layer gives the reference's default map; aug_smooth and eigen_smooth on
channels-last variants; layer names with ':' escaped in the URL (%3A); the CLI on a few
variants (--layer with ':0', --size for free sizes, --layout, --layer-layout) gives the
server's maps; the errors for a missing input_size and an undecided or contradicted layer
layout name the setting; `camd inspect` shows the layouts.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "service"))
import camdtest  # noqa: E402

CAMD, FIX = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
camdtest.CAMD = CAMD
REF = json.load(open(os.path.join(FIX, "matrix.json")))
H, W = REF["height"], REF["width"]
VARIANTS = REF["variants"]
CHEAP = {"scorecam", "sscam", "iscam", "ablationcam"}
METHODS = ["cam", "gradcam", "hirescam", "gradcam-elementwise", "gradcam++", "xgradcam",
           "layercam", "eigencam", "eigengradcam", "smoothgradcam++", "scorecam", "sscam", "iscam",
           "ablationcam"]
SCORE_TOL, MAP_TOL, PROB_TOL, TORCH_TOL = 1e-5, 1e-4, 1e-5, 1e-4
COMMON = {"outputs": "raw", "relu": "false", "normalize": "none", "topk": "5", "n_samples": "2"}
IMAGE = open(os.path.join(FIX, "image.png"), "rb").read()
FAILURES = []
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg, file=sys.stderr, flush=True)
    return cond


def model_entry(v):
    info = VARIANTS[v]
    e = {"name": v, "path": os.path.join(FIX, v + ".onnx"), "input_size": [W, H],
         "resize": "stretch", "mean": [0.0], "std": [1.0]}
    for key in ("input_name", "output_name"):
        if key in info:
            e[key] = info[key]
    if v == "colon_names":
        e["default_layer"] = info["deep"]
    if info.get("undecided"):
        e["layer_layout"] = info["layer_layout"]
    return e


def write_config():
    cfg = {"listen": "127.0.0.1", "port": 0, "workers": 2, "blas_threads": 1, "max_batch": 8,
           "queue_length": 1000, "request_timeout_s": 600, "log_level": "info",
           "default_model": "plain", "models": [model_entry(v) for v in VARIANTS]}
    fd, path = tempfile.mkstemp(prefix="camd-matrix-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    return path


def ask(srv, v, opts, colon=":explain"):
    q = urllib.parse.urlencode({**COMMON, **opts}, quote_via=urllib.parse.quote, safe="")
    st, _, data = srv.request("POST", f"/v1/models/{v}{colon}?{q}", IMAGE,
                              {"Content-Type": "image/png"}, timeout=600)
    try:
        body = json.loads(data)
    except ValueError:
        body = {"error": {"message": data[:300]}}
    return st, body


def cli(v, *args):
    p = subprocess.run([CAMD, "explain", "--model", os.path.join(FIX, v + ".onnx"), "--image",
                        os.path.join(FIX, "image.png"), "--resize", "stretch", "--mean", "0",
                        "--std", "1", "--outputs", "raw", "--no-relu", "--normalize", "none",
                        "--topk", "5", "--n-samples", "2", "--json", "-", *args],
                       capture_output=True, text=True, timeout=600, env=ENV)
    return p.returncode, p.stderr, json.loads(p.stdout) if p.returncode == 0 else None


def maps(res):
    return [(e["raw"]["width"], e["raw"]["height"], np.array(e["raw"]["values"], np.float64))
            for e in res["explanations"]]


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


WORST = {}  # variant -> [largest score difference, largest map difference] (relative)


def compare(what, res, ref):
    worst = WORST.setdefault(what.split()[0], [0.0, 0.0])
    idx, ridx = [p["index"] for p in res["predictions"]], [p["index"] for p in ref["predictions"]]
    if check(idx == ridx, f"{what}: top-5 {idx} vs {ridx}"):
        s, r = [p["score"] for p in res["predictions"]], [p["score"] for p in ref["predictions"]]
        worst[0] = max(worst[0], rel_diff(s, r))
        check(rel_diff(s, r) <= SCORE_TOL,
              f"{what}: scores {s[:2]} vs {r[:2]} (rel {rel_diff(s, r):.2g})")
    check(len(res["explanations"]) == len(ref["explanations"]), f"{what}: explanation count")
    for k, ((w, h, m), (rw, rh, rm)) in enumerate(zip(maps(res), maps(ref))):
        if check((w, h) == (rw, rh), f"{what}: map {k} is {w}x{h}, expected {rw}x{rh}"):
            d = rel_diff(m, rm)
            worst[1] = max(worst[1], d)
            check(d <= MAP_TOL, f"{what}: map {k} differs by {d:.3g} of its largest value")


def layer(v, method):
    return VARIANTS[v]["cheap" if method in CHEAP else "deep"]


def main():
    fams = REF["families"]
    targets = {}
    for fam, info in fams.items():
        logits = np.array(info["logits"] if info["logits"] else fams["plain"]["logits"])
        targets[fam] = ",".join(str(int(i)) for i in np.argsort(-logits, kind="stable")[:2])
    by_family = {}
    for v, info in VARIANTS.items():
        by_family.setdefault(info["family"], []).append(v)
    tgt = lambda v: targets[VARIANTS[v]["family"]]

    cfg = write_config()
    results = {}
    try:
        with camdtest.Server(config=cfg, timeout=600, env={"OPENBLAS_NUM_THREADS": "1"}) as srv:
            jobs = {}
            for v in VARIANTS:
                for method in METHODS:
                    jobs[(v, method)] = {"method": method, "target": tgt(v),
                                         "layer": layer(v, method)}
                jobs[(v, "default")] = {"target": tgt(v)}
            for v in ("plain", "nhwc_input", "channels_last", "keras_raw"):
                jobs[(v, "smooth")] = {"method": "gradcam", "aug_smooth": "true",
                                       "eigen_smooth": "true", "target": targets["plain"],
                                       "layer": layer(v, "gradcam")}
                jobs[(v, "aug-scorecam")] = {"method": "scorecam", "aug_smooth": "true",
                                             "target": targets["plain"],
                                             "layer": layer(v, "scorecam")}
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                futs = {k: pool.submit(ask, srv, k[0], o) for k, o in jobs.items()}
                for key, fut in futs.items():
                    st, body = fut.result()
                    if check(st == 200, f"{key[0]} {key[1]}: HTTP {st}: "
                             f"{body.get('error', {}).get('message', '')[:400]}"):
                        results[key] = body
            # ':' in names through the URL: the route alias and a %3A-escaped layer name.
            st, body = ask(srv, "colon_names", {"method": "gradcam", "target": targets["plain"],
                                                "layer": VARIANTS["colon_names"]["deep"]},
                           colon="%3Aexplain")
            if check(st == 200, f"colon_names via %3Aexplain: HTTP {st}: {body}"):
                compare("colon_names %3A", body, results.get(("plain", "gradcam"), body))
            # A layer_layout that contradicts the graph is refused with a message naming it.
            for v, opts in (("keras_opt", {"layer": VARIANTS["keras_opt"]["deep"],
                                           "layer_layout": "NCHW"}),):
                st, body = ask(srv, v, opts)
                check(st == 400 and "layer_layout" in body.get("error", {}).get("message", ""),
                      f"{v} {opts}: HTTP {st}: {body}")
    finally:
        os.unlink(cfg)

    for fam, variants in by_family.items():
        ref_v = fams[fam]["reference"]
        res = results.get((ref_v, "gradcam"))
        if res and fams[fam]["logits"]:
            logits = np.array(fams[fam]["logits"])
            got = [p["score"] for p in res["predictions"]]
            idx = [p["index"] for p in res["predictions"]]
            check(idx == list(np.argsort(-logits, kind="stable")[:5]),
                  f"{ref_v}: top-5 {idx} vs PyTorch")
            check(np.abs(np.array(got) - logits[idx]).max() <= TORCH_TOL * np.abs(logits).max(),
                  f"{ref_v}: scores {got[:2]} vs PyTorch {list(logits[idx][:2])}")
        # Conditioning: a flat or vanishing reference map could not tell layouts apart.
        for method in METHODS:
            ref = results.get((ref_v, method))
            for k, (_, _, rm) in enumerate(maps(ref) if ref else []):
                check(np.ptp(rm) > 1e-3 * max(np.abs(rm).max(), 1e-30) and np.abs(rm).max() > 1e-6,
                      f"{ref_v} {method}: reference map {k} is flat or vanishing "
                      f"(range {np.ptp(rm):.3g}, max {np.abs(rm).max():.3g})")
        for v in variants:
            for method in METHODS + ["default"]:
                res, ref = results.get((v, method)), results.get((ref_v, method))
                if res is not None and ref is not None and v != ref_v:
                    compare(f"{v} {method}", res, ref)
            res, ref = results.get((v, "gradcam")), results.get((ref_v, "gradcam"))
            if res and ref:  # probabilities: the model's own activation of its logits
                got = np.array([p["probability"] for p in res["predictions"]], np.float64)
                if VARIANTS[v].get("graph_activation") == "sigmoid":
                    want = 1.0 / (1.0 + np.exp(-np.array([p["score"] for p in ref["predictions"]])))
                else:
                    want = np.array([p["probability"] for p in ref["predictions"]], np.float64)
                check(np.abs(got - want).max() <= PROB_TOL,
                      f"{v}: probabilities {list(got[:2])} vs {list(want[:2])}")
    for v in ("nhwc_input", "channels_last", "keras_raw"):
        for key in ("smooth", "aug-scorecam"):
            if (v, key) in results and ("plain", key) in results:
                compare(f"{v} {key}", results[(v, key)], results[("plain", key)])

    # The CLI: names with ':0', free sizes, explicit layouts; the same maps as the server.
    size = ["--size", f"{W}x{H}"]
    ref = results.get(("plain", "gradcam"))
    for v, args in (("colon_names", ["--layer", VARIANTS["colon_names"]["deep"]]),
                    ("free_hw", ["--layer", VARIANTS["free_hw"]["deep"]]),
                    ("nhwc_input", ["--layout", "NHWC", "--layer", VARIANTS["nhwc_input"]["deep"]]),
                    ("reshaped", ["--layer", VARIANTS["reshaped"]["deep"], "--layer-layout",
                                  "NHWC"])):
        rc, err, res = cli(v, *size, "--method", "gradcam", "--target", targets["plain"], *args)
        if check(rc == 0, f"CLI {v}: exit {rc}: {err.strip()[-400:]}") and ref:
            compare(f"CLI {v}", res, ref)
    rc, err, _ = cli("reshaped", *size, "--layer", VARIANTS["reshaped"]["deep"])
    check(rc == 1 and "layer_layout" in err and "NHWC" in err,
          f"CLI undecided layer without --layer-layout: exit {rc}: {err.strip()[-300:]!r}")
    rc, err, _ = cli("channels_last", *size, "--layer", VARIANTS["channels_last"]["deep"],
                     "--layer-layout", "NCHW")
    check(rc == 1 and "layer_layout" in err and "NHWC" in err,
          f"CLI contradicting --layer-layout: exit {rc}: {err.strip()[-300:]!r}")
    rc, err, _ = cli("free_hw", "--predict")
    check(rc == 1 and "input_size" in err and "--size" in err,
          f"free_hw without --size: exit {rc}: {err.strip()[-300:]!r}")
    # camd inspect: the input's layout and each explained layer's.
    for v in ("plain", "nhwc_input", "channels_last", "keras_opt", "keras_raw", "reshaped"):
        info = VARIANTS[v]
        p = subprocess.run([CAMD, "inspect", "--json", os.path.join(FIX, v + ".onnx")],
                           capture_output=True, text=True, timeout=120, env=ENV)
        if not check(p.returncode == 0, f"inspect {v}: exit {p.returncode}: {p.stderr[-200:]}"):
            continue
        out = json.loads(p.stdout)
        check(out["inputs"][0].get("layout") == info["layout"],
              f"inspect {v}: input layout {out['inputs'][0].get('layout')}, want {info['layout']}")
        layers = {l["name"]: l["layout"] for l in out["cam_layers"]}
        want = {"channels_last": "NHWC", "keras_opt": "NHWC", "keras_raw": "NHWC",
                "reshaped": "unknown"}.get(v, "NCHW")
        check(layers.get(info["deep"]) == want,
              f"inspect {v}: deep layer {info['deep']} is {layers.get(info['deep'])}, want {want}")
    for v, (ds, dm) in sorted(WORST.items()):
        print(f"  {v:16s} largest difference: scores {ds:.2g}, maps {dm:.2g}")
    print(f"{REF['model']}: {len(results)} answers compared, {len(FAILURES)} failures")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
