# Validates the Secondary Captures test_dicom wrote: dciodvfy (dicom3tools) and pydicom.
"""Checks every OUT_DIR/sc/NAME.dcm listed in OUT_DIR/sc/manifest.txt
(lines: NAME SOURCE FRAME UID_ROOT SERIES_UID SOP_UID):

  - dciodvfy reports no error (warnings are listed, not fatal);
  - pydicom reads it: Secondary Capture, RGB 8-bit, the source frame's Rows/Columns, pixels equal
    to the overlay test_dicom wrote beside it (NAME.rgb);
  - same study: StudyInstanceUID and every Patient / Clinical Trial Subject attribute (groups
    0010, 0012) and SpecificCharacterSet equal to the source's; new Series/SOP Instance UIDs under
    the UID root, valid and at most 64 characters;
  - ImageType DERIVED\\SECONDARY, BurnedInAnnotation YES, Source Image Sequence -> the source SOP
    Class/Instance (frame number for multi-frame sources), PixelSpacing copied, the algorithm
    named (Series Description, Derivation Description, Contributing Equipment), and Lossy Image
    Compression 01 exactly when the source was lossy.

Usage: check_sc.py OUT_DIR   (or import it: check_sc_file validates one file)
"""
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pydicom

warnings.simplefilter("ignore")
LOSSY_TS = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
            "1.2.840.10008.1.2.4.91"}
# single-frame IODs (a reference to them carries no Referenced Frame Number)
SINGLE_FRAME_CLASSES = {"1.2.840.10008.5.1.4.1.1." + s for s in (
    "1", "1.1", "1.1.1", "1.2", "1.2.1", "1.3", "1.3.1", "2", "4", "6.1", "7", "128")}
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def code(seq):
    it = seq[0]
    return (it.CodingSchemeDesignator, it.CodeValue)


def check_sc_file(path, source, frame, root, series_uid, sop_uid, expect, want_rgb=None,
                  what=None):
    """Validates one Secondary Capture (see the module docstring); failures are appended to
    `failures`. expect: {"model", "sha256", "layer", "target", "method"} the algorithm named;
    want_rgb: the overlay's pixels (rows x columns x 3) or None. Returns the pydicom dataset."""
    what = what or f"{os.path.basename(path)} (from {os.path.basename(source)})"
    # dciodvfy: no errors
    r = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
    out = (r.stdout + r.stderr).splitlines()
    errors = [ln for ln in out if ln.startswith("Error")]
    warns = [ln for ln in out if ln.startswith("Warning")]
    check(not errors, f"{what}: dciodvfy errors: {errors}")
    print(f"check_sc: {what}: dciodvfy {len(errors)} error(s), {len(warns)} warning(s)")

    src = pydicom.dcmread(source)
    sc = pydicom.dcmread(path)
    check(sc.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", f"{what}: transfer syntax")
    check(sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7", f"{what}: SOP class {sc.SOPClassUID}")
    check(sc.file_meta.MediaStorageSOPInstanceUID == sc.SOPInstanceUID, f"{what}: meta UID")
    # UIDs
    check(sc.SOPInstanceUID == sop_uid and sc.SeriesInstanceUID == series_uid,
          f"{what}: UIDs differ from what camd reported")
    for uid in (sc.SOPInstanceUID, sc.SeriesInstanceUID):
        check(len(uid) <= 64 and UID_RE.match(uid) and uid.startswith(root + "."),
              f"{what}: bad UID {uid} for root {root}")
    check(sc.SeriesInstanceUID != src.SeriesInstanceUID, f"{what}: series UID reused")
    check(sc.SOPInstanceUID != src.SOPInstanceUID, f"{what}: SOP instance UID reused")
    check(sc.StudyInstanceUID == src.StudyInstanceUID, f"{what}: not in the source's study")
    # patient / clinical trial subject modules and character set copied as they are
    for elem in src:
        if elem.tag.group in (0x0010, 0x0012) and elem.tag.element != 0 and not elem.tag.is_private:
            check(elem.tag in sc and sc[elem.tag].value == elem.value,
                  f"{what}: {elem.keyword or elem.tag} not copied")
    for kw in ("SpecificCharacterSet", "AccessionNumber", "StudyDate", "StudyTime", "StudyID",
               "ReferringPhysicianName", "StudyDescription"):
        if kw in src:
            check(kw in sc and sc[kw].value == src[kw].value, f"{what}: {kw} not copied")
    if "PatientName" in src:
        check(str(sc.PatientName) == str(src.PatientName), f"{what}: patient name decodes "
              "differently")
    # derived image
    check(list(sc.ImageType) == ["DERIVED", "SECONDARY"], f"{what}: ImageType {sc.ImageType}")
    check(sc.BurnedInAnnotation == "YES", f"{what}: BurnedInAnnotation")
    check(sc.ConversionType == "WSD", f"{what}: ConversionType")
    ref = sc.SourceImageSequence[0]
    check(ref.ReferencedSOPClassUID == src.SOPClassUID and
          ref.ReferencedSOPInstanceUID == src.SOPInstanceUID, f"{what}: source reference")
    nframes = int(getattr(src, "NumberOfFrames", 1) or 1)
    if nframes > 1 and src.SOPClassUID not in SINGLE_FRAME_CLASSES:
        check(int(ref.ReferencedFrameNumber) == frame + 1, f"{what}: referenced frame")
    elif nframes > 1:  # a single-frame IOD with several frames: the frame is named in words
        check("ReferencedFrameNumber" not in ref and
              f"frame {frame + 1} of" in sc.DerivationDescription, f"{what}: frame named")
    check(code(ref.PurposeOfReferenceCodeSequence) == ("DCM", "121322"), f"{what}: purpose")
    # the algorithm named
    check(expect["method"] in sc.SeriesDescription and expect["model"] in sc.SeriesDescription and
          len(sc.SeriesDescription) <= 64, f"{what}: SeriesDescription {sc.SeriesDescription}")
    for s in (expect["sha256"], expect["layer"], expect["target"], expect["method"]):
        check(s in sc.DerivationDescription, f"{what}: DerivationDescription lacks {s}")
    ce = sc.ContributingEquipmentSequence[0]
    check(ce.Manufacturer == "camd" and ce.SoftwareVersions and
          code(ce.PurposeOfReferenceCodeSequence) == ("DCM", "109102") and
          expect["sha256"][:16] in ce.ContributionDescription, f"{what}: contributing equipment")
    check(code(sc.DerivationCodeSequence)[0] == "99CAMD", f"{what}: derivation code")
    # lossy flag
    src_lossy = (src.file_meta.TransferSyntaxUID in LOSSY_TS or
                 src.get("LossyImageCompression") == "01")
    check((sc.get("LossyImageCompression") == "01") == src_lossy, f"{what}: lossy flag")
    # geometry and pixels
    check(sc.Rows == src.Rows and sc.Columns == src.Columns, f"{what}: geometry")
    check(sc.SamplesPerPixel == 3 and sc.PhotometricInterpretation == "RGB" and
          sc.BitsAllocated == 8 and sc.PlanarConfiguration == 0, f"{what}: pixel module")
    if "PixelSpacing" in src:
        check(list(sc.PixelSpacing) == list(src.PixelSpacing), f"{what}: PixelSpacing")
    got = sc.pixel_array
    check(got.shape == (src.Rows, src.Columns, 3), f"{what}: pixel array shape {got.shape}")
    if want_rgb is not None:
        check(np.array_equal(got.reshape(-1), np.asarray(want_rgb, dtype=np.uint8).reshape(-1)),
              f"{what}: pixels differ from the overlay")
    return sc


def main():
    OUT = sys.argv[1]
    SC = os.path.join(OUT, "sc")
    lines = [ln.split() for ln in open(os.path.join(SC, "manifest.txt")) if ln.strip()]
    check(len(lines) >= 5, f"only {len(lines)} secondary captures")
    expect = {"model": "densenet121", "sha256": "0123456789abcdef" * 4,
              "layer": "features.denseblock4", "target": "Effusion", "method": "gradcam"}
    for name, source, frame, root, series_uid, sop_uid in lines:
        path = os.path.join(SC, name + ".dcm")
        want = np.fromfile(os.path.join(SC, name + ".rgb"), dtype=np.uint8)
        check_sc_file(path, source, int(frame), root, series_uid, sop_uid, expect, want,
                      f"{name} (from {os.path.basename(source)})")
    for f in failures:
        print("check_sc: FAIL", f)
    print(f"check_sc: {len(lines)} secondary captures, {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
