#!/usr/bin/python3
# DICOM through the real service: camd serve on 127.0.0.1, real DICOM files from python3-pydicom,
# answers checked against PyTorch (make_chexnet.py's references), pydicom and dciodvfy.
"""Usage: test_dicom_service.py CAMD FIXTURES (FIXTURES written by make_chexnet.py)

  - CT_small / MR_small as application/dicom, multipart (a part of type application/dicom) and
    base64 JSON: 200 with the source UIDs, geometry and window; the display image camd feeds the
    model equals the reference (Modality LUT + VOI); chexnet's 14 sigmoid probabilities within
    1e-5 (relative) of PyTorch's, ranked by probability; target naming three labels gives three
    maps, each equal to PyTorch's Grad-CAM; topK picks the K most probable findings; "dicom" holds
    each map's peak and box; a 1-channel model takes the gray frame directly;
  - Accept: application/dicom and outputs=dicom: Secondary Captures that dciodvfy accepts and
    pydicom reads back (check_sc.py), pixels equal to the JSON overlay, one series per request;
  - a 16-bit gray PNG with the window option; multi-frame files with the frame option;
  - PALETTE COLOR (CT_small's values through 16-bit LUTs from first mapped value 100): the image
    camd feeds the model equals pydicom's apply_color_lut, scaled to 8 bits;
  - CT_small re-encoded losslessly as High-Throughput JPEG 2000 by OpenJPH (.201 and .202): the
    same frame, probabilities and Grad-CAM as the uncompressed file's PyTorch references;
  - errors: truncated 400, unsupported transfer syntax 415 naming it, frame out of range 400,
    window on an RGB or PALETTE COLOR frame 400 (server and CLI), truncated HTJ2K codestream 400,
    window garbage 400, too many frames / pixels 413, several maps with Accept: application/dicom
    400, DICOM out of a PNG 400, predict with Accept: application/dicom 406;
  - nothing of the patient (name, ID, birth date, accession) in any answer or in the log.
"""
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import apply_color_lut

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "service"))
sys.path.insert(0, HERE)
import camdtest as ct  # noqa: E402
import check_sc  # noqa: E402

warnings.simplefilter("ignore")
ct.CAMD, ct.FIX = sys.argv[1], sys.argv[2]
FIX = ct.FIX
C = ct.Checker()
REFS = json.load(open(os.path.join(FIX, "refs.json")))
LABELS = [ln.strip() for ln in open(os.path.join(FIX, "chexnet.labels.txt"))]
CONFIG = os.path.join(FIX, "camd.json")
UID_ROOT = json.load(open(CONFIG))["dicom_uid_root"]
PROB_RTOL = 1e-5
MAP_ATOL = 2e-3  # Grad-CAM maps are min-max normalised to 0..1
EXPLAIN = "/v1/models/chexnet/explain"
DCM_HDR = {"Content-Type": "application/dicom"}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def png_array(b64):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def patient_strings(ds):
    out = []
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
        v = str(ds.get(kw, "") or "").strip()
        if len(v) >= 3:
            out.append(v)
    return out


def validate_sc(*args):
    """check_sc.check_sc_file (dciodvfy + pydicom), its failures counted here."""
    before = len(check_sc.failures)
    sc = check_sc.check_sc_file(*args)
    for f in check_sc.failures[before:]:
        C.check(False, f)
    C.check(len(check_sc.failures) == before, f"{args[-1]}: Secondary Capture valid")
    return sc


def post(srv, path, body, headers, query=""):
    st, h, data = srv.request("POST", path + (("?" + query) if query else ""), body, headers)
    j = None
    if h.get("content-type", "").startswith("application/json"):
        j = json.loads(data)
        ANSWERS.append(data)
    return st, h, data, j


def patch_ts(raw, uid):
    """The Part 10 bytes with the meta header's Transfer Syntax UID replaced (even length)."""
    i = raw.find(b"\x02\x00\x10\x00UI")
    n = int.from_bytes(raw[i + 6:i + 8], "little")
    patched = bytearray(raw)
    patched[i:i + 8 + n] = b"\x02\x00\x10\x00UI" + len(uid).to_bytes(2, "little") + uid
    g = patched.find(b"\x02\x00\x00\x00UL\x04\x00")
    glen = int.from_bytes(patched[g + 8:g + 12], "little") + len(uid) - n
    patched[g + 8:g + 12] = glen.to_bytes(4, "little")
    return bytes(patched)


def palette_file():
    """CT_small's stored values as a PALETTE COLOR image: 16-bit Red/Green/Blue LUTs of 2000
    entries from first mapped value 100 (values below take entry 0, above the last entry)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for k in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if k in ds:
            delattr(ds, k)
    x = np.arange(2000)
    luts = [x * 65535 // 1999, ((np.cos(x / 150.0) + 1) * 32767.5).astype(np.int64),
            65535 - x * 65535 // 1999]
    for colour, lut in zip(("Red", "Green", "Blue"), luts):
        tag = pydicom.datadict.tag_for_keyword(f"{colour}PaletteColorLookupTableDescriptor")
        ds[tag] = pydicom.DataElement(tag, "SS", [2000, 100, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.asarray(lut, "<u2").tobytes())
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    return buf.getvalue()


def palette_rgb8(raw):
    """pydicom's apply_color_lut, 16-bit entries to 8 bits as camd documents: round(v*255/65535)."""
    ds = pydicom.dcmread(io.BytesIO(raw))
    rgb = apply_color_lut(ds.pixel_array, ds).astype(np.float64)
    return np.floor(rgb * 255 / 65535 + 0.5).astype(np.uint8)


def htj2k_file(path, uid, cut=False):
    """The file's frame re-encoded losslessly by OpenJPH's ojph_compress (Debian openjph-tools)
    and encapsulated by pydicom (written as JPEG 2000, then the meta header patched: pydicom 2.3
    does not know the HTJ2K UIDs)."""
    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    signed = int(ds.PixelRepresentation) == 1
    with tempfile.TemporaryDirectory() as d:
        a.astype("<i2" if signed else "<u2").tofile(os.path.join(d, "f.raw"))
        subprocess.run(["ojph_compress", "-i", os.path.join(d, "f.raw"), "-o",
                        os.path.join(d, "f.j2c"), "-reversible", "true", "-dims",
                        f"{{{a.shape[1]},{a.shape[0]}}}", "-num_comps", "1", "-signed",
                        "true" if signed else "false", "-bit_depth", str(ds.BitsStored),
                        "-downsamp", "{1,1}"], check=True, capture_output=True)
        cs = read(os.path.join(d, "f.j2c"))
    if cut:
        cs = cs[: len(cs) // 3]
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    ds.PixelData = encapsulate([cs])
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    return patch_ts(buf.getvalue(), uid.encode() + b"\0" * (len(uid) % 2))


secret = []  # patient strings that must never appear
ANSWERS = []  # every JSON answer
with ct.Server(config=CONFIG, timeout=120) as srv:
    st, h, info = srv.json("GET", "/v1/models/chexnet")
    C.check(st == 200 and info["output"]["activation"] == "sigmoid" and
            info["output"]["activation_source"] == "model", f"chexnet ends in its Sigmoid: {info}")
    layer, sha = info["default_layer"], info["sha256"]
    C.check("Relu" in layer, f"default layer is the last ReLU: {layer}")

    for name in ("CT_small.dcm", "MR_small.dcm"):
        ref = REFS[name]
        path = ref["path"]
        raw = read(path)
        ds = pydicom.dcmread(path)
        secret += patient_strings(ds)
        probs = np.array(ref["probabilities"])

        # ---- three named findings, all 14 predictions ----
        st, h, data, j = post(srv, EXPLAIN, raw, DCM_HDR,
                              "target=Effusion,Pneumonia,Mass&topk=14&outputs=raw,bbox")
        C.check(st == 200, f"{name}: explain {st} {data[:300]!r}")
        if st != 200:
            continue
        preds = j["predictions"]
        got = {p["label"]: p["probability"] for p in preds}
        want = {LABELS[i]: probs[i] for i in range(14)}
        err = rel_err([got[k] for k in LABELS], [want[k] for k in LABELS])
        C.check(len(preds) == 14 and err <= PROB_RTOL,
                f"{name}: probabilities vs PyTorch: max rel error {err:.2e}")
        order = [p["label"] for p in preds]
        C.check(order == [LABELS[i] for i in np.argsort(-probs, kind="stable")],
                f"{name}: predictions ranked by probability: {order}")
        print(f"{name}: 14 probabilities, max rel error vs PyTorch {err:.2e}")
        exps = j["explanations"]
        C.check([e["label"] for e in exps] == ["Effusion", "Pneumonia", "Mass"],
                f"{name}: one map per named finding, in order: {[e['label'] for e in exps]}")
        for e in exps:
            m = np.array(e["raw"]["values"], np.float64).reshape(e["raw"]["height"],
                                                                 e["raw"]["width"])
            r = np.array(ref["gradcam"][e["label"]])
            d = float(np.max(np.abs(m - r))) if m.shape == r.shape else float("inf")
            C.check(d <= MAP_ATOL, f"{name}: {e['label']} Grad-CAM vs PyTorch: max |diff| {d}")
            C.check(abs(e["probability"] - want[e["label"]]) <= PROB_RTOL * want[e["label"]],
                    f"{name}: {e['label']} probability")
            print(f"{name}: {e['label']}: map {m.shape[1]}x{m.shape[0]}, max |diff| vs PyTorch "
                  f"Grad-CAM {d:.2e}")
        # ---- "dicom": UIDs, geometry, window, peak/box per map in the frame's pixel grid ----
        dj = j.get("dicom") or {}
        for key, kw in (("study_instance_uid", "StudyInstanceUID"),
                        ("series_instance_uid", "SeriesInstanceUID"),
                        ("sop_instance_uid", "SOPInstanceUID"), ("sop_class_uid", "SOPClassUID")):
            C.check(dj.get(key) == str(ds[kw].value), f"{name}: dicom.{key} {dj.get(key)}")
        C.check(dj.get("rows") == ds.Rows and dj.get("columns") == ds.Columns and
                dj.get("frame") == 0 and dj.get("frames") == 1 and
                j["image"]["width"] == ds.Columns and j["image"]["height"] == ds.Rows,
                f"{name}: geometry {dj}")
        C.check(np.allclose(dj.get("pixel_spacing"), [float(x) for x in ds.PixelSpacing]),
                f"{name}: pixel_spacing {dj.get('pixel_spacing')}")
        w = dj.get("window") or {}
        if "WindowCenter" in ds:
            C.check(w.get("source") == "file_window" and w["center"] == float(ds.WindowCenter) and
                    w["width"] == float(ds.WindowWidth), f"{name}: the file's window {w}")
        else:
            C.check(w.get("source") == "auto" and "fallback" in w,
                    f"{name}: no window in the file: auto, with the reason {w}")
        C.check(len(dj.get("maps", [])) == 3, f"{name}: dicom.maps")
        for dm, e in zip(dj.get("maps", []), exps):
            C.check(dm["label"] == e["label"] and dm["peak"] == e["peak"] and
                    dm["bbox"] == e["bbox"] and 0 <= dm["bbox"]["x0"] <= dm["bbox"]["x1"] <
                    ds.Columns and 0 <= dm["bbox"]["y0"] <= dm["bbox"]["y1"] < ds.Rows,
                    f"{name}: dicom.maps {dm} vs {e.get('peak')} {e.get('bbox')}")
        C.check(j["options"]["window"] == "dicom" and j["options"]["frame"] == 0,
                f"{name}: options echo {j['options'].get('window')}")

        # ---- the display image camd fed the model (overlay with alpha 0) ----
        st, h, data, j = post(srv, EXPLAIN, raw, DCM_HDR, "alpha=0&outputs=overlay&target=Mass")
        frame8 = np.array(ref["frame8"], np.uint8)
        ov = png_array(j["explanations"][0]["overlay"]) if st == 200 else None
        C.check(ov is not None and ov.shape == frame8.shape + (3,) and
                all(np.array_equal(ov[:, :, c], frame8) for c in range(3)),
                f"{name}: display image differs from the reference (Modality LUT + VOI)")

        # ---- topK ranks by probability ----
        st, h, data, j = post(srv, EXPLAIN, raw, DCM_HDR, "target=top3&outputs=bbox")
        top3 = [LABELS[i] for i in np.argsort(-probs, kind="stable")[:3]]
        C.check(st == 200 and [e["label"] for e in j["explanations"]] == top3,
                f"{name}: top3 maps {st} {[e['label'] for e in (j or {}).get('explanations', [])]}"
                f" want {top3}")

        # ---- the same file as a multipart part of type application/dicom and as base64 ----
        body, ctype = ct.multipart({"target": "Effusion"},
                                   {"file": (name, raw, "application/dicom")})
        st, h, data, j = post(srv, EXPLAIN, body, {"Content-Type": ctype})
        C.check(st == 200 and j["dicom"]["sop_instance_uid"] == str(ds.SOPInstanceUID) and
                abs(j["explanations"][0]["probability"] - want["Effusion"]) <=
                PROB_RTOL * want["Effusion"], f"{name}: multipart application/dicom part: {st}")
        st, h, data, j = post(srv, EXPLAIN, json.dumps(
            {"image": base64.b64encode(raw).decode(), "target": "Effusion", "window": "auto"}),
            {"Content-Type": "application/json"})
        C.check(st == 200 and j["dicom"]["window"]["source"] == "auto" and
                j["options"]["window"] == "auto", f"{name}: base64 JSON with window=auto: {st}")

        # ---- 1-channel model: the gray frame directly ----
        st, h, data, j = post(srv, "/v1/models/gray/explain", raw, DCM_HDR, "topk=4")
        if st == 200:
            gp = {p["index"]: p["probability"] for p in j["predictions"]}
            gerr = rel_err([gp[i] for i in range(4)], ref["gray_probabilities"])
            C.check(gerr <= PROB_RTOL, f"{name}: 1-channel model vs PyTorch: {gerr:.2e}")
            print(f"{name}: 1-channel model, max rel error vs PyTorch {gerr:.2e}")
        else:
            C.check(False, f"{name}: 1-channel model: {st} {data[:200]!r}")

        # ---- outputs=dicom: one Secondary Capture per map, one series ----
        st, h, data, j = post(srv, EXPLAIN, raw, DCM_HDR,
                              "target=Effusion,Mass&outputs=overlay,dicom&window=lung")
        C.check(st == 200, f"{name}: outputs=dicom {st} {data[:300]!r}")
        scs = [e.get("secondary_capture") for e in (j or {}).get("explanations", [])]
        C.check(len(scs) == 2 and all(scs), f"{name}: a Secondary Capture per map")
        if len(scs) == 2 and all(scs):
            C.check(scs[0]["series_instance_uid"] == scs[1]["series_instance_uid"] and
                    scs[0]["sop_instance_uid"] != scs[1]["sop_instance_uid"],
                    f"{name}: the maps of one request share a series")
            for e, sc in zip(j["explanations"], scs):
                with tempfile.NamedTemporaryFile(suffix=".dcm", delete=False) as f:
                    f.write(base64.b64decode(sc["data"]))
                expect = {"model": "chexnet", "sha256": sha, "layer": layer,
                          "target": e["label"], "method": "gradcam"}
                out = validate_sc(f.name, path, 0, UID_ROOT, sc["series_instance_uid"],
                                             sc["sop_instance_uid"], expect,
                                             png_array(e["overlay"]), f"{name} {e['label']} SC")
                C.check(int(out.InstanceNumber) == (1 if e is j["explanations"][0] else 2),
                        f"{name}: instance numbers follow the maps")
                os.unlink(f.name)

        # ---- Accept: application/dicom: the object itself ----
        st, h, data, _ = post(srv, EXPLAIN, raw, dict(DCM_HDR, Accept="application/dicom"),
                              "target=Effusion")
        C.check(st == 200 and h.get("content-type") == "application/dicom" and
                data[128:132] == b"DICM", f"{name}: Accept: application/dicom {st} {h}")
        if st == 200:
            st2, h2, d2, j2 = post(srv, EXPLAIN, raw, DCM_HDR, "target=Effusion&outputs=overlay")
            with tempfile.NamedTemporaryFile(suffix=".dcm", delete=False) as f:
                f.write(data)
            sc = pydicom.dcmread(f.name)
            expect = {"model": "chexnet", "sha256": sha, "layer": layer, "target": "Effusion",
                      "method": "gradcam"}
            validate_sc(f.name, path, 0, UID_ROOT, str(sc.SeriesInstanceUID),
                                   str(sc.SOPInstanceUID), expect,
                                   png_array(j2["explanations"][0]["overlay"]),
                                   f"{name} Accept: application/dicom")
            os.unlink(f.name)

    # ---- multi-frame: frame option, SC references the frame ----
    rt = get_testdata_file("rtdose.dcm")
    rt_raw = read(rt)
    st, h, data, j = post(srv, EXPLAIN, rt_raw, DCM_HDR, "frame=14&outputs=bbox")
    C.check(st == 200 and j["dicom"]["frame"] == 14 and j["dicom"]["frames"] == 15,
            f"rtdose frame 14: {st} {data[:200]!r}")
    st, h, data, _ = post(srv, EXPLAIN, rt_raw, dict(DCM_HDR, Accept="application/dicom"),
                          "frame=14&target=Edema")
    C.check(st == 200 and data[128:132] == b"DICM", f"rtdose frame 14 as DICOM: {st}")
    if st == 200:
        with tempfile.NamedTemporaryFile(suffix=".dcm", delete=False) as f:
            f.write(data)
        sc = pydicom.dcmread(f.name)
        validate_sc(f.name, rt, 14, UID_ROOT, str(sc.SeriesInstanceUID), str(sc.SOPInstanceUID),
                    {"model": "chexnet", "sha256": sha, "layer": layer, "target": "Edema",
                     "method": "gradcam"}, None, "rtdose frame 14 SC")
        os.unlink(f.name)
    rgb2 = get_testdata_file("SC_rgb_rle_2frame.dcm")
    st, h, data, _ = post(srv, EXPLAIN, read(rgb2), dict(DCM_HDR, Accept="application/dicom"),
                          "frame=1")
    C.check(st == 200 and data[128:132] == b"DICM", f"RGB 2-frame, frame 1: {st}")
    if st == 200:
        with tempfile.NamedTemporaryFile(suffix=".dcm", delete=False) as f:
            f.write(data)
        sc = pydicom.dcmread(f.name)
        validate_sc(f.name, rgb2, 1, UID_ROOT, str(sc.SeriesInstanceUID),
                               str(sc.SOPInstanceUID),
                               {"model": "chexnet", "sha256": sha, "layer": layer,
                                "target": sc.DerivationDescription.split("target ")[1].split(",")[0],
                                "method": "gradcam"}, None, "RGB 2-frame frame 1 SC")
        os.unlink(f.name)

    # ---- 16-bit gray PNG with a window ----
    hu16 = read(os.path.join(FIX, "ct_hu16.png"))
    st, h, data, j = post(srv, EXPLAIN, hu16, {"Content-Type": "image/png"},
                          "window=424,1500&alpha=0&outputs=overlay")
    v = np.array(REFS["ct_hu16.png"]["values"], np.float64)
    t = ((v - (424 - 0.5)) / (1500 - 1) + 0.5).clip(0, 1)
    want8 = np.floor(255 * t + 0.5).astype(np.uint8)
    ov = png_array(j["explanations"][0]["overlay"]) if st == 200 else None
    C.check(st == 200 and j["image"]["window"]["source"] == "request" and
            j["image"]["window"]["center"] == 424 and ov is not None and
            np.array_equal(ov[:, :, 0], want8), f"16-bit PNG with window=424,1500: {st}")

    # ---- PALETTE COLOR: the model and the overlay see pydicom's apply_color_lut RGB ----
    pal = palette_file()
    st, h, data, j = post(srv, EXPLAIN, pal, DCM_HDR, "alpha=0&outputs=overlay&target=Mass")
    want = palette_rgb8(pal)
    ov = png_array(j["explanations"][0]["overlay"]) if st == 200 else None
    C.check(st == 200 and ov is not None and ov.shape == want.shape and np.array_equal(ov, want),
            f"PALETTE COLOR (16-bit entries, first mapped 100): the overlay at alpha 0 equals "
            f"pydicom's apply_color_lut: {st} {data[:200]!r}")
    C.check(st == 200 and j["dicom"]["photometric"] == "PALETTE COLOR" and
            j["dicom"]["window"] is None, f"PALETTE COLOR: dicom {(j or {}).get('dicom')}")

    # ---- High-Throughput JPEG 2000: CT_small re-encoded losslessly by OpenJPH ----
    ct_path = REFS["CT_small.dcm"]["path"]
    for uid in ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202"):
        ht = htj2k_file(ct_path, uid)
        st, h, data, j = post(srv, EXPLAIN, ht, DCM_HDR,
                              "alpha=0&outputs=overlay,raw&target=Effusion&topk=14")
        probs = np.array(REFS["CT_small.dcm"]["probabilities"])
        ok = st == 200
        if ok:
            got = {p["label"]: p["probability"] for p in j["predictions"]}
            err = rel_err([got[k] for k in LABELS], probs)
            ov = png_array(j["explanations"][0]["overlay"])
            frame8 = np.array(REFS["CT_small.dcm"]["frame8"], np.uint8)
            m = np.array(j["explanations"][0]["raw"]["values"]).reshape(
                j["explanations"][0]["raw"]["height"], j["explanations"][0]["raw"]["width"])
            d = float(np.max(np.abs(m - np.array(REFS["CT_small.dcm"]["gradcam"]["Effusion"]))))
            ok = (err <= PROB_RTOL and d <= MAP_ATOL and ov.shape == frame8.shape + (3,) and
                  np.array_equal(ov[:, :, 0], frame8) and
                  j["dicom"]["transfer_syntax"]["uid"] == uid)
            print(f"CT_small as HTJ2K {uid}: probabilities max rel error vs PyTorch {err:.2e}, "
                  f"Grad-CAM max |diff| {d:.2e}, display frame equal to the uncompressed one")
        C.check(ok, f"CT_small as HTJ2K {uid}: same frame, probabilities and map as the "
                f"uncompressed file: {st} {data[:300]!r}")

    # ---- errors ----
    ct_raw = read(REFS["CT_small.dcm"]["path"])

    def expect_error(what, status, code, words, body, headers, query="", path=EXPLAIN):
        st, h, data, j = post(srv, path, body, headers, query)
        msg = ((j or {}).get("error") or {}).get("message", "")
        ok = st == status and (j or {}).get("error", {}).get("code") == code and all(
            w.lower() in msg.lower() for w in words)
        C.check(ok, f"{what}: want {status} {code} {words}, got {st} {data[:300]!r}")
        return msg

    expect_error("truncated DICOM", 400, "bad_format", ["truncated"], ct_raw[:3000], DCM_HDR)
    # CT_small with its meta header claiming JPEG XL Lossless
    expect_error("unsupported transfer syntax", 415, "unsupported_media_type",
                 ["1.2.840.10008.1.2.4.110", "JPEG XL Lossless", "High-Throughput JPEG 2000"],
                 patch_ts(ct_raw, b"1.2.840.10008.1.2.4.110\0"), DCM_HDR)
    # a corrupt HTJ2K codestream: 400, and the server carries on
    ht = htj2k_file(ct_path, "1.2.840.10008.1.2.4.201", cut=True)
    expect_error("truncated HTJ2K codestream", 400, "bad_format", ["JPEG 2000"], ht, DCM_HDR)
    # a code-block on which OpenJPEG 2.5.0's HT decoder aborts (assert): 400, the server lives on
    expect_error("HTJ2K code-block that aborts OpenJPEG", 400, "bad_format",
                 ["JPEG 2000", "OpenJPEG stopped", "High-Throughput"],
                 read(os.path.join(HERE, "..", "fuzz", "corpus", "dicom",
                                   "abort-htj2k-mel-init-assert.dcm")), DCM_HDR)
    # a window on a colour frame (RGB) and on PALETTE COLOR: 400, it applies to grayscale only
    rgb_raw = read(rgb2)
    expect_error("window on an RGB frame", 400, "invalid_argument",
                 ["window='lung'", "grayscale", "colour (RGB)"], rgb_raw, DCM_HDR, "window=lung")
    expect_error("window on a PALETTE COLOR frame", 400, "invalid_argument",
                 ["window='auto'", "grayscale", "PALETTE COLOR"], pal, DCM_HDR, "window=auto")
    body, ctype = ct.multipart({"window": "40,400", "frame": "1"},
                               {"image": ("rgb.dcm", rgb_raw, "application/dicom")})
    expect_error("window on an RGB frame (multipart)", 400, "invalid_argument",
                 ["window='40,400'", "grayscale"], body, {"Content-Type": ctype})
    # the CLI gives the same message (exit status 1)
    r = subprocess.run([ct.CAMD, "explain", "--config", CONFIG, "--name", "chexnet", "--image",
                        rgb2, "--window", "lung", "--json", "-"], capture_output=True, text=True,
                       cwd=FIX, timeout=300)
    C.check(r.returncode == 1 and "window='lung' applies to grayscale images only" in r.stderr
            and "colour (RGB)" in r.stderr and not r.stdout.strip(),
            f"CLI: window on an RGB DICOM: exit {r.returncode} {r.stderr[-300:]!r}")
    expect_error("frame out of range", 400, "invalid_argument", ["frame 1", "1 frame"], ct_raw,
                 DCM_HDR, "frame=1")
    expect_error("window garbage", 400, "invalid_argument", ["window", "lung"], ct_raw, DCM_HDR,
                 "window=garbage")
    expect_error("several maps as one DICOM object", 400, "invalid_argument",
                 ["one Secondary Capture", "outputs=dicom"], ct_raw,
                 dict(DCM_HDR, Accept="application/dicom"), "target=Effusion,Mass")
    expect_error("a DICOM answer from a PNG", 400, "invalid_argument", ["needs a DICOM input"],
                 hu16, {"Content-Type": "image/png"}, "outputs=dicom")
    expect_error("predict as DICOM", 406, "not_acceptable", ["predict"], ct_raw,
                 dict(DCM_HDR, Accept="application/dicom"), path="/v1/models/chexnet/predict")
    C.check(srv.stop() == 0, "camd exits 0 on SIGTERM (under ASan: no leak)")
    log = srv.text()

with ct.Server("--max-frames", "8", "--max-image-pixels", "10000", config=CONFIG,
               timeout=120) as srv:
    expect_error("too many frames", 413, "limit_exceeded", ["frames", "15"], rt_raw, DCM_HDR)
    expect_error("too many pixels", 413, "limit_exceeded", ["128x128", "10000"], ct_raw, DCM_HDR)
    C.check(srv.stop() == 0, "camd exits 0 on SIGTERM (under ASan: no leak)")
    log += srv.text()

# ---- nothing of the patient, anywhere ----
C.check(len(secret) >= 2, f"the sources carry patient data to look for: {secret}")
for s in secret:
    C.check(s not in log, f"patient data '{s}' in the server log")
    C.check(not any(s.encode() in a for a in ANSWERS), f"patient data '{s}' in a JSON answer")
print(f"patient strings checked absent from answers' JSON and the log: {len(secret)}")
C.done("dicom.service")
