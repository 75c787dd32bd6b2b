#!/usr/bin/python3
"""Checks models/scenes.py: determinism, split independence, box/mask consistency."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
import scenes  # noqa: E402


def main():
    fails = 0

    def check(cond, msg):
        nonlocal fails
        if not cond:
            print("FAIL:", msg)
            fails += 1

    for split in ("train", "val", "test"):
        for i in (0, 1, 7, 12345):
            a = scenes.make_scene(split, i)
            b = scenes.make_scene(split, i)
            check(np.array_equal(a.image, b.image) and a.box == b.box, "%s %d not deterministic"
                  % (split, i))
            check(a.image.shape == (128, 128, 3) and a.image.dtype == np.uint8, "image shape/type")
            check(0 <= a.label < 10 and a.label_name == scenes.LABELS[a.label], "label")
            x0, y0, x1, y1 = a.box
            check(0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128, "box %s out of range" % (a.box,))
            side = max(x1 - x0, y1 - y0)
            check(side <= scenes.MAX_ITEM * 1.15 + 1, "box %s too large" % (a.box,))
            m = a.mask >= 0.5
            ys, xs = np.nonzero(m)
            check((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == a.box, "box != mask bbox")
            px0, py0, px1, py1 = a.placement
            check(px0 <= x0 and py0 <= y0 and x1 <= px1 and y1 <= py1, "box outside placement")
    check(not np.array_equal(scenes.make_scene("test", 3).image,
                             scenes.make_scene("train", 3).image), "splits share scenes")
    check(scenes.make_scene("test", 5).item == 5, "test scene i shows t10k item i")
    _, labs = scenes.split_pool("test")
    check(scenes.make_scene("test", 5).label == int(labs[5]), "test label from t10k")
    imgs, labels, boxes = scenes.batch("test", 3, start=4)
    check(imgs.shape == (3, 128, 128, 3) and labels.shape == (3,) and boxes.shape == (3, 4),
          "batch shapes")
    check(tuple(boxes[1]) == scenes.make_scene("test", 5).box, "batch matches make_scene")
    small = scenes.make_scene("val", 2, size=96)
    check(small.image.shape == (96, 96, 3), "size option")
    print("ok" if not fails else "%d failure(s)" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
