#!/usr/bin/python3
# End-to-end checks of `camd explain` against PIL decoding and PyTorch references (make_fixture.py).
"""usage: check_explain.py CAMD_BINARY FIXTURE_DIR CASE

CASE is one of:
  png, jpeg   run camd explain on chelsea.png / chelsea.jpg with resnet18: the overlay (--out)
              and the base64 PNGs in the JSON decode with PIL to the photo's size; predictions
              equal PyTorch's logits (torchvision Resize(256)+CenterCrop(224)+Normalize on the
              PIL image, 1e-3 relative); the Grad-CAM raw map (top class, and class 281 named by
              its label) equals PyTorch's Grad-CAM of layer4 within 1e-3 after min-max.
  errors      usage errors exit 2 and name the flag/value and the valid choices; failures
              (corrupt image, labels count) exit 1 with a message naming the cause.
  fused       --layer A,B: the fused map against the fusion of the two single-layer maps.
  config      --config FILE --name NAME with a top-level "models" array and server keys.
"""

import base64
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def run(camd, args, cwd):
    p = subprocess.run([camd, "explain"] + args, cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    return p.returncode, p.stdout, p.stderr


def decode_png(b64):
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def case_photo(camd, d, photo):
    ref = json.load(open(os.path.join(d, "reference.json")))
    layer, r = ref["layer"], ref["photos"][photo]
    w, h = r["size"]
    with tempfile.TemporaryDirectory() as tmp:
        out, js = os.path.join(tmp, "overlay.png"), os.path.join(tmp, "result.json")
        rc, so, se = run(camd, ["--model", "resnet18.onnx", "--labels", "resnet18.labels.txt",
                                "--image", photo, "--method", "gradcam", "--layer", layer,
                                "--outputs", "overlay,heatmap,mask,raw,bbox", "--topk", "10",
                                "--out", out, "--json", js], d)
        check(rc == 0, f"{photo}: exit {rc}: {se}")
        if rc:
            return
        im = Image.open(out)
        check(im.format == "PNG" and im.size == (w, h) and im.mode == "RGB",
              f"{photo}: overlay {im.format} {im.size} {im.mode}, expected PNG {(w, h)} RGB")
        res = json.load(open(js))
        check(res["method"] == "gradcam" and res["layer"] == layer, f"{photo}: method/layer")
        check(res["image"]["width"] == w and res["image"]["height"] == h, f"{photo}: image size")
        logits = np.array(r["logits"])
        preds = res["predictions"]
        check(len(preds) == 10, f"{photo}: {len(preds)} predictions, expected 10")
        order = np.argsort(-logits, kind="stable")
        scale = np.abs(logits).max()
        for k, p in enumerate(preds):
            ref_v = logits[p["index"]]
            check(abs(p["score"] - ref_v) <= 1e-3 * scale,
                  f"{photo}: logit of class {p['index']}: camd {p['score']} torch {ref_v}")
            check(p["label"] == open(os.path.join(d, "resnet18.labels.txt")).read()
                  .splitlines()[p["index"]], f"{photo}: label of {p['index']}")
            sm = np.exp(logits - logits.max())
            sm /= sm.sum()
            check(abs(p["probability"] - sm[p["index"]]) <= 1e-3 * sm.max() + 1e-7,
                  f"{photo}: softmax of class {p['index']}")
        check(preds[0]["index"] == int(order[0]),
              f"{photo}: top class {preds[0]['index']} vs torch {int(order[0])}")
        ex = res["explanations"]
        check(len(ex) == 1 and ex[0]["index"] == r["top"], f"{photo}: explained class")
        x = ex[0]
        check(x["method"] == "gradcam" and x["layer"] == layer, f"{photo}: map method/layer")
        mw, mh = r["map_size"]
        check(x["raw"]["width"] == mw and x["raw"]["height"] == mh, f"{photo}: raw map size")
        diff = np.abs(np.array(x["raw"]["values"]) - np.array(r["gradcam_top"])).max()
        check(diff <= 1e-3, f"{photo}: Grad-CAM differs from PyTorch by {diff}")
        for key, mode in (("overlay", "RGB"), ("heatmap", "RGB"), ("mask", "L")):
            img = decode_png(x[key])
            check(img.size == (w, h) and img.mode == mode,
                  f"{photo}: {key} PNG {img.size} {img.mode}, expected {(w, h)} {mode}")
        ov = np.asarray(decode_png(x["overlay"]))
        check(np.array_equal(ov, np.asarray(im)), f"{photo}: --out differs from JSON overlay")
        pk, bb = x["peak"], x["bbox"]
        check(0 <= pk["x"] < w and 0 <= pk["y"] < h and pk["value"] == 1.0, f"{photo}: peak {pk}")
        check(0 <= bb["x0"] <= bb["x1"] < w and 0 <= bb["y0"] <= bb["y1"] < h,
              f"{photo}: bbox {bb}")
        mask = np.asarray(decode_png(x["mask"]))
        check(mask[pk["y"], pk["x"]] == 255, f"{photo}: mask not set at the peak")
        ys, xs = np.nonzero(mask)
        check(bb["x0"] >= xs.min() and bb["x1"] <= xs.max() and bb["y0"] >= ys.min() and
              bb["y1"] <= ys.max(), f"{photo}: bbox outside the mask")
        check(res["options"]["method"] == "gradcam" and res["options"]["colormap"] == "jet" and
              res["options"]["alpha"] == 0.5 and res["options"]["normalize"] == "minmax",
              f"{photo}: options echo {res['options']}")
        for t in ("decode", "preprocess", "forward", "backward", "cam", "render", "total"):
            check(res["timings_ms"].get(t, -1) >= 0, f"{photo}: timing {t}")

        # Class 281 named by its label (which contains a comma), with the case changed.
        rc, so, se = run(camd, ["--model", "resnet18.onnx", "--labels", "resnet18.labels.txt",
                                "--image", photo, "--layer", layer, "--target",
                                "TABBY, tabby cat", "--outputs", "raw", "--json", "-"], d)
        check(rc == 0, f"{photo}: --target label: exit {rc}: {se}")
        if rc == 0:
            res = json.loads(so)
            x = res["explanations"][0]
            check(x["index"] == 281 and x["label"] == "tabby, tabby cat", f"{photo}: target 281")
            check(abs(x["score"] - logits[281]) <= 1e-3 * scale, f"{photo}: score of 281")
            diff = np.abs(np.array(x["raw"]["values"]) - np.array(r["gradcam_281"])).max()
            check(diff <= 1e-3, f"{photo}: Grad-CAM of 281 differs from PyTorch by {diff}")
            check("overlay" not in x and "bbox" not in x, f"{photo}: outputs=raw gave more")


def expect(camd, d, args, code, needles, what):
    rc, so, se = run(camd, args, d)
    check(rc == code, f"{what}: exit {rc}, expected {code} (stderr: {se.strip()})")
    for n in needles:
        check(n in se, f"{what}: stderr lacks {n!r}: {se.strip()}")


def case_errors(camd, d):
    base = ["--model", "resnet18.onnx", "--labels", "resnet18.labels.txt", "--image",
            "chelsea.png"]
    expect(camd, d, base + ["--method", "gradcma"], 2,
           ["--method", "gradcma", "gradcam", "scorecam"], "unknown method")
    expect(camd, d, base + ["--layer", "no_such_layer"], 2,
           ["--layer", "no_such_layer", "CAM layers", "'/layer4/layer4.1/relu_1/Relu_output_0'"], "unknown layer")
    expect(camd, d, base + ["--target", "tabby kitten"], 2,
           ["--target", "tabby kitten", "topK", "similar labels", "281 'tabby, tabby cat'"],
           "bad target label")
    expect(camd, d, base + ["--target", "1000"], 2, ["1000", "0..999"], "target out of range")
    expect(camd, d, base + ["--target", "top17"], 2, ["top17", "1..16"], "topK too large")
    expect(camd, d, base + ["--alpha", "1.5"], 2, ["--alpha", "1.5", "0..1"], "bad alpha")
    expect(camd, d, base + ["--colormap", "rainbow"], 2, ["rainbow", "jet", "viridis"],
           "bad colormap")
    expect(camd, d, base + ["--outputs", "overlay,svg"], 2, ["svg", "heatmap", "mask"],
           "bad outputs")
    expect(camd, d, base + ["--resize", "crop"], 2, ["--resize", "crop", "stretch", "shorter"],
           "bad resize")
    expect(camd, d, base + ["--frobnicate"], 2, ["--frobnicate", "--method"], "unknown flag")
    expect(camd, d, ["--model", "resnet18.onnx"], 2, ["--image"], "missing --image")
    expect(camd, d, base[:4] + ["--image", "corrupt.jpg"], 1, ["corrupt.jpg", "image 0"],
           "corrupt image")
    expect(camd, d, base[:4] + ["--image", "resnet18.labels.txt"], 1, ["image 0", "PNG"],
           "not an image")
    expect(camd, d, ["--model", "resnet18.onnx", "--labels", "resnet18.short.labels.txt",
                     "--image", "chelsea.png"], 1, ["999 lines", "1000 values"],
           "labels count")
    expect(camd, d, base[:4] + ["--image", "chelsea.png", "--size", "200"], 1,
           ["[1, 3, 224, 224]", "[1, 3, 200, 200]"], "size mismatch")
    expect(camd, d, ["--model", "missing.onnx", "--image", "chelsea.png"], 1, ["missing.onnx"],
           "missing model")
    l4 = "/layer4/layer4.1/relu_1/Relu_output_0"
    expect(camd, d, base + ["--layer", l4 + ",no_such_layer"], 2,
           ["--layer", "no_such_layer", "CAM layers"], "unknown layer in a layer list")
    expect(camd, d, base + ["--layer", l4 + "," + l4], 2, ["given twice"], "repeated layer")
    expect(camd, d, base + ["--layer", ",".join([l4] * 9)], 2, ["at most 8"], "9 layers")
    expect(camd, d, base + ["--layer", l4 + ","], 2, ["empty item"], "empty layer item")
    rc, so, se = run(camd, ["--help"], d)
    check(rc == 0 and "default 0.5" in so and "exit status" in so, "--help")


def case_fused(camd, d):
    """layer=A,B: the raw map is 224 x 224 and equals the fusion (each map ReLU'd, scaled
    (m - min) / (max - min + 1e-7), resized with torch's bilinear interpolation, averaged, scaled
    again) of the two single-layer raw maps camd gives with relu=false, normalize=none (those are
    checked against PyTorch above and in the CAM suite; the fusion formula itself against
    pytorch-grad-cam's in the CAM suite's *_fused cases)."""
    import torch
    import torch.nn.functional as F
    layers = ["/layer4/layer4.1/relu_1/Relu_output_0", "/layer3/layer3.1/relu_1/Relu_output_0"]
    base = ["--model", "resnet18.onnx", "--labels", "resnet18.labels.txt", "--image",
            "chelsea.png", "--method", "gradcam", "--target", "281", "--outputs", "raw",
            "--json", "-"]

    def raw(layer, extra):
        rc, so, se = run(camd, base + ["--layer", layer] + extra, d)
        check(rc == 0, f"fused: layer {layer}: exit {rc}: {se}")
        if rc:
            return None
        x = json.loads(so)["explanations"][0]["raw"]
        return np.array(x["values"], dtype=np.float64).reshape(x["height"], x["width"])

    def scale(m):
        m = m - m.min()
        return m / (1e-7 + m.max())

    fused = raw(",".join(layers), [])
    singles = [raw(layer, ["--no-relu", "--normalize", "none"]) for layer in layers]
    if fused is None or any(m is None for m in singles):
        return
    check(fused.shape == (224, 224), f"fused: raw map {fused.shape}, expected 224 x 224")
    acc = 0
    for m in singles:
        up = F.interpolate(torch.from_numpy(scale(np.maximum(m, 0)))[None, None], size=(224, 224),
                           mode="bilinear", align_corners=False)[0, 0].numpy()
        acc = acc + up / len(singles)
    diff = np.abs(fused - scale(acc)).max()
    check(diff <= 1e-4, f"fused: camd's fused map differs from the fusion of its layers by {diff}")


def case_config(camd, d):
    ref = json.load(open(os.path.join(d, "reference.json")))
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        cfg = {"listen": "127.0.0.1:8080", "workers": 2,
               "models": [{"name": "other", "path": "nothing.onnx"},
                          {"name": "r18", "path": "../resnet18.onnx",
                           "labels": "../resnet18.labels.txt", "resize": "shorter",
                           "resize_shorter": 256, "input_size": 224, "default_method": "gradcam++",
                           "default_layer": ref["layer"], "activation": "sigmoid"}]}
        path = os.path.join(tmp, "camd.json")
        json.dump(cfg, open(path, "w"))
        rc, so, se = run(camd, ["--config", path, "--name", "r18", "--image", "chelsea.png",
                                "--json", "-", "--outputs", "none"], d)
        check(rc == 0, f"config: exit {rc}: {se}")
        if rc == 0:
            res = json.loads(so)
            check(res["model"]["name"] == "r18" and res["method"] == "gradcam++" and
                  res["layer"] == ref["layer"], f"config: defaults not taken: {res['method']}")
            p = res["predictions"][0]
            logits = np.array(ref["photos"]["chelsea.png"]["logits"])
            check(abs(p["probability"] - 1 / (1 + np.exp(-logits[p["index"]]))) < 1e-4,
                  "config: sigmoid activation")
        expect(camd, d, ["--config", path, "--name", "nope", "--image", "chelsea.png"], 2,
               ["nope", "other", "r18"], "config: unknown name")
        cfg["models"][1]["colour"] = "rgb"
        json.dump(cfg, open(path, "w"))
        expect(camd, d, ["--config", path, "--name", "r18", "--image", "chelsea.png"], 1,
               ["colour", "r18"], "config: unknown key")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    camd, d, case = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    if case == "png":
        case_photo(camd, d, "chelsea.png")
    elif case == "jpeg":
        case_photo(camd, d, "chelsea.jpg")
    elif case == "errors":
        case_errors(camd, d)
    elif case == "config":
        case_config(camd, d)
    elif case == "fused":
        case_fused(camd, d)
    else:
        print(f"unknown case {case}", file=sys.stderr)
        return 2
    print(f"{case}: {'FAILED ' + str(len(FAILURES)) if FAILURES else 'ok'}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
