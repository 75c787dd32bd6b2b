#!/usr/bin/python3
"""Seeded cluttered-scene generator built from Fashion-MNIST ("fashion scenes").

Every scene is a square RGB canvas (default 128x128, uint8) holding exactly ONE Fashion-MNIST
item, enlarged from 28x28 to a random size between 40 and 80 px, placed at a random position
(always fully inside the canvas), and coloured with a random tint. The background is
deliberately cluttered so a classifier has to look at the right place:

  * a random two-colour gradient plus Gaussian pixel noise,
  * random straight lines and soft blobs (ellipses) of random colours,
  * 1-3 low-contrast *fragments* of other Fashion-MNIST items (crops of an item of a different
    class, enlarged and blended in at 18-35 % opacity).

The generator is a pure function of (split, index, seed): scene i of a split is always the
same image, independent of which other scenes were generated before (each scene has its own
numpy Generator seeded with SeedSequence([seed, split_code, index])). Pillow and numpy
versions affect the exact pixels (Pillow does the resizing and line drawing), so a set is
reproducible on one installation; cross-version byte identity is not promised.

Splits (no source item is shared between training and the held-out test set):

  ======== ============================================== ===================
  split    Fashion-MNIST source items                     default seed
  ======== ============================================== ===================
  "train"  official train file, items 0 .. 54999          TRAIN_SEED = 20240
  "val"    official train file, items 55000 .. 59999      VAL_SEED   = 20241
  "test"   official t10k (test) file, items 0 .. 9999     TEST_SEED  = 777001
  ======== ============================================== ===================

Scene `index` of a split uses source item `index % pool_size` (so test scenes 0..9999 show
each official test item once); fragments come from the same split's pool. The held-out test
set therefore shares neither images nor random streams with training.

Python API (import with ``sys.path.insert(0, "<repo>/models"); import scenes``)::

    s = scenes.make_scene("test", 17)        # -> Scene
    s.image        # uint8 array (H, W, 3), RGB
    s.label        # int, 0..9 (index into scenes.LABELS)
    s.label_name   # e.g. "Sneaker"
    s.box          # (x0, y0, x1, y1) tight box of the object's visible pixels;
                   #   x0/y0 inclusive, x1/y1 exclusive, pixel units, origin top-left,
                   #   i.e. the object occupies image[y0:y1, x0:x1]
    s.mask         # float32 (H, W) in [0, 1]: the object's opacity (alpha) per pixel;
                   #   the ground truth for pointing-game / energy-in-box metrics
    s.placement    # (x0, y0, x1, y1) of the whole resized 28x28 patch (box is inside it)
    s.item         # index of the source item in the split's Fashion-MNIST file
    s.split, s.index, s.seed

    scenes.generate("test", n=500, start=0)  # list of Scene
    scenes.batch("test", n=500)              # (images uint8 (N,H,W,3), labels int64 (N,),
                                             #  boxes int32 (N,4))

``size`` (canvas side, default 128) and ``seed`` (default: the split's seed) are keyword
arguments of every function. The CLI writes PNGs plus a JSON manifest::

    /usr/bin/python3 models/scenes.py --split test --n 8 --out /tmp/scenes
    /usr/bin/python3 models/scenes.py --split test --indices 0,2,9 --out /tmp/some
    # -> /tmp/scenes/test_00000.png ... and /tmp/scenes/manifest.json
    #    ([{"file", "split", "index", "label", "label_name", "box", "item"}, ...])

The Fashion-MNIST idx files are read from $FASHION_MNIST_DIR or
/usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist).
"""

import argparse
import gzip
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

DEFAULT_SIZE = 128
MIN_ITEM = 40   # side of the resized 28x28 patch, px (inclusive)
MAX_ITEM = 80   # (inclusive)

TRAIN_SEED = 20240
VAL_SEED = 20241
TEST_SEED = 777001

_SPLITS = {
    # name: (idx file prefix, first item, end item, split code, default seed)
    "train": ("train", 0, 55000, 1, TRAIN_SEED),
    "val": ("train", 55000, 60000, 2, VAL_SEED),
    "test": ("t10k", 0, 10000, 3, TEST_SEED),
}

_DATA_DIRS = [os.environ.get("FASHION_MNIST_DIR", ""), "/usr/share/datasets/fashion-mnist"]
_cache = {}


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def _load(prefix):
    """(images uint8 (N,28,28), labels uint8 (N,)) of one official Fashion-MNIST file pair."""
    if prefix not in _cache:
        for d in _DATA_DIRS:
            p = os.path.join(d, prefix + "-images-idx3-ubyte.gz") if d else ""
            if p and os.path.exists(p):
                imgs = _read_idx(p)
                labs = _read_idx(os.path.join(d, prefix + "-labels-idx1-ubyte.gz"))
                _cache[prefix] = (imgs, labs)
                break
        else:
            raise FileNotFoundError(
                "Fashion-MNIST %s-*-idx*-ubyte.gz not found (install dataset-fashion-mnist "
                "or set FASHION_MNIST_DIR)" % prefix)
    return _cache[prefix]


def split_pool(split):
    """(images (P,28,28) uint8, labels (P,) uint8) of the source items a split draws from."""
    if split not in _SPLITS:
        raise ValueError("unknown split %r (train, val, test)" % (split,))
    prefix, a, b, _, _ = _SPLITS[split]
    imgs, labs = _load(prefix)
    return imgs[a:b], labs[a:b]


def default_seed(split):
    return _SPLITS[split][4]


@dataclass
class Scene:
    image: np.ndarray          # (H, W, 3) uint8 RGB
    label: int
    label_name: str
    box: tuple                 # (x0, y0, x1, y1), x1/y1 exclusive
    mask: np.ndarray = field(repr=False)  # (H, W) float32 alpha of the object
    placement: tuple = ()
    item: int = 0
    split: str = ""
    index: int = 0
    seed: int = 0


def _lum(c):
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _rand_color(rng, lo=0, hi=256):
    return rng.integers(lo, hi, size=3).astype(np.float32)


def _resize_gray(g, w, h):
    """uint8 (28,28) -> float32 (h, w) in [0, 1], bilinear."""
    im = Image.fromarray(g, mode="L").resize((int(w), int(h)), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


def _grid(s):
    key = ("grid", s)
    if key not in _cache:
        _cache[key] = tuple(np.mgrid[0:s, 0:s].astype(np.float32) / (s - 1))
    return _cache[key]


def _background(rng, size):
    s = size
    c0 = _rand_color(rng, 20, 236)
    c1 = np.clip(c0 + rng.normal(0, 50, size=3), 0, 255).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = _grid(s)
    t = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    bg = c0 * (1 - t) + c1 * t
    base = bg.mean(axis=(0, 1))

    # Blobs and lines drawn on a separate layer, then softened and blended.
    layer = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, s, size=2)
        rx, ry = rng.uniform(4, s * 0.18, size=2)
        col = tuple(int(v) for v in np.clip(base + rng.normal(0, 45, size=3), 0, 255))
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=col)
    layer = layer.filter(ImageFilter.BoxBlur(radius=float(rng.uniform(1.0, 3.0))))
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0, x1, y1 = rng.uniform(-10, s + 10, size=4)
        col = tuple(int(v) for v in _rand_color(rng))
        draw.line([x0, y0, x1, y1], fill=col, width=int(rng.integers(1, 4)))
    return np.asarray(layer, dtype=np.float32), base


def _fragments(rng, canvas, pool_imgs, pool_labs, label, size):
    """Blends 1-3 low-contrast crops of other-class items into the canvas (in place)."""
    s = size
    n = int(rng.integers(1, 4))
    for _ in range(n):
        for _attempt in range(20):
            j = int(rng.integers(len(pool_imgs)))
            if pool_labs[j] != label:
                break
        g = pool_imgs[j]
        cw, ch = rng.integers(10, 21, size=2)
        cx, cy = rng.integers(0, 28 - cw + 1), rng.integers(0, 28 - ch + 1)
        crop = np.ascontiguousarray(g[cy:cy + ch, cx:cx + cw])
        k = rng.uniform(1.5, 3.0)
        w, h = max(2, int(round(cw * k))), max(2, int(round(ch * k)))
        a = _resize_gray(crop, w, h)
        x0 = int(rng.integers(-w // 3, s - 2 * w // 3))
        y0 = int(rng.integers(-h // 3, s - 2 * h // 3))
        col = _rand_color(rng)
        op = rng.uniform(0.18, 0.35)
        xa, ya = max(0, x0), max(0, y0)
        xb, yb = min(s, x0 + w), min(s, y0 + h)
        if xb <= xa or yb <= ya:
            continue
        alpha = np.clip(a[ya - y0:yb - y0, xa - x0:xb - x0] * 3.0, 0, 1)[..., None] * op
        region = canvas[ya:yb, xa:xb]
        canvas[ya:yb, xa:xb] = region * (1 - alpha) + col * alpha


def make_scene(split, index, size=DEFAULT_SIZE, seed=None):
    """Scene `index` (>= 0) of `split` ("train", "val", "test"); see the module docstring."""
    if seed is None:
        seed = default_seed(split)
    code = _SPLITS[split][3]
    pool_imgs, pool_labs = split_pool(split)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), code, int(index)]))
    s = int(size)
    item = int(index) % len(pool_imgs)
    label = int(pool_labs[item])

    canvas, base = _background(rng, s)
    _fragments(rng, canvas, pool_imgs, pool_labs, label, s)

    # The object.
    side = int(rng.integers(MIN_ITEM, MAX_ITEM + 1))
    side = min(side, s)
    aspect = rng.uniform(0.85, 1.15)
    w = int(min(s, max(8, round(side * aspect))))
    h = int(min(s, max(8, round(side / aspect))))
    x0 = int(rng.integers(0, s - w + 1))
    y0 = int(rng.integers(0, s - h + 1))
    g = _resize_gray(pool_imgs[item], w, h)
    if rng.random() < 0.5:
        g = g[:, ::-1]                     # horizontal flip (mirror-symmetric classes)
    alpha = np.clip(g * 4.0, 0, 1)          # Fashion-MNIST background is 0; dark cloth stays opaque
    local = canvas[y0:y0 + h, x0:x0 + w].reshape(-1, 3).mean(axis=0)
    tint = _rand_color(rng, 40, 256)
    if abs(_lum(tint) - _lum(local)) < 70:  # keep the object visible against its surroundings
        tint = 255.0 - tint
        if abs(_lum(tint) - _lum(local)) < 70:
            tint = np.full(3, 255.0 if _lum(local) < 128 else 20.0, dtype=np.float32)
    shade = (0.45 + 0.55 * g)[..., None]
    fg = tint * shade
    a3 = alpha[..., None]
    canvas[y0:y0 + h, x0:x0 + w] = canvas[y0:y0 + h, x0:x0 + w] * (1 - a3) + fg * a3

    sigma = rng.uniform(3.0, 14.0)
    canvas += rng.standard_normal(size=canvas.shape, dtype=np.float32) * np.float32(sigma)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)

    mask = np.zeros((s, s), dtype=np.float32)
    mask[y0:y0 + h, x0:x0 + w] = alpha
    ys, xs = np.nonzero(mask >= 0.5)
    if len(xs):
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    else:  # cannot happen for real Fashion-MNIST items; keep the API total
        box = (x0, y0, x0 + w, y0 + h)
    return Scene(image=image, label=label, label_name=LABELS[label], box=box, mask=mask,
                 placement=(x0, y0, x0 + w, y0 + h), item=item, split=split,
                 index=int(index), seed=int(seed))


def generate(split, n, start=0, size=DEFAULT_SIZE, seed=None):
    """Scenes start .. start+n-1 of a split, as a list of Scene."""
    return [make_scene(split, i, size=size, seed=seed) for i in range(start, start + n)]


def batch(split, n, start=0, size=DEFAULT_SIZE, seed=None):
    """(images uint8 (N,H,W,3), labels int64 (N,), boxes int32 (N,4)) for scenes start..+n-1."""
    imgs = np.empty((n, size, size, 3), dtype=np.uint8)
    labs = np.empty((n,), dtype=np.int64)
    boxes = np.empty((n, 4), dtype=np.int32)
    for k in range(n):
        sc = make_scene(split, start + k, size=size, seed=seed)
        imgs[k], labs[k], boxes[k] = sc.image, sc.label, sc.box
    return imgs, labs, boxes


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write Fashion-MNIST clutter scenes as PNGs.")
    ap.add_argument("--split", default="test", choices=sorted(_SPLITS))
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE)
    ap.add_argument("--seed", type=int, default=None, help="default: the split's seed")
    ap.add_argument("--indices", default=None,
                    help="comma-separated scene indices (instead of --start/--n)")
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args(argv)
    if args.indices:
        todo = [make_scene(args.split, int(i), args.size, args.seed)
                for i in args.indices.split(",")]
    else:
        todo = generate(args.split, args.n, args.start, args.size, args.seed)
    os.makedirs(args.out, exist_ok=True)
    manifest = []
    for sc in todo:
        name = "%s_%05d.png" % (args.split, sc.index)
        Image.fromarray(sc.image, mode="RGB").save(os.path.join(args.out, name))
        manifest.append({"file": name, "split": sc.split, "index": sc.index, "seed": sc.seed,
                         "label": sc.label, "label_name": sc.label_name,
                         "box": list(sc.box), "item": sc.item})
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("wrote %d scenes to %s" % (len(manifest), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
