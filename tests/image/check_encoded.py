# Checks with PIL the PNGs that test_image encoded with camd_png_encode (round trip).
"""Decodes the PNGs that test_image wrote with camd_png_encode using PIL and compares them with
the raw pixels test_image wrote next to them. Usage: check_encoded.py CASES_DIR"""
import os
import sys

import numpy as np
from PIL import Image

d = sys.argv[1]
modes = {1: "L", 3: "RGB", 4: "RGBA"}
sizes = [(57, 33), (311, 420), (30000, 3)]  # one piece; pieces of rows; a row longer than a piece
bad = 0
for w, h in sizes:
    for c, mode in modes.items():
        png = os.path.join(d, f"encoded_c{c}_{w}x{h}.png")
        raw = os.path.join(d, f"encoded_c{c}_{w}x{h}.raw")
        if not os.path.exists(png):
            print(f"missing {png} (test_image did not run?)")
            sys.exit(1)
        im = Image.open(png)
        im.load()
        want = np.fromfile(raw, dtype=np.uint8)
        got = np.asarray(im).reshape(-1)
        ok = im.mode == mode and im.size == (w, h) and got.shape == want.shape and (got == want).all()
        print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(png)}: mode {im.mode}, size {im.size}")
        bad += not ok
sys.exit(1 if bad else 0)
