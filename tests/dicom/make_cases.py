# Generates the DICOM decoding cases and their independent references (pydicom + numpy, GDCM).
"""Writes OUT_DIR/manifest.txt and reference arrays for tests/dicom/test_dicom.c.

Usage: make_cases.py OUT_DIR

Sources: every DICOM file that python3-pydicom and python3-nibabel ship (plus the examples of
libgdcm-tools and dicom3tools when installed), and files synthesised here with pydicom for what
those lack (Modality/VOI LUT Sequences, several windows, LINEAR_EXACT/SIGMOID, MONOCHROME1,
native YBR_FULL, planar RGB, multi-frame and 1-bit frames, dirty high bits, PALETTE COLOR with
the standard's palettes and made-up 8/16-bit LUTs, High-Throughput JPEG 2000 made by OpenJPH,
error cases).

References, computed without camd:
  stored   pydicom's pixel_array for the frame; for native data the bits outside
           [HighBit-BitsStored+1, HighBit] are masked and the value sign-extended in numpy
           (PS3.5 8.1.1; pydicom 2.3 leaves them as they are);
  values   pydicom.pixel_data_handlers.util.apply_modality_lut;
  display  apply_voi_lut(values, ds, index) scaled from pydicom's output range [y_min, y_max]
           (found by feeding it -1e30 and 1e30) to 0..255, or for a VOI LUT its entries / (2^bits
           - 1) * 255; "auto" is (v - min) / (max - min) * 255 in numpy; an explicit window is
           apply_voi_lut on a copy of the data set holding that window; MONOCHROME1 is 255 - x;
           colour: YBR -> RGB with the PS3.3 C.7.6.3.1.2 equations in float64, then
           v * 255 / (2^BitsStored - 1); PALETTE COLOR: pydicom's apply_color_lut, then
           round(v * 255 / (2^bits per entry - 1));
  HTJ2K    lossless: the uncompressed source (stored values exact); lossy ("near" lines): OpenJPH's
           ojph_expand decode of the same codestream, within HTJ2K_LOSSY_TOL.
Files pydicom cannot decode because it lacks the codec (JPEG lossless/extended, JPEG-LS, some
JPEG 2000) take their reference from pydicom reading the output of GDCM's `gdcmconv --raw`.
Files that are broken (pydicom fails on their structure, or nothing decodes them) must fail in
camd with a 4xx status.

Manifest lines (paths absolute; '-' = not checked):
  decode FILE FRAME WINDOW W H CH COLOR_MODEL STORED VALUES DISPLAY TOL FALLBACK REF
  error FILE FRAME WINDOW STATUS WORDS   (STATUS as camd_status_code; WORDS: '|'-joined
                                          lower-case fragments the message must contain, spaces
                                          written as '~', or -)
  sc NAME FILE FRAME UID_ROOT            (writer: test_dicom writes OUT_DIR/sc/NAME.dcm + .rgb)
  near FILE FRAME REF TOL SOURCE SOURCE_TOL (lossy: stored values within TOL of REF, another
                                          decoder's, and within SOURCE_TOL of the source)
  nocrash FILE                           (damaged: decodes or fails with a 4xx, no crash)
"""
import copy
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import (apply_color_lut, apply_modality_lut, apply_voi_lut,
                                              convert_color_space)
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

warnings.simplefilter("ignore")

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
REF = os.path.join(OUT, "ref")
SYN = os.path.join(OUT, "synth")
for d in (REF, SYN):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

import pydicom.data  # noqa: E402

ROOTS = [
    os.path.dirname(pydicom.data.__file__),
    "/usr/lib/python3/dist-packages/nibabel",
    "/usr/share/doc/libgdcm3.0/examples",
    "/usr/share/doc/dicom3tools/examples",
]
GDCMCONV = shutil.which("gdcmconv")

# pydicom decodes these but camd must refuse them, with the reason.
KNOWN_REFUSALS = {
    "SC_rgb_jpeg.dcm": ("bad_format", "the data set is implicit VR under an explicit VR transfer "
                        "syntax (JPEG Baseline); pydicom guesses the encoding, DCMTK refuses"),
}

manifest = []
counter = [0]


def refname(kind):
    counter[0] += 1
    return os.path.join(REF, f"{counter[0]:04d}.{kind}")


def save(arr, kind, dtype):
    p = refname(kind)
    np.ascontiguousarray(arr, dtype=dtype).tofile(p)
    return p


def frames_of(ds):
    try:
        return int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def frame_array(ds, arr, frame):
    return arr[frame] if frames_of(ds) > 1 else arr


def native(ds):
    return not ds.file_meta.TransferSyntaxUID.is_compressed


def stored_ref(ds, a):
    """pydicom's array with the PS3.5 masking / sign extension for native data."""
    a = a.astype(np.int64)
    bs, ba = int(ds.BitsStored), int(ds.BitsAllocated)
    if native(ds) and ba > 1 and bs < ba:
        hb = int(getattr(ds, "HighBit", bs - 1))
        a = (a.astype(np.int64) & ((1 << ba) - 1)) >> (hb - bs + 1)
        a &= (1 << bs) - 1
        if int(ds.PixelRepresentation) == 1:
            a = np.where(a >= (1 << (bs - 1)), a - (1 << bs), a)
    return a


def voi_range(ds, index):
    lo = apply_voi_lut(np.array([-1e30]), ds, index=index)[0]
    hi = apply_voi_lut(np.array([1e30]), ds, index=index)[0]
    return float(lo), float(hi)


def display_ref(ds, stored, window):
    """Display levels 0..255 (float) and whether camd must report a fallback to auto."""
    values = apply_modality_lut(stored, ds).astype(np.float64)
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    fallback = 0
    kind = window.split(":")[0]
    if kind == "dicom":
        index = int(window.split(":")[1]) if ":" in window else 0
        if ds.get("VOILUTSequence"):
            item = ds.VOILUTSequence[index]
            out = apply_voi_lut(values, ds, index=index).astype(np.float64)
            disp = out / (2 ** int(item.LUTDescriptor[2]) - 1) * 255
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            lo, hi = voi_range(ds, index)
            disp = (apply_voi_lut(values, ds, index=index) - lo) / (hi - lo) * 255
        else:
            kind, fallback = "auto", 1
    if kind == "auto":
        lo, hi = values.min(), values.max()
        disp = (values - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(values)
    elif kind not in ("dicom",):
        presets = {"lung": (-600, 1500), "mediastinum": (50, 350), "bone": (400, 1800),
                   "brain": (40, 80), "soft_tissue": (40, 400)}
        c, w = presets[window] if window in presets else map(float, window.split(","))
        d2 = ds.copy()
        for k in ("VOILUTSequence", "VOILUTFunction", "WindowCenterWidthExplanation"):
            if k in d2:
                del d2[k]
        d2.WindowCenter, d2.WindowWidth = c, w
        lo, hi = voi_range(d2, 0)
        disp = (apply_voi_lut(values, d2, index=0) - lo) / (hi - lo) * 255
    if mono1:
        disp = 255 - disp
    return values, disp, fallback


def color_ref(ds, a):
    a = a.astype(np.float64)
    pi = ds.PhotometricInterpretation
    bs = int(ds.BitsStored)
    top = 2 ** bs - 1
    if pi in ("YBR_FULL", "YBR_FULL_422"):
        half = 2 ** (bs - 1)
        y, cb, cr = a[..., 0], a[..., 1] - half, a[..., 2] - half
        a = np.stack([y + 1.402 * cr,
                      y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr,
                      y + 1.772 * cb], axis=-1)
    return np.clip(a, 0, top) * 255 / top


def add_decode(path, ds, arr, frame, windows, ref="pydicom", tol=0.5):
    a = frame_array(ds, arr, frame)
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    st = stored_ref(ds, a)
    if spp == 1:
        for w in windows:
            values, disp, fb = display_ref(ds, st, w)
            manifest.append(
                f"decode {path} {frame} {w} {cols} {rows} 1 {ds.PhotometricInterpretation} "
                f"{save(st, 'stored', '<i8')} {save(values, 'values', '<f8')} "
                f"{save(disp, 'display', '<f8')} {tol} {fb} {ref}")
    else:
        pi = ds.PhotometricInterpretation
        disp = color_ref(ds, st)
        manifest.append(
            f"decode {path} {frame} dicom {cols} {rows} 3 {pi} {save(st, 'stored', '<i8')} - "
            f"{save(disp, 'display', '<f8')} {tol} - {ref}")


def add_error(path, status, frame=0, window="dicom", words="-"):
    manifest.append(f"error {path} {frame} {window} {status} {words.replace(' ', '~')}")


def windows_for(ds):
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        return ["dicom"]
    w = ["dicom", "auto"]
    nwin = 0
    if "WindowCenter" in ds:
        wc = ds.WindowCenter
        nwin = len(wc) if isinstance(wc, pydicom.multival.MultiValue) else 1
    nlut = len(ds.VOILUTSequence) if ds.get("VOILUTSequence") else 0
    for i in range(1, max(nwin if not nlut else nlut, 1)):
        w.append(f"dicom:{i}")
    if getattr(ds, "Modality", "") == "CT":
        w += ["lung", "bone", "40,400"]
    return w


def gdcm_reference(path):
    """pydicom on GDCM's decompressed copy, or None (GDCM aborts on some files: a subprocess)."""
    if not GDCMCONV:
        return None
    out = os.path.join(REF, f"gdcm_{counter[0]:04d}_{os.path.basename(path)}")
    counter[0] += 1
    try:
        r = subprocess.run([GDCMCONV, "--raw", path, out], capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0 or not os.path.exists(out):
        return None
    try:
        ds = pydicom.dcmread(out)
        return ds, ds.pixel_array
    except Exception:
        return None


def is_codec_failure(exc):
    """pydicom lacks the codec (vs. the file being broken)."""
    msg = str(exc)
    return (isinstance(exc, (NotImplementedError, OSError)) or
            "missing required dependencies" in msg or "handlers are available" in msg or
            type(exc).__name__ == "DecompressionBombError")


def shipped_files():
    files = []
    for root in ROOTS:
        for d, _, fs in os.walk(root):
            for f in sorted(fs):
                p = os.path.join(d, f)
                if os.path.islink(p) or os.path.getsize(p) < 132:
                    continue
                with open(p, "rb") as fh:
                    head = fh.read(132)
                if head[128:132] == b"DICM" or p.lower().endswith(".dcm"):
                    files.append(p)
    return sorted(files)


def do_shipped():
    stats = {"pydicom": 0, "gdcm": 0, "error": 0, "refusal": 0}
    for path in shipped_files():
        with open(path, "rb") as fh:
            fh.seek(128)
            part10 = fh.read(4) == b"DICM"
        if not part10:
            add_error(path, "unsupported_media_type", words="dicm")
            stats["error"] += 1
            continue
        base = os.path.basename(path)
        if base in KNOWN_REFUSALS:
            add_error(path, KNOWN_REFUSALS[base][0])
            stats["refusal"] += 1
            continue
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:
            add_error(path, "bad_format")
            stats["error"] += 1
            continue
        if "PixelData" not in ds:
            add_error(path, "bad_format")
            stats["error"] += 1
            continue
        try:
            arr = ds.pixel_array
            ref = "pydicom"
        except Exception as e:  # noqa: BLE001
            g = gdcm_reference(path) if is_codec_failure(e) else None
            if g is None:
                add_error(path, "bad_format")
                stats["error"] += 1
                continue
            ds, arr = g
            ref = "gdcm"
        stats[ref] += 1
        nf = frames_of(ds)
        for frame in sorted({0, nf - 1}):
            add_decode(path, ds, arr, frame, windows_for(ds) if frame == 0 else ["dicom"], ref)
    return stats


# ---- synthesised files ----------------------------------------------------------------------
TEST_FILES = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")


def base_ds(rows, cols, **attrs):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("synth", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
    ds.SeriesInstanceUID = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
    ds.PatientName, ds.PatientID, ds.Modality = "Synthetic^Case", "SYNTH-1", "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def write(ds, name):
    p = os.path.join(SYN, name)
    ds.save_as(p, write_like_original=False)
    return p


def patch_ts(path, uid):
    """Replaces the meta header's Transfer Syntax UID (even length) and fixes the group length."""
    raw = bytearray(open(path, "rb").read())
    i = raw.find(b"\x02\x00\x10\x00UI")
    n = int.from_bytes(raw[i + 6:i + 8], "little")
    raw[i:i + 8 + n] = b"\x02\x00\x10\x00UI" + len(uid).to_bytes(2, "little") + uid
    g = raw.find(b"\x02\x00\x00\x00UL\x04\x00")
    glen = int.from_bytes(raw[g + 8:g + 12], "little") + len(uid) - n
    raw[g + 8:g + 12] = glen.to_bytes(4, "little")
    open(path, "wb").write(bytes(raw))


def lut_item(first, bits, data, explanation=None):
    it = Dataset()
    it.LUTDescriptor = [len(data) % 65536, first, bits]
    it.LUTData = [int(x) for x in data]
    it["LUTData"].VR = "US"
    if explanation:
        it.LUTExplanation = explanation
    return it


def decode_synth(p, windows, frames=(0,)):
    ds = pydicom.dcmread(p)
    arr = ds.pixel_array
    for f in frames:
        add_decode(p, ds, arr, f, windows if f == frames[0] else ["dicom"], "pydicom")


def do_synth():
    rng = np.random.default_rng(20240610)
    ct = pydicom.dcmread(os.path.join(TEST_FILES, "CT_small.dcm"))
    mr = pydicom.dcmread(os.path.join(TEST_FILES, "MR_small.dcm"))

    # Modality LUT Sequence (replaces rescale) + two VOI LUTs (8- and 10-bit) + windows
    ds = base_ds(ct.Rows, ct.Columns, Modality="CT", PixelRepresentation=0, BitsStored=12,
                 HighBit=11)
    px = np.clip(ct.pixel_array.astype(np.int64), 0, 4095).astype(np.uint16)
    ds.PixelData = px.tobytes()
    lut = (np.sqrt(np.arange(4096) / 4095.0) * 255).astype(np.uint16)  # 0..255, nonlinear
    ds.ModalityLUTSequence = Sequence([lut_item(0, 16, lut)])
    ds.ModalityLUTSequence[0].ModalityLUTType = "US"
    # an 8-bit LUT covering the whole modality range (pydicom 2.3 indexes an 8-bit LUT with
    # uint8, so inputs beyond 255 entries would wrap there), and a 10-bit one clamped at both ends
    v1 = (np.arange(256) ** 2 // 255).astype(np.uint16)
    v2 = np.clip(1023 - np.arange(200) * 1023 // 199, 0, 1023)
    ds.VOILUTSequence = Sequence([lut_item(0, 8, v1, "SOFT"), lut_item(20, 10, v2, "INVERSE")])
    ds.WindowCenter, ds.WindowWidth = [128, 60], [256, 40]
    decode_synth(write(ds, "modlut_voilut.dcm"), ["dicom", "dicom:1", "auto", "40,400"])
    add_error(os.path.join(SYN, "modlut_voilut.dcm"), "invalid_argument", 0, "dicom:2",
              "dicom:2|2 voi")

    # several windows, LINEAR / LINEAR_EXACT / SIGMOID
    for fn in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        ds = mr.copy()
        ds.WindowCenter, ds.WindowWidth = [600, 300, 1000.5], [1600, 400, 1 if fn == "LINEAR" else 2]
        ds.WindowCenterWidthExplanation = ["WIDE", "NARROW", "EDGE"]
        ds.VOILUTFunction = fn
        decode_synth(write(ds, f"windows_{fn.lower()}.dcm"), ["dicom", "dicom:1", "dicom:2"])

    # MONOCHROME1 with a window, and without (auto, inverted)
    ds = mr.copy()
    ds.PhotometricInterpretation = "MONOCHROME1"
    decode_synth(write(ds, "mono1.dcm"), ["dicom", "auto", "100,500"])

    # rescale with a fractional slope on signed data
    ds = ct.copy()
    ds.RescaleSlope, ds.RescaleIntercept = 0.25, -100.5
    decode_synth(write(ds, "rescale_frac.dcm"), ["dicom", "auto", "lung", "bone"])

    # dirty high bits: 12 of 16 bits, HighBit 11, signed, overlay garbage in bits 12..15
    ds = base_ds(32, 48, PixelRepresentation=1, BitsStored=12, HighBit=11, Modality="MR")
    vals = rng.integers(-2048, 2048, size=(32, 48))
    words = (vals & 0xFFF) | (rng.integers(0, 16, size=(32, 48)) << 12)
    ds.PixelData = words.astype(np.uint16).tobytes()
    ds.WindowCenter, ds.WindowWidth = 0, 2000
    decode_synth(write(ds, "dirty_highbits.dcm"), ["dicom", "auto"])

    # native YBR_FULL and planar RGB (from a real photo-like RGB file)
    rgb = pydicom.dcmread(os.path.join(TEST_FILES, "SC_rgb_jpeg_dcmd.dcm")).pixel_array
    ds = base_ds(rgb.shape[0], rgb.shape[1], SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL",
                 BitsAllocated=8, BitsStored=8, HighBit=7, PlanarConfiguration=0)
    ds.PixelData = convert_color_space(rgb, "RGB", "YBR_FULL").tobytes()
    decode_synth(write(ds, "ybr_full.dcm"), ["dicom"])
    ds = base_ds(rgb.shape[0], rgb.shape[1], SamplesPerPixel=3, PhotometricInterpretation="RGB",
                 BitsAllocated=8, BitsStored=8, HighBit=7, PlanarConfiguration=1)
    ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    decode_synth(write(ds, "rgb_planar.dcm"), ["dicom"])

    # multi-frame signed 16-bit with rescale; 1-bit frames not byte aligned
    ds = base_ds(20, 30, PixelRepresentation=1, Modality="CT", NumberOfFrames=3,
                 RescaleSlope=1, RescaleIntercept=-1024)
    ds.PixelData = rng.integers(-1000, 3000, size=(3, 20, 30)).astype(np.int16).tobytes()
    ds.WindowCenter, ds.WindowWidth = 40, 400
    p = write(ds, "multiframe.dcm")
    decode_synth(p, ["dicom", "auto"], frames=(0, 1, 2))
    add_error(p, "invalid_argument", 3, "dicom", "frame 3|0 to 2")
    ds = base_ds(5, 7, BitsAllocated=1, BitsStored=1, HighBit=0, NumberOfFrames=3, Modality="SEG")
    bits = rng.integers(0, 2, size=(3 * 5 * 7,)).astype(np.uint8)
    ds.PixelData = np.packbits(bits, bitorder="little").tobytes()
    decode_synth(write(ds, "bits1_3frames.dcm"), ["dicom"], frames=(0, 1, 2))

    # a deflated file for the inflation limit (test_dicom opens it with a small max_bytes)
    shutil.copy(os.path.join(TEST_FILES, "image_dfl.dcm"), os.path.join(SYN, "deflated.dcm"))

    # ---- errors ----
    def err(name, ds, status, words="-", frame=0, window="dicom"):
        add_error(write(ds, name), status, frame, window, words)

    ds = base_ds(60000, 60000, BitsAllocated=8, BitsStored=8, HighBit=7)
    ds.PixelData = b"\0" * 64
    err("huge_rows.dcm", ds, "limit_exceeded", "exceeds the limit")
    ds = base_ds(2, 2, NumberOfFrames=100000)
    ds.PixelData = b"\0" * 8
    err("huge_frames.dcm", ds, "limit_exceeded", "max_frames")
    ds = base_ds(64, 64)
    ds.PixelData = b"\0" * 4000
    err("short_pixels.dcm", ds, "bad_format", "truncated pixel data")
    ds = base_ds(8, 8)
    err("no_pixels.dcm", ds, "bad_format", "no pixel data")
    ds = base_ds(8, 8, PhotometricInterpretation="PALETTE COLOR", BitsAllocated=8, BitsStored=8,
                 HighBit=7)
    ds.PixelData = b"\0" * 64
    err("palette_no_lut.dcm", ds, "bad_format", "red palette color lookup table descriptor")
    ds = base_ds(8, 8, BitsAllocated=12, BitsStored=12, HighBit=11)
    ds.PixelData = b"\0" * 96
    err("bits12.dcm", ds, "unsupported", "bitsallocated 12")
    ds = base_ds(4, 4)
    ds.FloatPixelData = np.zeros(16, dtype=np.float32).tobytes()
    err("float_pixels.dcm", ds, "unsupported", "float")
    ds = base_ds(8, 8, NumberOfFrames=2)
    ds.PixelData = b"\0" * 256
    p = write(ds, "bad_frames.dcm")
    raw = open(p, "rb").read()
    open(p, "wb").write(raw.replace(b"\x28\x00\x08\x00IS\x02\x002 ", b"\x28\x00\x08\x00IS\x02\x002X"))
    add_error(p, "bad_format", words="numberofframes")
    # an encapsulated syntax camd does not decode: the 415 names it
    # (pydicom 2.3 does not know the JPEG XL UID: written as JPEG 2000, then the meta patched)
    ds = base_ds(8, 8, BitsAllocated=8, BitsStored=8, HighBit=7)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.91"
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 60])
    p = write(ds, "jpegxl.dcm")
    patch_ts(p, b"1.2.840.10008.1.2.4.110\0")
    add_error(p, "unsupported_media_type", words="1.2.840.10008.1.2.4.110|jpeg xl lossless|"
              "supported:|high-throughput jpeg 2000")
    # the same garbage labelled HTJ2K: a corrupt codestream, not a crash
    p = write(ds, "htj2k_garbage.dcm")
    patch_ts(p, b"1.2.840.10008.1.2.4.201\0")
    add_error(p, "bad_format", words="jpeg 2000")
    # corrupt JPEG 2000 codestream
    src = pydicom.dcmread(os.path.join(TEST_FILES, "MR_small_jp2klossless.dcm"))
    frame = pydicom.encaps.defragment_data(src.PixelData)
    src.PixelData = encapsulate([frame[: len(frame) // 3]])
    err("j2k_cut.dcm", src, "bad_format", "jpeg 2000")
    # file-level truncation at several points of a real file
    raw = open(os.path.join(TEST_FILES, "MR_small.dcm"), "rb").read()
    for cut in (140, 300, 1000, len(raw) - 3000, len(raw) - 1):
        p = os.path.join(SYN, f"cut_{cut}.dcm")
        with open(p, "wb") as f:
            f.write(raw[:cut])
        add_error(p, "bad_format")
    # a data element that claims 4 GiB in a small file
    ds = base_ds(8, 8)
    ds.PixelData = b"\0" * 128
    p = write(ds, "huge_element.dcm")
    raw = bytearray(open(p, "rb").read())
    i = raw.rfind(b"\xe0\x7f\x10\x00OW")
    raw[i + 8:i + 12] = (0xFFFFFFF0).to_bytes(4, "little")
    open(p, "wb").write(bytes(raw))
    add_error(p, "bad_format")
    # bad window requests on a good file
    add_error(os.path.join(TEST_FILES, "MR_small.dcm"), "invalid_argument", 0, "dicom:5",
              "dicom:5|1 voi")
    add_error(os.path.join(TEST_FILES, "MR_small.dcm"), "invalid_argument", 1, "dicom",
              "frame 1|0 to 0")


# ---- PALETTE COLOR --------------------------------------------------------------------------
PALETTES = os.path.join(os.path.dirname(pydicom.data.__file__), "palettes")


def palette_ds(stored, bits_alloc, pr, first, entries, bits, luts, vr_first="US", frames=1):
    """A PALETTE COLOR image of `stored` values with Red/Green/Blue LUT data `luts` (raw bytes or
    uint16 arrays)."""
    rows, cols = stored.shape[-2:]
    ds = base_ds(rows, cols, PhotometricInterpretation="PALETTE COLOR", BitsAllocated=bits_alloc,
                 BitsStored=bits_alloc, HighBit=bits_alloc - 1, PixelRepresentation=pr)
    if frames > 1:
        ds.NumberOfFrames = frames
    dt = {(8, 0): "u1", (16, 0): "<u2", (16, 1): "<i2"}[(bits_alloc, pr)]
    ds.PixelData = stored.astype(dt).tobytes()
    for colour, lut in zip(("Red", "Green", "Blue"), luts):
        tag = pydicom.datadict.tag_for_keyword(f"{colour}PaletteColorLookupTableDescriptor")
        ds[tag] = pydicom.DataElement(tag, vr_first, [entries % 65536, first, bits])
        data = lut if isinstance(lut, bytes) else np.asarray(lut, "<u2").tobytes()
        setattr(ds, f"{colour}PaletteColorLookupTableData", data)
    return ds


def add_palette(p, frames=(0,)):
    """Reference: pydicom's apply_color_lut on pydicom's stored values, scaled from the
    descriptor's bits per entry to 8 bits as every colour sample (round(v * 255 / (2^bits - 1)))."""
    ds = pydicom.dcmread(p)
    arr = ds.pixel_array
    bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    for f in frames:
        st = frame_array(ds, arr, f).astype(np.int64)
        rgb = apply_color_lut(frame_array(ds, arr, f), ds).astype(np.float64)
        disp = np.floor(rgb * 255 / (2 ** bits - 1) + 0.5)
        manifest.append(
            f"decode {p} {f} dicom {ds.Columns} {ds.Rows} 3 PALETTE~COLOR "
            f"{save(st, 'stored', '<i8')} - {save(disp, 'display', '<f8')} 0 - pydicom")


def do_palette():
    mr = pydicom.dcmread(os.path.join(TEST_FILES, "MR_small.dcm")).pixel_array.astype(np.int64)
    ct = pydicom.dcmread(os.path.join(TEST_FILES, "CT_small.dcm")).pixel_array.astype(np.int64)
    hot = pydicom.dcmread(os.path.join(PALETTES, "hotiron.dcm"))
    pet = pydicom.dcmread(os.path.join(PALETTES, "pet.dcm"))
    rgb_of = lambda pal: [pal[f"{c}PaletteColorLookupTableData"].value for c in ("Red", "Green",
                                                                                   "Blue")]
    # 8-bit stored, the standard's Hot Iron palette (8-bit entries, two per OW word)
    idx8 = (mr - mr.min()) * 255 // (mr.max() - mr.min())
    p = write(palette_ds(idx8, 8, 0, 0, 256, 8, rgb_of(hot)), "palette_hotiron8.dcm")
    add_palette(p)
    # 8-bit entries one per 16-bit word, first mapped value 40: values below map to entry 0
    lut = [np.arange(200) * 255 // 199, 255 - np.arange(200) * 255 // 199,
           (np.arange(200) * 7) % 256]
    p = write(palette_ds(idx8, 8, 0, 40, 200, 8, lut), "palette_8bit_words_first40.dcm")
    add_palette(p)
    # 16-bit entries, 3000 of them from 100: MR values below 100 and above 3099 are clamped
    x = np.arange(3000)
    lut16 = [(x * 65535 // 2999), (65535 - x * 65535 // 2999),
             ((np.sin(x / 300.0) + 1) * 32767.5).astype(np.int64)]
    p = write(palette_ds(np.clip(mr * 2 - 200, 0, None), 16, 0, 100, 3000, 16, lut16),
              "palette_16bit_first100.dcm")
    add_palette(p)
    # signed stored values with a negative first mapped value (descriptor SS)
    p = write(palette_ds(ct - 1100, 16, 1, -900, 3000, 16, lut16, vr_first="SS"),
              "palette_signed_first-900.dcm")
    add_palette(p)
    # 65536 entries (descriptor 0), 16-bit, every unsigned value mapped
    y = np.arange(65536)
    p = write(palette_ds(mr * 13, 16, 0, 0, 65536, 16, [y, 65535 - y, (y * 7) % 65536]),
              "palette_65536.dcm")
    add_palette(p)
    # multi-frame with the PET palette, RLE compressed by pydicom (DCMTK's RLE codec path)
    frames = np.stack([idx8, idx8[::-1], idx8[:, ::-1]])
    ds = palette_ds(frames, 8, 0, 0, 256, 8, rgb_of(pet), frames=3)
    p = write(ds, "palette_pet_3frames.dcm")
    add_palette(p, frames=(0, 1, 2))
    ds.compress(pydicom.uid.RLELossless)
    p = write(ds, "palette_pet_3frames_rle.dcm")
    add_palette(p, frames=(0, 2))
    # errors: a segmented palette (the standard's Fall palette), a window on a palette image,
    # a window on an RGB image, descriptors that disagree
    fall = pydicom.dcmread(os.path.join(PALETTES, "fall.dcm"))
    ds = palette_ds(idx8, 8, 0, 0, 256, 8, rgb_of(hot))
    for c in ("Red", "Green", "Blue"):
        delattr(ds, f"{c}PaletteColorLookupTableData")
        ds[f"Segmented{c}PaletteColorLookupTableData"] = fall[
            f"Segmented{c}PaletteColorLookupTableData"]
    add_error(write(ds, "palette_segmented.dcm"), "unsupported", words="segmented palette")
    add_error(os.path.join(SYN, "palette_hotiron8.dcm"), "invalid_argument", 0, "lung",
              "window='lung'|grayscale|palette color")
    add_error(os.path.join(SYN, "ybr_full.dcm"), "invalid_argument", 0, "auto",
              "window='auto'|grayscale|colour")
    add_error(os.path.join(TEST_FILES, "SC_rgb_rle_2frame.dcm"), "invalid_argument", 1, "40,400",
              "grayscale|colour (rgb)")
    ds = palette_ds(idx8, 8, 0, 0, 256, 8, rgb_of(hot))
    ds.BluePaletteColorLookupTableDescriptor = [256, 1, 8]
    add_error(write(ds, "palette_descriptors_differ.dcm"), "bad_format", words="differs")


# ---- High-Throughput JPEG 2000 --------------------------------------------------------------
OJPH_COMPRESS = shutil.which("ojph_compress")
OJPH_EXPAND = shutil.which("ojph_expand")


def ojph(arr, out, reversible, signed, bits, qstep=None, order=None, colour=False):
    """Encodes arr (rows x cols [x 3]) with OpenJPH's ojph_compress into a raw codestream."""
    raw = out + ".raw"
    comps = arr.shape[2] if arr.ndim == 3 else 1
    dt = ("<i2" if signed else "<u2") if bits > 8 else "u1"
    # raw input: one component after the other (planar)
    planes = arr.transpose(2, 0, 1) if comps == 3 else arr[None]
    np.ascontiguousarray(planes.astype(dt)).tofile(raw)
    if comps == 3:  # ojph_compress reads colour from PPM (interleaved, 8-bit)
        raw = out + ".ppm"
        with open(raw, "wb") as f:
            f.write(f"P6 {arr.shape[1]} {arr.shape[0]} 255\n".encode())
            f.write(np.ascontiguousarray(arr.astype("u1")).tobytes())
        cmd = [OJPH_COMPRESS, "-i", raw, "-o", out, "-colour_trans", "true" if colour else "false"]
    else:
        cmd = [OJPH_COMPRESS, "-i", raw, "-o", out, "-dims", f"{{{arr.shape[1]},{arr.shape[0]}}}",
               "-num_comps", "1", "-signed", "true" if signed else "false", "-bit_depth",
               str(bits), "-downsamp", "{1,1}"]
    cmd += ["-reversible", "true" if reversible else "false"]
    if qstep:
        cmd += ["-qstep", str(qstep)]
    if order:
        cmd += ["-prog_order", order]
    subprocess.run(cmd, check=True, capture_output=True)
    cs = open(out, "rb").read()
    assert cs[:4] == b"\xff\x4f\xff\x51" and cs[6] & 0x40, "not an HTJ2K codestream (Rsiz bit 14)"
    return cs


def ojph_decode(cs_path, shape, signed, bits):
    """OpenJPH's own decoder (ojph_expand), an implementation independent of camd's OpenJPEG."""
    if len(shape) == 3:
        out = cs_path + ".dec.ppm"
        subprocess.run([OJPH_EXPAND, "-i", cs_path, "-o", out], check=True, capture_output=True)
        data = open(out, "rb").read()
        return np.frombuffer(data[len(data) - shape[0] * shape[1] * 3:], "u1").reshape(shape)
    out = cs_path + ".dec.raw"
    subprocess.run([OJPH_EXPAND, "-i", cs_path, "-o", out], check=True, capture_output=True)
    dt = ("<i2" if signed else "<u2") if bits > 8 else "u1"
    return np.fromfile(out, dt).reshape(shape)


def htj2k_file(src, frames_cs, uid, name, photometric=None, lossy=False):
    """src's data set with its Pixel Data replaced by the HTJ2K codestreams (one per frame),
    encapsulated by pydicom; pydicom 2.3 does not know the HTJ2K UIDs, so it is written as JPEG
    2000 and the meta header patched."""
    ds = copy.deepcopy(src)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    ds.PixelData = encapsulate(frames_cs)
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    if len(frames_cs) > 1:
        ds.NumberOfFrames = len(frames_cs)
    if photometric:
        ds.PhotometricInterpretation = photometric
    if lossy:
        ds.LossyImageCompression = "01"
    p = write(ds, name)
    patch_ts(p, uid.encode() + b"\0" * (len(uid) % 2))
    return p


def do_htj2k():
    """HTJ2K codestreams made by OpenJPH (ojph_compress, Debian's openjph-tools), a codec
    independent of the OpenJPEG that camd decodes with. Lossless: camd's stored values must equal
    the uncompressed source exactly. Lossy: equal OpenJPH's own decode (ojph_expand) within
    HTJ2K_LOSSY_TOL, and the source within the bound measured here and printed."""
    if not (OJPH_COMPRESS and OJPH_EXPAND):
        sys.exit("make_cases: ojph_compress/ojph_expand not found: install Debian's openjph-tools "
                 "(make deps-test)")
    stats = []
    ctds = pydicom.dcmread(os.path.join(TEST_FILES, "CT_small.dcm"))
    mrds = pydicom.dcmread(os.path.join(TEST_FILES, "MR_small.dcm"))
    ct, mr = ctds.pixel_array, mrds.pixel_array  # signed 16-bit CT, signed MR (BitsStored 16)
    # unsigned 16-bit: the MR's values as an unsigned image
    mru = copy.deepcopy(mrds)
    mru.PixelRepresentation = 0
    mru.PixelData = mr.astype("<u2").tobytes()
    rgb = pydicom.dcmread(os.path.join(TEST_FILES, "SC_rgb_jpeg_dcmd.dcm")).pixel_array
    rgbds = base_ds(rgb.shape[0], rgb.shape[1], SamplesPerPixel=3, PhotometricInterpretation="RGB",
                    BitsAllocated=8, BitsStored=8, HighBit=7, PlanarConfiguration=0)
    rgbds.PixelData = rgb.tobytes()
    d = os.path.join(SYN, "htj2k")
    os.makedirs(d, exist_ok=True)
    j = lambda n: os.path.join(d, n)
    # lossless: .201 signed CT, .202 (RPCL) unsigned MR, .201 RGB with the reversible colour
    # transform (YBR_RCT), and a 2-frame file
    lossless = [
        ("ct_201.dcm", ctds, [ojph(ct, j("ct.j2c"), True, True, 16)], "1.2.840.10008.1.2.4.201",
         None, ["dicom", "auto", "lung", "40,400"]),
        ("mr_unsigned_202.dcm", mru, [ojph(mr, j("mru.j2c"), True, False, 16, order="RPCL")],
         "1.2.840.10008.1.2.4.202", None, ["dicom", "auto"]),
        ("rgb_rct_201.dcm", rgbds, [ojph(rgb, j("rgb.j2c"), True, False, 8, colour=True)],
         "1.2.840.10008.1.2.4.201", "YBR_RCT", ["dicom"]),
        ("mr_2frames_201.dcm", mrds, [ojph(mr, j("mr0.j2c"), True, True, 16),
                                      ojph(mr[::-1].copy(), j("mr1.j2c"), True, True, 16)],
         "1.2.840.10008.1.2.4.201", None, ["dicom"]),
    ]
    for name, src, css, uid, pi, windows in lossless:
        p = htj2k_file(src, css, uid, name, pi)
        # the reference: the uncompressed source through the same pipeline references
        ref = copy.deepcopy(src)
        if len(css) > 1:
            ref.NumberOfFrames = 2
            ref.PixelData = np.stack([mr, mr[::-1]]).astype("<i2").tobytes()
        arr = ref.pixel_array
        for f in range(len(css)):
            add_decode(p, ref, arr, f, windows if f == 0 else ["dicom"], "source")
    # lossy (.203): irreversible 9/7 wavelet; gray signed CT and RGB with the ICT
    tol = HTJ2K_LOSSY_TOL
    for name, src, arr, kw, pi in (
            ("ct_lossy_203.dcm", ctds, ct, dict(signed=True, bits=16, qstep=0.0001), None),
            ("rgb_ict_203.dcm", rgbds, rgb, dict(signed=False, bits=8, qstep=0.005, colour=True),
             "YBR_ICT")):
        cs_path = j(name + ".j2c")
        cs = ojph(arr, cs_path, False, **kw)
        p = htj2k_file(src, [cs], "1.2.840.10008.1.2.4.203", name, pi, lossy=True)
        dec = ojph_decode(cs_path, arr.shape, kw["signed"], kw["bits"]).astype(np.int64)
        err_src = int(np.abs(dec - arr.astype(np.int64)).max())
        stats.append(f"{name}: {len(cs)} bytes (source {arr.nbytes}), OpenJPH decode vs source "
                     f"max |diff| {err_src}")
        manifest.append(f"near {p} 0 {save(dec, 'stored', '<i8')} {tol} "
                        f"{save(arr.astype(np.int64), 'stored', '<i8')} {err_src + tol}")
    # a truncated codestream and one with its code blocks' bytes flipped: 4xx, never a crash
    cs = ojph(ct, j("ct_cut.j2c"), True, True, 16)
    add_error(htj2k_file(ctds, [cs[: len(cs) // 3]], "1.2.840.10008.1.2.4.201", "ct_cut.dcm"),
              "bad_format", words="jpeg 2000")
    bad = bytearray(cs)
    sod = bad.find(b"\xff\x93")
    for k in range(sod + 2, len(bad) - 2, 7):
        bad[k] ^= 0x5A
    p = htj2k_file(ctds, [bytes(bad)], "1.2.840.10008.1.2.4.201", "ct_flipped.dcm")
    manifest.append(f"nocrash {p}")
    # a mutation the fuzz regression driver found: OpenJPEG 2.5.0's HT decoder asserts (aborts)
    # in mel_init on it; camd decodes HTJ2K in a child process, so it is a 400
    p = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "dicom",
                     "abort-htj2k-mel-init-assert.dcm")
    add_error(os.path.normpath(p), "bad_format", words="jpeg 2000|openjpeg stopped|high-throughput")
    # declared geometry differs from the codestream's
    small = ojph(mr, j("mr_geom.j2c"), True, True, 16)
    add_error(htj2k_file(ctds, [small], "1.2.840.10008.1.2.4.201", "geometry_mismatch.dcm"),
              "bad_format", words="64x64|128x128")
    print("make_cases: HTJ2K " + "; ".join(stats))


HTJ2K_LOSSY_TOL = 1  # camd (OpenJPEG) vs OpenJPH on the irreversible path: float rounding


def write_gray_png(path, vals, depth):
    """A gray PNG of 1..8 bits (rows packed MSB first, filter 0), from the PNG specification."""
    import struct
    import zlib
    h, w = vals.shape
    rows = b""
    for r in vals:
        bits = "".join(format(int(v), f"0{depth}b") for v in r)
        bits += "0" * (-len(bits) % 8)
        rows += b"\0" + int(bits, 2).to_bytes(len(bits) // 8, "big")

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def do_png_gray():
    """16-bit and low-depth gray PNGs through camd_png_decode_gray + the window step: values
    from PIL (16-bit, plain and interlaced by ImageMagick) or as written here (4- and 1-bit),
    display levels from numpy (auto) and pydicom's apply_voi_lut on a data set holding the
    window (explicit)."""
    from PIL import Image
    rng = np.random.default_rng(7)
    cases = []
    a16 = (rng.normal(20000, 9000, size=(37, 53)).clip(0, 65535)).astype(np.uint16)
    p = os.path.join(SYN, "gray16.png")
    Image.fromarray(a16, mode="I;16").save(p)
    cases.append((p, 16, a16.astype(np.float64)))
    convert = "/usr/bin/convert"  # Debian's imagemagick (as tests/image/make_cases.py)
    if os.path.exists(convert):  # interlaced 16-bit, written by ImageMagick
        q = os.path.join(SYN, "gray16_interlaced.png")
        subprocess.run([convert, p, "-interlace", "PNG", "-depth", "16", "-define",
                        "png:color-type=0", q], check=True)
        cases.append((q, 16, np.array(Image.open(q)).astype(np.float64)))
    # 4-bit and 1-bit gray: written here (ImageMagick will not), checked by reading back with PIL
    for depth in (4, 1):
        vals = (np.arange(20 * 27).reshape(20, 27) * 7 % (2 ** depth)).astype(np.uint8)
        q = os.path.join(SYN, f"gray{depth}.png")
        write_gray_png(q, vals, depth)
        back = np.array(Image.open(q)).astype(np.int64)
        scale = 1 if depth == 1 else 255 // (2 ** depth - 1)
        assert np.array_equal(back // scale if depth > 1 else back, vals), q
        cases.append((q, depth, vals.astype(np.float64)))
    for path, depth, values in cases:
        lo, hi = values.min(), values.max()
        auto = (values - lo) / (hi - lo) * 255
        d = Dataset()
        d.BitsStored, d.PixelRepresentation = 16, 0
        d.PhotometricInterpretation = "MONOCHROME2"
        d.WindowCenter, d.WindowWidth = float((lo + hi) / 2), float(max((hi - lo) / 2, 1))
        ylo, yhi = voi_range(d, 0)
        win = (apply_voi_lut(values, d, index=0) - ylo) / (yhi - ylo) * 255
        h, w = values.shape
        manifest.append(f"pnggray {path} {w} {h} {depth} {save(values, 'values', '<f8')} "
                        f"{save(auto, 'display', '<f8')} {save(win, 'display', '<f8')} "
                        f"{float(d.WindowCenter)!r} {float(d.WindowWidth)!r}")
    p = os.path.join(SYN, "rgb.png")
    Image.fromarray(rng.integers(0, 255, size=(4, 5, 3)).astype(np.uint8)).save(p)
    manifest.append(f"pnggrayerr {p} unsupported")


def do_writer():
    # sources for the Secondary Capture writer: CT, MR, JPEG 2000 CT (lossy), JPEG YBR colour,
    # multi-frame RTDOSE (frame 4), ISO 2022 Japanese patient name, nibabel's MR
    srcs = [
        ("ct", os.path.join(TEST_FILES, "CT_small.dcm"), 0, "1.2.826.0.1.3680043.10.1234"),
        ("mr", os.path.join(TEST_FILES, "MR_small.dcm"), 0, "-"),
        ("j2k_ct", os.path.join(TEST_FILES, "693_J2KI.dcm"), 0, "1.2.826.0.1.3680043.10.1234"),
        ("jpeg_rgb", os.path.join(TEST_FILES, "SC_rgb_jpeg_dcmtk.dcm"), 0, "-"),
        ("rtdose_f4", os.path.join(TEST_FILES, "rtdose.dcm"), 4, "-"),
        ("japanese", os.path.join(os.path.dirname(TEST_FILES), "charset_files", "chrH31.dcm"),
         0, "-"),
        ("nibabel_mr", "/usr/lib/python3/dist-packages/nibabel/tests/data/0.dcm", 0, "-"),
        ("htj2k_lossy_ct", os.path.join(SYN, "ct_lossy_203.dcm"), 0, "-"),
        ("palette_pet_f2", os.path.join(SYN, "palette_pet_3frames.dcm"), 2, "-"),
    ]
    for name, path, frame, root in srcs:
        if os.path.exists(path):
            manifest.append(f"sc {name} {path} {frame} {root}")


stats = do_shipped()
do_synth()
do_palette()
do_htj2k()
do_png_gray()
do_writer()
with open(os.path.join(OUT, "manifest.txt"), "w") as f:
    f.write("\n".join(manifest) + "\n")
print(f"make_cases: {len(manifest)} cases; shipped files: {stats['pydicom']} referenced by pydicom, "
      f"{stats['gdcm']} by GDCM, {stats['error']} must fail, {stats['refusal']} known refusal(s): "
      + "; ".join(f"{k}: {v[1]}" for k, v in KNOWN_REFUSALS.items()))
