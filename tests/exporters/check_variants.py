#!/usr/bin/python3
# Metamorphic checks: every exporter variant of one model explains like the plain export.
"""usage: check_variants.py CAMD_BINARY FIXTURE_DIR

The fixture (make_variants.py) holds one seeded resnet18 exported in several shapes and
PyTorch's float64 logits for a 224x224 image. For every variant `camd explain` must give:
  - scores: the logits (PyTorch's, 1e-4 of max |logit|); for a model that ends in its own
    softmax / log-softmax / sigmoid these are the values fed into that activation;
  - probabilities: the model's own (softmax or sigmoid of the logits; never a second softmax);
  - maps: the logit-targeted map of the plain export, bit for bit (same graph up to the logits);
    score=output on the softmax export equals score=softmax on the plain one (1e-4);
  - `camd inspect --json` names the activation and the logits value;
  - a config activation that contradicts the graph's is refused with a message naming both.
A softmax over part of the classes (softmax_part) is not class probabilities: camd keeps its
values as scores and applies the configured softmax over all of them.
"""
import json
import os
import subprocess
import sys

import numpy as np

CAMD, FIX = sys.argv[1], sys.argv[2]
REF = json.load(open(os.path.join(FIX, "reference.json")))
LOGITS = np.array(REF["logits"])
TOP = REF["top5"][0]
FAILURES = []
PRE = ["--size", "224", "--resize", "stretch", "--mean", "0,0,0", "--std", "1,1,1"]


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg, file=sys.stderr)
    return cond


def explain(variant, *extra):
    cmd = [CAMD, "explain", "--model", os.path.join(FIX, variant + ".onnx"), "--image",
           os.path.join(FIX, "image.png"), *PRE, "--outputs", "raw", "--no-relu", "--normalize",
           "none", "--topk", "5", "--json", "-", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return p.returncode, p.stderr, None
    return 0, p.stderr, json.loads(p.stdout)


def raw_map(res, k=0):
    return np.array(res["explanations"][k]["raw"]["values"], dtype=np.float64)


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def close(a, b, rel):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() <= rel * max(np.abs(b).max(), 1e-30)


def check_predictions(variant, res, probs, scores=LOGITS):
    preds = res["predictions"]
    idx = [p["index"] for p in preds]
    order = list(np.argsort(-scores, kind="stable")[:5])
    check(idx == order, f"{variant}: top-5 {idx}, expected {order}")
    got_s = [p["score"] for p in preds]
    check(close(got_s, scores[idx], 1e-4 * np.abs(scores).max() / np.abs(scores[idx]).max()),
          f"{variant}: scores {got_s[:3]} vs logits {list(scores[idx][:3])}")
    got_p = [p["probability"] for p in preds]
    check(close(got_p, probs[idx], 1e-4), f"{variant}: probabilities {got_p[:3]} vs "
          f"{list(probs[idx][:3])} (no second softmax)")


def main():
    results = {}
    for variant in REF["variants"]:
        rc, err, res = explain(variant, "--target", str(TOP))
        if not check(rc == 0, f"{variant}: camd explain exit {rc}: {err[-400:]}"):
            continue
        results[variant] = res
    sm, sg = softmax(LOGITS), sigmoid(LOGITS)
    expect = {"plain": sm, "softmax": sm, "logsoftmax": sm, "softmax_view": sm, "sigmoid": sg}
    for variant, probs in expect.items():
        if variant in results:
            check_predictions(variant, results[variant], probs)
            check(results[variant]["options"]["score"] == "logit", f"{variant}: score echo")
    plain = raw_map(results["plain"]) if "plain" in results else None
    for variant in ("softmax", "logsoftmax", "sigmoid", "softmax_view"):
        if variant in results and plain is not None:
            m = raw_map(results[variant])
            check(m.shape == plain.shape and np.array_equal(m, plain),
                  f"{variant}: the default map is not the plain export's logit map (max diff "
                  f"{np.abs(m - plain).max() if m.shape == plain.shape else 'shape'})")
            check(results[variant]["explanations"][0]["score"] ==
                  results["plain"]["explanations"][0]["score"], f"{variant}: explained score")
    # topK targets (the prediction forward decides the class) give the same map.
    rc, err, res = explain("softmax", "--target", "top1")
    if check(rc == 0, f"softmax top1: exit {rc}: {err[-300:]}") and plain is not None:
        check(res["explanations"][0]["index"] == TOP and np.array_equal(raw_map(res), plain),
              "softmax top1: same class and map as the plain export")
    # Differentiating the probability itself: the model's output vs camd's softmax of the plain
    # logits, the same function.
    rc1, e1, out_map = explain("softmax", "--target", str(TOP), "--score", "output")
    rc2, e2, sm_map = explain("plain", "--target", str(TOP), "--score", "softmax")
    if check(rc1 == 0 and rc2 == 0, f"score=output/softmax: exit {rc1}/{rc2}: {e1[-200:]}{e2[-200:]}"):
        a, b = raw_map(out_map), raw_map(sm_map)
        check(close(a, b, 1e-4), f"score=output on softmax.onnx vs score=softmax on plain.onnx: "
              f"max diff {np.abs(a - b).max():.3g} (max {np.abs(b).max():.3g})")
        check(not np.array_equal(a, plain), "score=output differentiates the probability, not the "
              "logit")
    # A softmax over half of the classes is no class probability: its values are the scores.
    if "softmax_part" in results:
        halves = np.concatenate([softmax(LOGITS[:500]), softmax(LOGITS[500:])])
        check_predictions("softmax_part", results["softmax_part"], softmax(halves), halves)
    # An explicit activation that agrees is accepted; one that contradicts the graph is refused.
    rc, err, res = explain("softmax", "--target", str(TOP), "--activation", "softmax")
    if check(rc == 0, f"softmax --activation softmax: exit {rc}: {err[-300:]}"):
        check_predictions("softmax --activation softmax", res, sm)
    rc, err, _ = explain("softmax", "--activation", "sigmoid")
    check(rc == 1 and "softmax" in err and "sigmoid" in err and "output" in err,
          f"contradicting --activation: exit {rc}, message {err.strip()[-300:]!r}")
    # camd inspect reports what it found.
    for variant, act in (("plain", "none"), ("softmax", "softmax"), ("logsoftmax", "log_softmax"),
                         ("sigmoid", "sigmoid"), ("softmax_view", "softmax"),
                         ("softmax_part", "none")):
        p = subprocess.run([CAMD, "inspect", "--json", os.path.join(FIX, variant + ".onnx")],
                           capture_output=True, text=True, timeout=120)
        if not check(p.returncode == 0, f"inspect {variant}: exit {p.returncode}"):
            continue
        out = json.loads(p.stdout)["outputs"][0]
        check(out["activation"] == act and (("logits" in out) == (act != "none")),
              f"inspect {variant}: {out}")
    print(f"{len(results)} variants checked, {len(FAILURES)} failures")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
