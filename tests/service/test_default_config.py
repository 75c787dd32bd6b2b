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
with Server(config=os.path.join(src, "config", "camd.json"), timeout=120) as srv:
    st, h, b = srv.json("GET", "/v1/models")
    C.check(st == 200 and b["default_model"] == "fashion_cam", f"default model listed: {b}")
    st, h, b = srv.json("POST", "/v1/explain", fixture("img3.png"), {"Content-Type": "image/png"})
    C.check(st == 200 and b["model"]["name"] == "fashion_cam" and b["explanations"],
            f"explain with the default model: {st} {str(b)[:300]}")
    C.check(srv.stop() == 0, "exit 0")
C.done("service.default_config")
