# Generates image edge cases + independent references (PIL, ImageMagick, torchvision...) for test_image.
"""Generates image edge cases and independent reference outputs for tests/unit/test_image.c.

Usage: make_cases.py OUT_DIR

Images are written with PIL and ImageMagick (/usr/bin/convert); references come from PIL
(decoding, EXIF transpose, BILINEAR resize), torchvision (Resize + CenterCrop + ToTensor +
Normalize; PIL + numpy when torchvision is missing), torch (bilinear upsampling), matplotlib
(colormaps) and skimage (connected components). Everything the C test needs is listed in
OUT_DIR/manifest.txt, one case per line (see the write_* helpers for the columns).
"""
import io
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
from PIL import Image, ImageOps

SKDATA = "/usr/lib/python3/dist-packages/skimage/data"
CONVERT = "/usr/bin/convert"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
manifest = []


def path(name):
    return os.path.join(out, name)


def save_rgb_ref(name, im):
    """Writes the image's RGB pixels (PIL's conversion) as raw bytes; returns (file, w, h)."""
    rgb = im.convert("RGB")
    ref = name + ".rgb"
    with open(path(ref), "wb") as f:
        f.write(rgb.tobytes())
    return ref, rgb.width, rgb.height


def add_decode(name, tol, ref_im=None):
    """decode FILE REF.rgb W H TOL: camd's decode must equal PIL's RGB within TOL levels."""
    if ref_im is None:
        ref_im = Image.open(path(name))
        ref_im.load()
    ref, w, h = save_rgb_ref(name, ref_im)
    manifest.append(f"decode {name} {ref} {w} {h} {tol}")


def add_error(name, status):
    """error FILE STATUS: decode must fail with CAMD_E_<STATUS> and leave no image."""
    manifest.append(f"error {name} {status}")


def convert(*args):
    subprocess.run([CONVERT, *args], check=True)


def photo(name):
    return Image.open(os.path.join(SKDATA, name)).convert("RGB")


rng = np.random.default_rng(1234)
chelsea = photo("chelsea.png")  # 451 x 300
astronaut = photo("astronaut.png")  # 512 x 512
small = chelsea.resize((61, 37), Image.BILINEAR)

# ---------------------------------------------------------------- PNG decode cases
for name, im in [("chelsea.png", chelsea), ("astronaut.png", astronaut)]:
    shutil.copyfile(os.path.join(SKDATA, name), path(name))
    add_decode(name, 0)

Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8), "RGB").save(path("px1x1.png"))
add_decode("px1x1.png", 0)
Image.fromarray(rng.integers(0, 256, (1, 20000, 3), dtype=np.uint8), "RGB").save(
    path("wide1x20000.png"))
add_decode("wide1x20000.png", 0)
Image.fromarray(rng.integers(0, 256, (20000, 1), dtype=np.uint8), "L").save(
    path("tall20000x1_gray.png"))
add_decode("tall20000x1_gray.png", 0)

small.convert("L").save(path("gray8.png"))
add_decode("gray8.png", 0)
small.convert("1").save(path("gray1.png"))
add_decode("gray1.png", 0)
convert(path("gray8.png"), "-depth", "2", path("gray2.png"))
add_decode("gray2.png", 0)
convert(path("gray8.png"), "-depth", "4", path("gray4.png"))
add_decode("gray4.png", 0)

la = small.convert("LA")
la.putalpha(Image.fromarray(rng.integers(0, 256, (37, 61), dtype=np.uint8), "L"))
la.save(path("gray_alpha.png"))
add_decode("gray_alpha.png", 0)

rgba = small.convert("RGBA")
rgba.putalpha(Image.fromarray(rng.integers(0, 256, (37, 61), dtype=np.uint8), "L"))
rgba.save(path("rgba.png"))
add_decode("rgba.png", 0)

pal = small.quantize(colors=37)
pal.save(path("palette.png"))
add_decode("palette.png", 0)
pal.save(path("palette_trns.png"), transparency=3)
add_decode("palette_trns.png", 0)
small.quantize(colors=4).save(path("palette2bit.png"), bits=2)
add_decode("palette2bit.png", 0)

convert(path("chelsea.png"), "-interlace", "PNG", path("interlaced.png"))
add_decode("interlaced.png", 0)
convert(path("rgba.png"), "-interlace", "PNG", path("interlaced_rgba.png"))
add_decode("interlaced_rgba.png", 0)

# 16-bit: values with non-trivial low bytes. The reference is the high byte of each sample,
# computed from the array we wrote (PIL gives the same for RGB;16B).
g16 = (rng.integers(0, 65536, (23, 31))).astype(np.uint16)
Image.fromarray(g16, "I;16").save(path("gray16.png"))
add_decode("gray16.png", 0, Image.fromarray((g16 >> 8).astype(np.uint8), "L"))
small.save(path("small.png"))
convert(path("small.png"), "-depth", "16",
        "-evaluate", "add", "0.13%", "-type", "TrueColor", path("rgb16.png"))
add_decode("rgb16.png", 0)
convert(path("rgba.png"), "-depth", "16", "-evaluate", "add", "0.13%", path("rgba16.png"))
add_decode("rgba16.png", 0)
convert(path("gray_alpha.png"), "-depth", "16", "-evaluate", "add", "0.13%", "-define",
        "png:bit-depth=16", "-define", "png:color-type=4", path("gray_alpha16.png"))
add_decode("gray_alpha16.png", 0)

# ---------------------------------------------------------------- JPEG decode cases
chelsea.save(path("baseline.jpg"), quality=90)
add_decode("baseline.jpg", 2)
chelsea.save(path("baseline444.jpg"), quality=95, subsampling=0)
add_decode("baseline444.jpg", 2)
astronaut.save(path("progressive.jpg"), quality=85, progressive=True)
add_decode("progressive.jpg", 2)
chelsea.convert("L").save(path("gray.jpg"), quality=90)
add_decode("gray.jpg", 2)
small.convert("CMYK").save(path("cmyk_pil.jpg"), quality=95)
add_decode("cmyk_pil.jpg", 2)
convert(path("chelsea.png"), "-colorspace", "CMYK", "-quality", "92", path("cmyk_im.jpg"))
add_decode("cmyk_im.jpg", 2)
Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8), "RGB").save(path("px1x1.jpg"))
add_decode("px1x1.jpg", 2)
convert(path("chelsea.png"), "-interlace", "JPEG", "-quality", "80", path("progressive_im.jpg"))
add_decode("progressive_im.jpg", 2)


def exif_block(orientation, big_endian=False, tag_type=3):
    """APP1 payload "Exif\\0\\0" + TIFF header + IFD0 with one Orientation entry."""
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    if tag_type in (3, 5):
        value = struct.pack(e + "HH", orientation, 0)
    else:
        value = struct.pack(e + "I", orientation)
    ifd = struct.pack(e + "H", 1) + struct.pack(e + "HHI", 0x0112, tag_type, 1) + value
    ifd += struct.pack(e + "I", 0)
    return b"Exif\x00\x00" + tiff + ifd


def insert_app1(jpeg_bytes, payload):
    assert jpeg_bytes[:2] == b"\xff\xd8"
    seg = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg_bytes[:2] + seg + jpeg_bytes[2:]


# Orientations written by PIL itself (little-endian Exif); the reference is PIL's
# ImageOps.exif_transpose. The picture is not square so swapped dimensions show.
base = chelsea.resize((64, 40), Image.BILINEAR)
for o in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = o
    name = f"exif{o}.jpg"
    base.save(path(name), quality=95, exif=exif.tobytes())
    im = Image.open(path(name))
    assert im.getexif().get(0x0112) == o
    add_decode(name, 0, ImageOps.exif_transpose(im))

buf = io.BytesIO()
base.save(buf, format="JPEG", quality=95)
plain = buf.getvalue()
for o in (3, 6, 8):  # big-endian Exif, written by hand
    name = f"exif{o}_mm.jpg"
    with open(path(name), "wb") as f:
        f.write(insert_app1(plain, exif_block(o, big_endian=True)))
    add_decode(name, 0, ImageOps.exif_transpose(Image.open(path(name))))

# Malformed Exif blocks: decoding must succeed and ignore them (orientation 1).
bad_exif = {
    "exif_bad_ifd_offset.jpg": b"Exif\x00\x00II*\x00" + struct.pack("<I", 0xFFFFFF00),
    "exif_bad_count.jpg": b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 0xFFFF) + b"\x12\x01",
    "exif_short.jpg": b"Exif\x00\x00II",
    "exif_bad_magic.jpg": b"Exif\x00\x00XX*\x00\x08\x00\x00\x00",
    "exif_bad_value.jpg": exif_block(9),
    "exif_bad_type.jpg": exif_block(6, tag_type=5),  # RATIONAL: not a valid Orientation
}
for name, payload in bad_exif.items():
    with open(path(name), "wb") as f:
        f.write(insert_app1(plain, payload))
    add_decode(name, 0, Image.open(io.BytesIO(plain)))

# ---------------------------------------------------------------- corrupt / unsupported inputs
def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


png_bytes = open(path("chelsea.png"), "rb").read()
jpg_bytes = open(path("baseline.jpg"), "rb").read()
prog_bytes = open(path("progressive.jpg"), "rb").read()
write("trunc_half.png", png_bytes[: len(png_bytes) // 2])
write("trunc_header.png", png_bytes[:20])
write("trunc_sig.png", png_bytes[:8])
write("trunc_no_iend.png", png_bytes[:-12])
corrupt = bytearray(png_bytes)
corrupt[len(corrupt) // 2] ^= 0xFF  # IDAT byte: CRC mismatch
write("bad_crc.png", bytes(corrupt))
hdr = bytearray(png_bytes)
hdr[16:20] = b"\x00\x00\x00\x00"  # width 0 (IHDR CRC now wrong too)
write("bad_ihdr.png", bytes(hdr))
write("trunc_half.jpg", jpg_bytes[: len(jpg_bytes) // 2])
write("trunc_header.jpg", jpg_bytes[:200])
write("trunc_soi.jpg", jpg_bytes[:3])
write("trunc_progressive.jpg", prog_bytes[: len(prog_bytes) * 2 // 3])
write("trunc_no_eoi.jpg", jpg_bytes[:-2])
garbled = bytearray(jpg_bytes)
for i in range(len(garbled) // 2, len(garbled) // 2 + 64):
    garbled[i] = 0xFF if i % 7 == 0 else garbled[i] ^ 0x5A
write("garbled.jpg", bytes(garbled))
for n in ("trunc_half.png", "trunc_header.png", "trunc_sig.png", "trunc_no_iend.png",
          "bad_crc.png", "bad_ihdr.png", "trunc_half.jpg", "trunc_header.jpg", "trunc_soi.jpg",
          "trunc_progressive.jpg", "trunc_no_eoi.jpg", "garbled.jpg"):
    add_error(n, "FORMAT")
small.save(path("small.gif"))
small.save(path("small.bmp"))
small.save(path("small.webp")) if "WEBP" in Image.SAVE else write("small.webp", b"RIFF\0\0\0\0WEBP")
write("empty.bin", b"")
write("text.txt", b"hello, not an image\n")
for n in ("small.gif", "small.bmp", "small.webp", "empty.bin", "text.txt"):
    add_error(n, "MEDIA")

# ---------------------------------------------------------------- resize (PIL BILINEAR)
def add_resize(name, im, size):
    """resize SRC.rgb SW SH REF.rgb DW DH: camd_image_resize vs PIL within 1 level."""
    src = name + ".src.rgb"
    with open(path(src), "wb") as f:
        f.write(im.tobytes())
    ref = name + ".ref.rgb"
    with open(path(ref), "wb") as f:
        f.write(im.resize(size, Image.BILINEAR).tobytes())
    manifest.append(f"resize {src} {im.width} {im.height} {ref} {size[0]} {size[1]}")


add_resize("chelsea_224", chelsea, (224, 224))
add_resize("chelsea_down", chelsea, (100, 37))
add_resize("chelsea_mixed", chelsea, (600, 71))
add_resize("astronaut_7x3", astronaut, (7, 3))
add_resize("small_up", small, (250, 150))
add_resize("px_up", Image.fromarray(rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)), (17, 9))
add_resize("wide_down", Image.open(path("wide1x20000.png")).convert("RGB"), (313, 1))
add_resize("same", small, (61, 37))

# ---------------------------------------------------------------- preprocess (torchvision)
try:
    import torch  # noqa: F401
    from torchvision import transforms as T
    HAVE_TV = True
except Exception:  # pragma: no cover - fallback path
    HAVE_TV = False


def tv_round(x):
    return int(round(x))  # Python's round: half to even, as torchvision's CenterCrop


def reference_tensor(im, mode, W, H, S, channels):
    """The model tensor for image `im`, float32 CHW."""
    if channels == 1:
        im = im.convert("L")
    if HAVE_TV:
        steps = []
        if mode == "stretch":
            steps.append(T.Resize((H, W), interpolation=T.InterpolationMode.BILINEAR))
        else:
            steps += [T.Resize(S, interpolation=T.InterpolationMode.BILINEAR),
                      T.CenterCrop((H, W))]
        mean = IMAGENET_MEAN[:channels]
        std = IMAGENET_STD[:channels]
        steps += [T.ToTensor(), T.Normalize(mean, std)]
        return T.Compose(steps)(im).numpy().astype(np.float32)
    # PIL + numpy restatement of the same transforms
    if mode == "stretch":
        r = im.resize((W, H), Image.BILINEAR)
        a = np.asarray(r, dtype=np.float32)
    else:
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        nl = int(S * long / short)
        nw, nh = (S, nl) if w <= h else (nl, S)
        r = np.asarray(im.resize((nw, nh), Image.BILINEAR), dtype=np.float32)
        if r.ndim == 2:
            r = r[:, :, None]
        pl, pt = max(W - nw, 0) // 2, max(H - nh, 0) // 2
        pr, pb = max(W - nw + 1, 0) // 2, max(H - nh + 1, 0) // 2
        r = np.pad(r, ((pt, pb), (pl, pr), (0, 0)))
        top = tv_round((r.shape[0] - H) / 2.0)
        left = tv_round((r.shape[1] - W) / 2.0)
        a = r[top:top + H, left:left + W]
    if a.ndim == 2:
        a = a[:, :, None]
    a = a / 255.0
    a = (a - np.array(IMAGENET_MEAN[:channels])) / np.array(IMAGENET_STD[:channels])
    return a.transpose(2, 0, 1).astype(np.float32)


def add_preprocess(tag, file, mode, W, H, S, channels=3, bgr=False):
    """preprocess IMG REF.f32 MODE W H S CHANNELS BGR: tensor vs torchvision (ImageNet
    mean/std in tensor channel order, scale 1/255), within 1 resize level."""
    im = Image.open(path(file))
    im = ImageOps.exif_transpose(im).convert("RGB")
    t = reference_tensor(im, mode, W, H, S, channels)
    if bgr:
        # a BGR model sees the channels reversed and normalised with its own (given) mean/std
        rgb_t = reference_tensor(im, mode, W, H, S, 3)
        std = np.array(IMAGENET_STD, dtype=np.float32)[:, None, None]
        mean = np.array(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
        pix = rgb_t * std + mean  # back to [0, 1]
        t = ((pix[::-1] - mean[::-1]) / std[::-1]).astype(np.float32)
    ref = f"pre_{tag}.f32"
    t.astype("<f4").tofile(path(ref))
    manifest.append(f"preprocess {file} {ref} {mode} {W} {H} {S} {channels} {int(bgr)}")


add_preprocess("chelsea", "chelsea.png", "shorter", 224, 224, 256)
add_preprocess("astronaut", "astronaut.png", "shorter", 224, 224, 256)
chelsea.transpose(Image.Transpose.TRANSPOSE).save(path("chelsea_portrait.png"))
add_preprocess("portrait", "chelsea_portrait.png", "shorter", 224, 224, 256)
add_preprocess("odd_crop", "chelsea.png", "shorter", 223, 225, 256)  # .5 offsets
add_preprocess("pad", "chelsea.png", "shorter", 171, 130, 100)  # crop larger than image
add_preprocess("stretch", "chelsea.png", "stretch", 160, 96, 0)
add_preprocess("gray", "chelsea.png", "shorter", 224, 224, 256, channels=1)
add_preprocess("bgr", "astronaut.png", "shorter", 200, 180, 230, bgr=True)
add_preprocess("up", "px1x1.png", "shorter", 32, 32, 40)
add_preprocess("exif6", "exif6.jpg", "shorter", 32, 48, 40)

# ---------------------------------------------------------------- colormaps (matplotlib)
try:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import colormaps
    # camd rounds to the nearest level, matplotlib truncates (bytes=True): 1 level apart.
    # turbo/viridis/inferno are the published polynomial approximations; their largest
    # deviations from matplotlib's tables are measured constants (turbo: at the two ends).
    for name, tol in (("jet", 1), ("gray", 1), ("turbo", 32), ("viridis", 4), ("inferno", 9)):
        lut = colormaps[name](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3]
        ref = f"cmap_{name}.rgb"
        lut.astype(np.uint8).tofile(path(ref))
        manifest.append(f"colormap {name} {ref} {tol}")
    # colorize through matplotlib's lookup (values, including out-of-range ones)
    vals = np.concatenate([np.linspace(-0.5, 1.5, 997), [0.0, 1.0, 0.5, 1 / 256, 255 / 256]])
    vals = vals.astype(np.float32)
    vals.astype("<f4").tofile(path("colorize_vals.f32"))
    colormaps["jet"](vals, bytes=True)[:, :3].astype(np.uint8).tofile(path("colorize_jet.rgb"))
    manifest.append(f"colorize jet colorize_vals.f32 {len(vals)} colorize_jet.rgb")
except Exception as e:  # pragma: no cover
    print("matplotlib unavailable, colormap cases skipped:", e, file=sys.stderr)

# ---------------------------------------------------------------- upsampling (torch bilinear)
try:
    import torch
    import torch.nn.functional as F

    def add_upsample(tag, h, w, crop, ow, oh, inner):
        """upsample MAP.f32 W H CX CY CW CH OW OH REF.f32: `inner` = (x, y, w, h) integer rect
        of the output that the crop covers; torch's bilinear (align_corners=False) of the map
        to that size is the reference inside, 0 outside."""
        m = rng.random((h, w), dtype=np.float32)
        m.astype("<f4").tofile(path(f"up_{tag}.map.f32"))
        ix, iy, iw, ih = inner
        r = F.interpolate(torch.from_numpy(m)[None, None], size=(ih, iw), mode="bilinear",
                          align_corners=False)[0, 0].numpy()
        full = np.zeros((oh, ow), dtype=np.float32)
        full[iy:iy + ih, ix:ix + iw] = r
        full.astype("<f4").tofile(path(f"up_{tag}.ref.f32"))
        cx, cy, cw, ch = crop
        manifest.append(f"upsample up_{tag}.map.f32 {w} {h} {cx} {cy} {cw} {ch} {ow} {oh} "
                        f"up_{tag}.ref.f32")

    add_upsample("full", 7, 7, (0, 0, 451, 300), 451, 300, (0, 0, 451, 300))
    add_upsample("crop", 7, 7, (50, 0, 300, 300), 400, 300, (50, 0, 300, 300))
    add_upsample("rect", 5, 9, (10, 20, 90, 50), 120, 80, (10, 20, 90, 50))
    add_upsample("one", 1, 1, (0, 0, 13, 11), 13, 11, (0, 0, 13, 11))
except Exception as e:  # pragma: no cover
    print("torch unavailable, upsample cases skipped:", e, file=sys.stderr)

# ---------------------------------------------------------------- bbox (skimage components)
from skimage import measure  # noqa: E402


def add_bbox(tag, m, thr):
    """bbox MAP.f32 W H THR X0 Y0 X1 Y1 PIXELS ALLX0 ALLY0 ALLX1 ALLY1 ALLPIXELS"""
    m = m.astype(np.float32)
    h, w = m.shape
    m.astype("<f4").tofile(path(f"bbox_{tag}.f32"))
    q = m >= np.float32(thr) * m.max()
    lab = measure.label(q, connectivity=2)
    props = measure.regionprops(lab)
    # largest region; ties -> smallest label (first in row-major order)
    best = max(props, key=lambda p: (p.area, -p.label))
    y0, x0, y1, x1 = best.bbox
    ys, xs = np.nonzero(q)
    manifest.append(f"bbox bbox_{tag}.f32 {w} {h} {thr} {x0} {y0} {x1 - 1} {y1 - 1} {best.area} "
                    f"{xs.min()} {ys.min()} {xs.max()} {ys.max()} {q.sum()}")


yy, xx = np.mgrid[0:60, 0:80]
blobs = (np.exp(-((xx - 20) ** 2 + (yy - 15) ** 2) / 40.0)
         + 0.7 * np.exp(-((xx - 60) ** 2 + (yy - 45) ** 2) / 90.0)
         + 0.3 * np.exp(-((xx - 70) ** 2 + (yy - 5) ** 2) / 10.0))
add_bbox("blobs", blobs, 0.2)
add_bbox("blobs_low", blobs, 0.05)
add_bbox("noise", rng.random((37, 53)), 0.8)

with open(path("manifest.txt"), "w") as f:
    f.write("\n".join(manifest) + "\n")
print(f"wrote {len(manifest)} cases to {out}")
