#!/usr/bin/python3
# Service test: config/camd.json as shipped serves the default model (SKIPPED until it is trained).
"""Usage: test_default_config.py CAMD FIXTURES SOURCE_DIR"""
import os
import sys

import camdtest as ct
from camdtest import Server, fixture

args = ct.init()
src = args[0]
if not os.path.exists(os.path.join(src, "models", "fashion_cam.onnx")):
    print("SKIPPED: models/fashion_cam.onnx is not there yet (models/train_default.py)")
    sys.exit(77)
C = ct.Checker()
# The shipped config must preprocess exactly as the model was trained (models/fashion_cam.json).
import json
model_cfg = json.load(open(os.path.join(src, "models", "fashion_cam.json")))
entry = [m for m in json.load(open(os.path.join(src, "config", "camd.json")))["models"]
         if m["name"] == "fashion_cam"][0]
for key in ("mean", "std", "scale", "resize", "default_layer", "default_method"):
    C.check(entry.get(key) == model_cfg.get(key),
            f"config/camd.json {key} = {entry.get(key)} matches models/fashion_cam.json {model_cfg.get(key)}")
C.check(entry.get("width") == model_cfg.get("input_width") and
        entry.get("height") == model_cfg.get("input_height"), "input size matches")
# A real scene of the held-out split is classified as its label through the shipped config.
sys.path.insert(0, os.path.join(src, "models"))
import scenes  # noqa: E402
import io
from PIL import Image
hits = 0
with Server(config=os.path.join(src, "config", "camd.json"), timeout=120) as srv:
    for i in range(20):
        sc = scenes.make_scene("test", i)
        buf = io.BytesIO()
        Image.fromarray(sc.image).save(buf, format="PNG")
        st, h, b = srv.json("POST", "/v1/models/fashion_cam/predict", buf.getvalue(),
                            {"Content-Type": "image/png"})
        hits += int(st == 200 and b["predictions"][0]["index"] == sc.label)
    srv.stop()
acc = hits / 20
C.check(acc >= model_cfg["test_accuracy"] - 0.25,
        f"accuracy through the shipped config on 20 held-out scenes: {acc:.2f} "
        f"(model's test accuracy {model_cfg['test_accuracy']})")
with Server(config=os.path.join(src, "config", "camd.json"), timeout=120) as srv:
    st, h, b = srv.json("GET", "/v1/models")
    C.check(st == 200 and b["default_model"] == "fashion_cam", f"default model listed: {b}")
    st, h, b = srv.json("POST", "/v1/explain", fixture("img3.png"), {"Content-Type": "image/png"})
    C.check(st == 200 and b["model"]["name"] == "fashion_cam" and b["explanations"],
            f"explain with the default model: {st} {str(b)[:300]}")
    C.check(srv.stop() == 0, "exit 0")
C.done("service.default_config")
