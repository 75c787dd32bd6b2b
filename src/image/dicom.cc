/* DICOM toolkit layer (the only C++ in camd): parses Part 10 files with DCMTK, decodes frames with
 * DCMTK's codecs or OpenJPEG, and writes Secondary Capture instances. C API: camd/dicom.h; the
 * pixel pipeline itself is C (dicom_pixels.c, window.c) working on what this file hands over.
 *
 * Design notes
 * ------------
 * Toolkit choice, by measurement. Every DICOM image (a file with Pixel Data) that
 * python3-pydicom 2.3.1 and python3-nibabel 5.0.0 ship, plus the examples of libgdcm3.0 and
 * dicom3tools, 103 files: does the toolkit decode frame 0 (and do its stored values equal
 * pydicom's where pydicom decodes)? Each file in its own process.
 *
 *   transfer syntax         files pydicom DCMTK 3.6.7        GDCM 3.0.21           camd
 *   implicit VR LE              8       8  8                  7, 1 abort            8
 *   explicit VR LE             53      51  52 (refuses        53 (pads the          51 (also
 *                                          MR_truncated)      truncated file)       refuses badVR)
 *   explicit VR big endian      6       6  6 (32-bit: 16-bit  5, 1 abort            6 (as pydicom)
 *                                          words swapped)
 *   deflated explicit LE        1       1  1                  1                     1
 *   JPEG baseline              13      13  12 (implicit data  13                    12
 *                                          set, SC_rgb_jpeg)
 *   JPEG extended (12-bit)      2       0  2                  2                     2
 *   JPEG lossless SV1           2       0  2                  2                     2
 *   JPEG-LS lossless            1       0  1                  1                     1
 *   RLE lossless                9       9  9 =                8, 1 abort; 16/32-bit 9
 *                                                             RGB differ (4 files)
 *   JPEG 2000 lossless          4       3  0 (no codec)       4                     4
 *   JPEG 2000                   4       3  0 (no codec)       3                     3
 *   (all refuse JPEG2000-embedded-sequence-delimiter.dcm, a corrupt codestream)
 *
 * Robustness, 3000 mutations of 20 seed files (bit flips, bytes, truncation), fork per input:
 * DCMTK 0 crashes, 0 hangs; GDCM 287 crashes (SIGABRT: assert() is left on in Debian's build,
 * e.g. gdcmAttribute.h:443, which also aborts on the legitimate rtdose_1frame.dcm) and 50 hangs
 * over 10 s. A server cannot catch an abort, so camd uses DCMTK for parsing, the native and
 * DCMTK-coded syntaxes, and writing; the one syntax DCMTK 3.6.7 lacks, JPEG 2000, is decoded
 * here with OpenJPEG 2.5 (libopenjp2, the library GDCM and Pillow use for it) from the frame's
 * fragments, with pydicom's sign corrections. libFuzzer then found DCMTK weaknesses that are
 * worked around below: RLE segment offsets are trusted (out-of-bounds read), a declared element
 * length is allocated before it is read (from a buffer stream, and in a deflated data set), and
 * the JPEG bit-depth scan loops forever on a TEM marker.
 *
 * High-Throughput JPEG 2000 (Part 15, syntaxes .201/.202/.203), measured on OpenJPH-made
 * codestreams (tests/dicom/make_cases.py): Debian 12's OpenJPEG 2.5.0 decodes them (its HT block
 * decoder, ht_dec.c) bit-exactly for lossless 16-bit signed/unsigned gray and 8-bit RGB with the
 * reversible colour transform, and lossy ones within 1 of OpenJPH's own decoder; so they take the
 * JPEG 2000 path below (libopenjph is not needed). DCMTK 3.6.7 does not know their UIDs: the file
 * is handed to it labelled JPEG 2000 (same data set encoding), see open_impl. Debian's OpenJPEG
 * keeps assert() on and its HT decoder aborts on malformed code-blocks, so a frame that may use
 * HT code-blocks is decoded in a forked child (j2k_may_use_ht, opj_decode_isolated).
 *
 * Palette colour: the Red/Green/Blue Palette Color LUTs are read here (read_palette); segmented
 * LUTs are refused (DCMTK 3.6.7's dcmimage does not expand them either).
 *
 * Threads: codec registration and DCMTK's global flags are set once (std::call_once); each
 * handle is used by one thread at a time. DCMTK's logger is turned off (its messages can quote
 * element values). Exceptions never cross into C: every extern "C" entry catches everything.
 * Byte order: native frames are handed over in the file's byte order and swapped per
 * BitsAllocated in C (pydicom's reading: 32-bit big-endian samples are whole 32-bit values,
 * where DCMTK's OW handling would swap 16-bit words). */
#include <dcmtk/config/osconfig.h>

#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <fcntl.h>
#include <openjpeg.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "camd/core.h"
#include "image/image_internal.h"
}
#include "image/dicom_internal.h"

namespace {

/* ---- one-time toolkit setup ---- */
std::once_flag g_init_once;
bool g_dict_ok = false;

void toolkit_init() {
  OFLog::configure(OFLogger::OFF_LOG_LEVEL);
  /* Some writers encode the data set in implicit VR under an explicit transfer syntax (pydicom's
   * SC_rgb_jpeg.dcm); let DCMTK detect the data set's real encoding as pydicom does. */
  dcmAutoDetectDatasetXfer.set(OFTrue);
  DJDecoderRegistration::registerCodecs();
  DJLSDecoderRegistration::registerCodecs();
  DcmRLEDecoderRegistration::registerCodecs();
  g_dict_ok = dcmDataDict.isDictionaryLoaded();
}

int init_or_fail(camd_error *err) {
  std::call_once(g_init_once, toolkit_init);
  if (!g_dict_ok)
    return camd_error_set(err, CAMD_E_INTERNAL,
                          "the DCMTK data dictionary is not loaded (install Debian's libdcmtk17, "
                          "which ships /usr/share/libdcmtk17/dicom.dic, or set DCMDICTPATH)");
  return 0;
}

/* ---- supported transfer syntaxes ---- */
enum codec_kind { CODEC_NATIVE, CODEC_DCMTK, CODEC_J2K };
struct ts_entry {
  const char *uid;
  const char *name;
  codec_kind codec;
  const char *lossy_method; /* LossyImageCompressionMethod when the syntax is lossy, else NULL */
};
const ts_entry k_supported[] = {
    {"1.2.840.10008.1.2", "Implicit VR Little Endian", CODEC_NATIVE, nullptr},
    {"1.2.840.10008.1.2.1", "Explicit VR Little Endian", CODEC_NATIVE, nullptr},
    {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", CODEC_NATIVE, nullptr},
    {"1.2.840.10008.1.2.2", "Explicit VR Big Endian", CODEC_NATIVE, nullptr},
    {"1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", CODEC_DCMTK, "ISO_10918_1"},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", CODEC_DCMTK, "ISO_10918_1"},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", CODEC_DCMTK,
     nullptr},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
     CODEC_DCMTK, nullptr},
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", CODEC_DCMTK, nullptr},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", CODEC_DCMTK, "ISO_14495_1"},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)", CODEC_J2K, nullptr},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000", CODEC_J2K, "ISO_15444_1"},
    {"1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (Lossless Only)", CODEC_J2K, nullptr},
    {"1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
     CODEC_J2K, nullptr},
    {"1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000", CODEC_J2K, "ISO_15444_15"},
    {"1.2.840.10008.1.2.5", "RLE Lossless", CODEC_DCMTK, nullptr},
};
/* Names of syntaxes camd recognises but cannot decode (for the 415 message). */
const struct {
  const char *uid;
  const char *name;
} k_known_unsupported[] = {
    {"1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian"},
    {"1.2.840.10008.1.2.4.52", "JPEG Extended (Process 3 & 5) (retired)"},
    {"1.2.840.10008.1.2.4.53", "JPEG Spectral Selection, Non-Hierarchical (retired)"},
    {"1.2.840.10008.1.2.4.55", "JPEG Full Progression, Non-Hierarchical (retired)"},
    {"1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component (Lossless Only)"},
    {"1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component"},
    {"1.2.840.10008.1.2.4.94", "JPIP Referenced"},
    {"1.2.840.10008.1.2.4.95", "JPIP Referenced Deflate"},
    {"1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"},
    {"1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level"},
    {"1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1"},
    {"1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1"},
    {"1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video"},
    {"1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video"},
    {"1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2"},
    {"1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1"},
    {"1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1"},
    {"1.2.840.10008.1.2.4.110", "JPEG XL Lossless"},
    {"1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression"},
    {"1.2.840.10008.1.2.4.112", "JPEG XL"},
    {"1.2.840.10008.1.2.6.1", "RFC 2557 MIME encapsulation (retired)"},
    {"1.2.840.10008.1.2.6.2", "XML Encoding (retired)"},
};

const ts_entry *find_supported(const char *uid) {
  for (const ts_entry &e : k_supported)
    if (strcmp(e.uid, uid) == 0) return &e;
  return nullptr;
}

/* ---- small string helpers ---- */

/* Copies a DICOM string value without padding (leading/trailing spaces, trailing NULs), keeping
 * only printable ASCII (others become '?'), cut to size - 1. */
void copy_clean(char *dst, size_t size, const char *src) {
  if (!size) return;
  dst[0] = '\0';
  if (!src) return;
  while (*src == ' ') src++;
  size_t n = strlen(src);
  while (n && (src[n - 1] == ' ' || src[n - 1] == '\0')) n--;
  if (n > size - 1) n = size - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  dst[n] = '\0';
}

bool valid_uid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  if (s[0] == '.' || s[n - 1] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.') {
      if (s[i + 1] == '.') return false;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

/* A UID attribute, kept only when valid once its padding (spaces, NUL) is removed. */
void get_uid(DcmItem *item, const DcmTagKey &tag, char out[65]) {
  OFString v;
  out[0] = '\0';
  if (item->findAndGetOFString(tag, v).bad()) return;
  char tmp[80];
  copy_clean(tmp, sizeof(tmp), v.c_str());
  if (valid_uid(tmp)) memcpy(out, tmp, strlen(tmp) + 1);
}

void get_cs(DcmItem *item, const DcmTagKey &tag, char *out, size_t size) {
  OFString v;
  out[0] = '\0';
  if (item->findAndGetOFString(tag, v).good()) copy_clean(out, size, v.c_str());
}

/* An IS value: optional spaces, optional sign, digits. */
bool parse_is(const char *s, long long *out) {
  while (*s == ' ') s++;
  const char *p = s;
  if (*p == '+' || *p == '-') p++;
  if (*p < '0' || *p > '9') return false;
  errno = 0;
  char *end = nullptr;
  long long v = strtoll(s, &end, 10);
  if (errno) return false;
  while (*end == ' ') end++;
  if (*end) return false;
  *out = v;
  return true;
}

/* Reads a US attribute; false when absent or not a number. */
bool get_us(DcmItem *item, const DcmTagKey &tag, unsigned *out) {
  Uint16 v = 0;
  if (item->findAndGetUint16(tag, v).bad()) return false;
  *out = v;
  return true;
}

/* Reads a multi-valued DS attribute into out[0..max) (all values must parse and be finite);
 * returns how many, or -1 when the attribute is present but malformed. */
long get_ds_values(DcmItem *item, const DcmTagKey &tag, double *out, size_t max) {
  DcmElement *e = nullptr;
  if (item->findAndGetElement(tag, e).bad() || !e) return 0;
  unsigned long vm = e->getVM();
  if (e->getLength() == 0) return 0;
  size_t n = vm < max ? vm : max;
  for (size_t i = 0; i < n; i++) {
    Float64 v = 0;
    if (e->getFloat64(v, i).bad() || !std::isfinite(v)) return -1;
    out[i] = v;
  }
  return (long)n;
}

/* ---- the handle ---- */
}  // namespace

struct camd_dicom {
  DcmFileFormat ff;
  camd_dicom_info info{};
  camd__dicom_pixmod pm{};
  const ts_entry *ts = nullptr;
  codec_kind codec = CODEC_NATIVE;
  bool big_endian = false;
  size_t frame_bytes = 0;              /* native: bytes per frame (BitsAllocated 1: unused) */
  size_t frame_bits = 0;               /* native BitsAllocated 1: bits per frame */
  std::vector<Uint32> j2k_frame_start; /* J2K: first fragment (item index) of each frame */
  int fd = -1; /* memfd holding the file; DCMTK reads large values from it on demand */

  ~camd_dicom() {
    free(pm.modality_lut.data);
    for (camd__dicom_lut &l : pm.voi_luts) free(l.data);
    for (camd__dicom_lut &l : pm.palette_luts) free(l.data);
    if (fd >= 0) close(fd);
  }
};

namespace {

/* Reads a LUT item (Modality or VOI LUT Sequence) into lut. */
int read_lut(DcmItem *item, bool signed_first, const char *what, camd__dicom_lut *lut,
             camd_error *err) {
  DcmElement *d = nullptr;
  if (item->findAndGetElement(DCM_LUTDescriptor, d).bad() || !d || d->getVM() != 3)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "%s: LUTDescriptor (0028,3002) is missing or does "
                          "not have 3 values",
                          what);
  Uint16 desc[3];
  for (unsigned long i = 0; i < 3; i++) {
    if (d->ident() == EVR_SS) {
      Sint16 v = 0;
      if (d->getSint16(v, i).bad())
        return camd_error_set(err, CAMD_E_FORMAT,
                              "%s: bad "
                              "LUTDescriptor",
                              what);
      desc[i] = (Uint16)v;
    } else if (d->getUint16(desc[i], i).bad()) {
      return camd_error_set(err, CAMD_E_FORMAT, "%s: bad LUTDescriptor", what);
    }
  }
  size_t entries = desc[0] ? desc[0] : 65536;
  int bits = desc[2];
  if (bits < 1 || bits > 16)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "%s: LUTDescriptor gives %d bits per entry "
                          "(1..16 expected)",
                          what, bits);
  DcmElement *data = nullptr;
  if (item->findAndGetElement(DCM_LUTData, data).bad() || !data)
    return camd_error_set(err, CAMD_E_FORMAT, "%s: LUTData (0028,3006) is missing", what);
  Uint16 *vals = nullptr;
  if (data->getUint16Array(vals).bad() || !vals)
    return camd_error_set(err, CAMD_E_FORMAT, "%s: LUTData is not 16-bit data", what);
  size_t have = data->getLength() / 2;
  if (have < entries)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "%s: LUTData has %zu entries, LUTDescriptor "
                          "declares %zu",
                          what, have, entries);
  lut->data = (uint16_t *)malloc(entries * sizeof(uint16_t));
  if (!lut->data) return camd_error_set(err, CAMD_E_NOMEM, "out of memory reading a LUT");
  memcpy(lut->data, vals, entries * sizeof(uint16_t));
  lut->entries = entries;
  lut->bits = bits;
  lut->first_mapped = signed_first ? (int64_t)(int16_t)desc[1] : (int64_t)desc[1];
  OFString ex;
  lut->explanation[0] = '\0';
  if (item->findAndGetOFString(DCM_LUTExplanation, ex).good())
    copy_clean(lut->explanation, sizeof(lut->explanation), ex.c_str());
  return 0;
}

/* The Red, Green and Blue Palette Color Lookup Tables of a PALETTE COLOR image (PS3.3
 * C.7.6.3.1.5, C.7.6.3.1.6): descriptor = entries (0 = 65536), first mapped value (signed when
 * PixelRepresentation is 1), bits per entry (8 or 16); the data one entry per 16-bit word, or for
 * 8-bit entries also two per word / one per byte (OB), as pydicom reads them. Segmented tables
 * (C.7.9.2) are refused: DCMTK 3.6.7 does not expand them either. */
int read_palette(DcmItem *ds, bool signed_first, camd__dicom_pixmod *pm, camd_error *err) {
  static const char *const names[3] = {"Red", "Green", "Blue"};
  const DcmTagKey desc_tags[3] = {DCM_RedPaletteColorLookupTableDescriptor,
                                  DCM_GreenPaletteColorLookupTableDescriptor,
                                  DCM_BluePaletteColorLookupTableDescriptor};
  const DcmTagKey data_tags[3] = {DCM_RedPaletteColorLookupTableData,
                                  DCM_GreenPaletteColorLookupTableData,
                                  DCM_BluePaletteColorLookupTableData};
  const DcmTagKey seg_tags[3] = {DCM_SegmentedRedPaletteColorLookupTableData,
                                 DCM_SegmentedGreenPaletteColorLookupTableData,
                                 DCM_SegmentedBluePaletteColorLookupTableData};
  for (int c = 0; c < 3; c++) {
    camd__dicom_lut *lut = &pm->palette_luts[c];
    DcmElement *d = nullptr;
    if (ds->findAndGetElement(desc_tags[c], d).bad() || !d || d->getVM() != 3)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "PALETTE COLOR image: the %s Palette Color Lookup Table Descriptor "
                            "(0028,110%d) is missing or does not have 3 values",
                            names[c], c + 1);
    Uint16 desc[3];
    for (unsigned long i = 0; i < 3; i++) {
      Sint16 sv = 0;
      bool bad = d->ident() == EVR_SS ? d->getSint16(sv, i).bad() : d->getUint16(desc[i], i).bad();
      if (d->ident() == EVR_SS) desc[i] = (Uint16)sv;
      if (bad)
        return camd_error_set(err, CAMD_E_FORMAT,
                              "PALETTE COLOR image: bad %s Palette Color Lookup Table Descriptor",
                              names[c]);
    }
    size_t entries = desc[0] ? desc[0] : 65536;
    int bits = desc[2];
    int64_t first = signed_first ? (int64_t)(int16_t)desc[1] : (int64_t)desc[1];
    if (bits != 8 && bits != 16)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "PALETTE COLOR image: the %s Palette Color Lookup Table Descriptor "
                            "gives %d bits per entry (8 or 16 expected)",
                            names[c], bits);
    if (c > 0 && (entries != pm->palette_luts[0].entries ||
                  first != pm->palette_luts[0].first_mapped || bits != pm->palette_luts[0].bits))
      return camd_error_set(err, CAMD_E_FORMAT,
                            "PALETTE COLOR image: the %s Palette Color Lookup Table Descriptor "
                            "(%zu entries, first %lld, %d bits) differs from the Red one (%zu, "
                            "%lld, %d)",
                            names[c], entries, (long long)first, bits, pm->palette_luts[0].entries,
                            (long long)pm->palette_luts[0].first_mapped, pm->palette_luts[0].bits);
    DcmElement *e = nullptr;
    if (ds->findAndGetElement(data_tags[c], e).bad() || !e) {
      if (ds->tagExists(seg_tags[c]))
        return camd_error_set(err, CAMD_E_UNSUPPORTED,
                              "PALETTE COLOR image with segmented palette color lookup tables "
                              "(Segmented %s Palette Color Lookup Table Data, 0028,122%d): camd "
                              "decodes only the plain Palette Color Lookup Table Data",
                              names[c], c + 1);
      return camd_error_set(err, CAMD_E_FORMAT,
                            "PALETTE COLOR image: the %s Palette Color Lookup Table Data "
                            "(0028,120%d) is missing",
                            names[c], c + 1);
    }
    lut->data = (uint16_t *)malloc(entries * sizeof(uint16_t));
    if (!lut->data) return camd_error_set(err, CAMD_E_NOMEM, "out of memory reading a palette");
    lut->entries = entries;
    lut->bits = bits;
    lut->first_mapped = first;
    size_t bytes = e->getLength();
    if (e->ident() == EVR_OB || e->ident() == EVR_UN) {
      Uint8 *b = nullptr;
      if (bits != 8 || bytes < entries || e->getUint8Array(b).bad() || !b)
        return camd_error_set(err, CAMD_E_FORMAT,
                              "PALETTE COLOR image: the %s Palette Color Lookup Table Data has "
                              "%zu bytes for %zu entries of %d bits",
                              names[c], bytes, entries, bits);
      for (size_t i = 0; i < entries; i++) lut->data[i] = b[i];
      continue;
    }
    Uint16 *w = nullptr;
    if (e->getUint16Array(w).bad() || !w)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "PALETTE COLOR image: the %s Palette Color Lookup Table Data is not "
                            "8- or 16-bit data",
                            names[c]);
    size_t words = bytes / 2;
    if (words >= entries) { /* one entry per word */
      for (size_t i = 0; i < entries; i++) {
        if (bits == 8 && w[i] > 255)
          return camd_error_set(err, CAMD_E_FORMAT,
                                "PALETTE COLOR image: entry %zu of the %s Palette Color Lookup "
                                "Table is %u, over the 8 bits its descriptor declares",
                                i, names[c], (unsigned)w[i]);
        lut->data[i] = w[i];
      }
    } else if (bits == 8 && words * 2 >= entries) { /* 8-bit entries, two per word, LSB first */
      for (size_t i = 0; i < entries; i++)
        lut->data[i] = (uint16_t)((w[i / 2] >> (8 * (i % 2))) & 0xFF);
    } else {
      return camd_error_set(err, CAMD_E_FORMAT,
                            "PALETTE COLOR image: the %s Palette Color Lookup Table Data has "
                            "%zu bytes, its descriptor declares %zu entries of %d bits",
                            names[c], bytes, entries, bits);
    }
  }
  pm->palette = true;
  return 0;
}

const char *photometric_ok(const char *pi, int spp, codec_kind codec) {
  if (spp == 1) {
    if (!strcmp(pi, "MONOCHROME1") || !strcmp(pi, "MONOCHROME2") || !strcmp(pi, "PALETTE COLOR"))
      return nullptr;
    return "PhotometricInterpretation is not MONOCHROME1, MONOCHROME2 or PALETTE COLOR for 1 "
           "sample per pixel";
  }
  if (!strcmp(pi, "RGB") || !strcmp(pi, "YBR_FULL") || !strcmp(pi, "YBR_FULL_422")) return nullptr;
  if ((!strcmp(pi, "YBR_RCT") || !strcmp(pi, "YBR_ICT")) && codec == CODEC_J2K) return nullptr;
  return "PhotometricInterpretation is not RGB, YBR_FULL or YBR_FULL_422 (or YBR_RCT/YBR_ICT "
         "with JPEG 2000) for 3 samples per pixel";
}

void list_supported(char *buf, size_t size) {
  size_t off = 0;
  buf[0] = '\0';
  for (const ts_entry &e : k_supported) {
    int n = snprintf(buf + off, size - off, "%s%s", off ? ", " : "", e.name);
    if (n < 0 || (size_t)n >= size - off) break;
    off += (size_t)n;
  }
}

/* J2K fragments: first fragment (pixel item index, item 0 is the Basic Offset Table) of each
 * frame, from DCMTK's offset-table logic, else by the EOC marker ending each frame's last
 * fragment. */
int j2k_index_frames(camd_dicom *d, DcmPixelSequence *seq, camd_error *err) {
  size_t frames = d->info.frames;
  unsigned long items = seq->card();
  if (items < 2)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "the JPEG 2000 Pixel Data has no "
                          "fragments");
  d->j2k_frame_start.assign(frames + 1, 0);
  d->j2k_frame_start[frames] = (Uint32)items;
  if (frames == 1) {
    d->j2k_frame_start[0] = 1;
    return 0;
  }
  if (items - 1 == frames) {
    for (size_t f = 0; f < frames; f++) d->j2k_frame_start[f] = (Uint32)(f + 1);
    return 0;
  }
  bool ok = true;
  for (size_t f = 0; f < frames && ok; f++) {
    Uint32 start = 0;
    ok = DcmCodec::determineStartFragment((Uint32)f, (Sint32)frames, seq, start).good() &&
         start >= 1 && start < items && (f == 0 || start > d->j2k_frame_start[f - 1]);
    d->j2k_frame_start[f] = start;
  }
  if (ok) return 0;
  /* no usable offset table: a frame ends with the fragment whose data ends in EOC (FF D9),
   * possibly followed by one padding byte */
  size_t f = 0;
  d->j2k_frame_start[0] = 1;
  for (unsigned long i = 1; i < items && f + 1 < frames; i++) {
    DcmPixelItem *it = nullptr;
    Uint8 *p = nullptr;
    if (seq->getItem(it, i).bad() || !it) break;
    Uint32 n = it->getLength();
    if (n < 2 || it->getUint8Array(p).bad() || !p) continue;
    bool eoc = (p[n - 2] == 0xFF && p[n - 1] == 0xD9) ||
               (n >= 3 && p[n - 3] == 0xFF && p[n - 2] == 0xD9 && p[n - 1] == 0x00);
    if (eoc) d->j2k_frame_start[++f] = (Uint32)(i + 1);
  }
  if (f + 1 != frames)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "cannot locate the JPEG 2000 frames: %lu fragments, %zu frames, no "
                          "usable Basic Offset Table",
                          items - 1, frames);
  return 0;
}

/* ---- reading ----
 * DCMTK allocates an element's declared length before reading it unless it can leave the value
 * in the file (found by fuzzing: a few bytes declaring 2 GiB ask for 2 GiB). So the file is put
 * in a memfd and read with DcmFileFormat::loadFile and a 4 KiB maxReadLength: larger values stay
 * in the file, their lengths are checked against the bytes that remain, and they are read on
 * demand (a frame at a time for Pixel Data). A deflated data set cannot be left in the file;
 * it is inflated here first, capped by max_bytes, and handed over as Explicit VR Little Endian. */

/* The File Meta Information (PS3.10 7.1, always Explicit VR Little Endian): its end, and where
 * its Transfer Syntax UID element lies. Strict: camd must see the same group DCMTK reads. */
struct meta_layout {
  size_t end = 0;
  size_t ts_at = 0, ts_len = 0; /* element offset and total element length */
  char ts[65] = "";
};

int walk_meta(const unsigned char *d, size_t len, meta_layout *m, camd_error *err) {
  /* the group's extent: (0002,0000) File Meta Information Group Length when present (DCMTK
   * trusts it too), else as long as elements of group 0002 follow */
  size_t end = len;
  static const unsigned char glen_el[8] = {0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0};
  if (len >= 144 && !memcmp(d + 132, glen_el, 8)) {
    size_t g = (size_t)d[140] | (size_t)d[141] << 8 | (size_t)d[142] << 16 | (size_t)d[143] << 24;
    if (g > len - 144)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "corrupt File Meta Information: its group length %zu exceeds the %zu "
                            "bytes that follow",
                            g, len - 144);
    end = 144 + g;
  }
  size_t pos = 132;
  while (pos + 8 <= end) {
    if (d[pos] != 0x02 || d[pos + 1] != 0x00) {
      if (end == len) break; /* no group length: the group ends here */
      return camd_error_set(err, CAMD_E_FORMAT,
                            "corrupt File Meta Information: element (%02X%02X,%02X%02X) inside "
                            "it is not of group 0002",
                            d[pos + 1], d[pos], d[pos + 3], d[pos + 2]);
    }
    char vr[3] = {(char)d[pos + 4], (char)d[pos + 5], 0};
    bool long_vr = strstr("OB OD OF OL OV OW SQ SV UC UN UR UT UV", vr) != nullptr;
    size_t hdr = long_vr ? 12 : 8;
    if (pos + hdr > end)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "corrupt File Meta Information: it ends inside "
                            "an element header");
    size_t vl = long_vr ? (size_t)d[pos + 8] | (size_t)d[pos + 9] << 8 | (size_t)d[pos + 10] << 16 |
                              (size_t)d[pos + 11] << 24
                        : (size_t)d[pos + 6] | (size_t)d[pos + 7] << 8;
    if (vl > end - pos - hdr)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "corrupt File Meta Information: element (0002,%02X%02X) declares %zu "
                            "bytes, %zu remain in the group",
                            d[pos + 3], d[pos + 2], vl, end - pos - hdr);
    if (d[pos + 2] == 0x10 && d[pos + 3] == 0x00) { /* (0002,0010) Transfer Syntax UID */
      if (m->ts_at)
        return camd_error_set(err, CAMD_E_FORMAT,
                              "corrupt File Meta Information: two Transfer Syntax UIDs");
      m->ts_at = pos;
      m->ts_len = hdr + vl;
      copy_clean(m->ts, sizeof(m->ts), std::string((const char *)d + pos + hdr, vl).c_str());
    }
    pos += hdr + vl;
  }
  if (end != len && pos != end)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "corrupt File Meta Information: its elements do "
                          "not fill its group length");
  if (!m->ts[0])
    return camd_error_set(err, CAMD_E_FORMAT,
                          "the File Meta Information has no Transfer Syntax "
                          "UID (0002,0010)");
  m->end = pos;
  return 0;
}

/* The preamble and File Meta Information of a Part 10 file with its Transfer Syntax UID replaced
 * by `uid` (even length, or padded with a NUL here), the group length fixed. */
void meta_with_ts(const unsigned char *d, const meta_layout &m, const char *uid,
                  std::vector<unsigned char> &out) {
  size_t n = strlen(uid), padded = n + (n & 1);
  out.assign(d, d + m.ts_at);
  const unsigned char ts_el[8] = {0x02, 0x00, 0x10, 0x00, 'U', 'I', (unsigned char)padded, 0};
  out.insert(out.end(), ts_el, ts_el + 8);
  out.insert(out.end(), uid, uid + n);
  if (padded != n) out.push_back(0);
  out.insert(out.end(), d + m.ts_at + m.ts_len, d + m.end);
  /* group length (0002,0000) UL, when it is the first element as PS3.10 requires */
  static const unsigned char glen_el[8] = {0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0};
  if (out.size() >= 144 && !memcmp(out.data() + 132, glen_el, 8)) {
    uint32_t g = (uint32_t)(out.size() - 144);
    for (int k = 0; k < 4; k++) out[140 + k] = (unsigned char)(g >> (8 * k));
  }
}

/* Rebuilds a deflated Part 10 file as Explicit VR Little Endian (the data set inflated, at most
 * cap bytes). */
int inflate_part10(const unsigned char *d, size_t len, const meta_layout &m, size_t cap,
                   std::vector<unsigned char> &out, camd_error *err) {
  meta_with_ts(d, m, "1.2.840.10008.1.2.1", out);
  size_t head = out.size();
  z_stream zs;
  memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
    return camd_error_set(err, CAMD_E_NOMEM, "cannot start zlib");
  zs.next_in = (Bytef *)(d + m.end);
  zs.avail_in = (uInt)(len - m.end);
  std::vector<unsigned char> chunk(1 << 16);
  int zr = Z_OK;
  while (zr == Z_OK) {
    zs.next_out = chunk.data();
    zs.avail_out = (uInt)chunk.size();
    zr = inflate(&zs, Z_NO_FLUSH);
    size_t got = chunk.size() - zs.avail_out;
    if (out.size() - head + got > cap) {
      inflateEnd(&zs);
      return camd_error_set(err, CAMD_E_LIMIT,
                            "the deflated data set inflates beyond the limit max_bytes=%zu", cap);
    }
    out.insert(out.end(), chunk.data(), chunk.data() + got);
    if (zr == Z_BUF_ERROR && zs.avail_in == 0) break; /* the input ended before the stream */
  }
  std::string msg = zs.msg ? zs.msg : "unexpected end of data";
  inflateEnd(&zs);
  if (zr != Z_STREAM_END)
    return camd_error_set(err, CAMD_E_FORMAT, "corrupt or truncated deflated data set (zlib: %s)",
                          msg.c_str());
  return 0;
}

/* Copies the bytes into a memfd owned by d and loads them from there. */
int load_from_memfd(camd_dicom *d, const unsigned char *data, size_t len, camd_error *err) {
  d->fd = memfd_create("camd-dicom", MFD_CLOEXEC);
  if (d->fd < 0)
    return camd_error_set(err, CAMD_E_INTERNAL, "memfd_create failed: %s", strerror(errno));
  size_t off = 0;
  while (off < len) {
    ssize_t k = write(d->fd, data + off, len - off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      return camd_error_set(err, CAMD_E_NOMEM, "writing the DICOM file to memory failed: %s",
                            strerror(errno));
    off += (size_t)k;
  }
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", d->fd);
  if (access(path, R_OK) != 0)
    return camd_error_set(err, CAMD_E_INTERNAL,
                          "cannot reopen the in-memory DICOM file as %s (%s): camd needs /proc",
                          path, strerror(errno));
  OFCondition c = d->ff.loadFile(OFFilename(path), EXS_Unknown, EGL_noChange, 4096, ERM_fileOnly);
  if (c == EC_StreamNotifyClient)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "truncated DICOM file: the data ends inside an element");
  if (c.bad())
    return camd_error_set(err, CAMD_E_FORMAT, "corrupt or truncated DICOM file: %s", c.text());
  return 0;
}

int unsupported_ts(const char *tsu, camd_error *err) {
  const char *name = nullptr;
  for (const auto &k : k_known_unsupported)
    if (!strcmp(k.uid, tsu)) name = k.name;
  DcmXfer x(tsu);
  if (!name && x.getXfer() != EXS_Unknown) name = x.getXferName();
  char list[1024];
  list_supported(list, sizeof(list));
  return camd_error_set(err, CAMD_E_MEDIA,
                        "unsupported DICOM transfer syntax %s (%s); supported: %s",
                        tsu[0] ? tsu : "(none)", name ? name : "unknown transfer syntax", list);
}

int open_impl(const unsigned char *data, size_t len, const camd_dicom_limits *limits,
              camd_dicom **out, camd_dicom_info *info_out, camd_error *err) {
  camd_dicom_limits def;
  if (!limits) {
    camd_dicom_limits_default(&def);
    limits = &def;
  }
  if (limits->max_bytes && len > limits->max_bytes)
    return camd_error_set(err, CAMD_E_LIMIT,
                          "DICOM file of %zu bytes exceeds the limit max_bytes=%zu", len,
                          limits->max_bytes);
  if (len < 132 || memcmp(data + 128, "DICM", 4) != 0)
    return camd_error_set(err, CAMD_E_MEDIA,
                          "not a DICOM Part 10 file (no \"DICM\" at offset 128); send the file "
                          "with its 128-byte preamble and File Meta Information");
  if (len > 0xFFFFFFF0u)
    return camd_error_set(err, CAMD_E_LIMIT, "DICOM file of %zu bytes is larger than 4 GiB", len);
  int rc = init_or_fail(err);
  if (rc) return rc;

  camd_dicom *d = new camd_dicom();
  std::unique_ptr<camd_dicom> guard(d);
  camd_dicom_info &info = d->info;

  /* the transfer syntax first, from the meta header */
  meta_layout ml;
  rc = walk_meta(data, len, &ml, err);
  if (rc) return rc;
  if (ml.ts[0] && !find_supported(ml.ts)) return unsupported_ts(ml.ts, err);
  if (!strcmp(ml.ts, "1.2.840.10008.1.2.1.99")) {
    std::vector<unsigned char> flat;
    rc = inflate_part10(data, len, ml, limits->max_bytes ? limits->max_bytes : (size_t)-1, flat,
                        err);
    if (!rc) rc = load_from_memfd(d, flat.data(), flat.size(), err);
  } else if (!strncmp(ml.ts, "1.2.840.10008.1.2.4.20", 22)) {
    /* High-Throughput JPEG 2000 (.201 .202 .203): DCMTK 3.6.7 predates these UIDs. Their data set
     * is encoded as every encapsulated syntax's (explicit VR little endian, Pixel Data in
     * fragments), so DCMTK reads the file labelled JPEG 2000 and OpenJPEG decodes the frames
     * (its HT block decoder, 2.5.0 and later); info keeps the real syntax. */
    std::vector<unsigned char> relabelled;
    meta_with_ts(data, ml, "1.2.840.10008.1.2.4.90", relabelled);
    relabelled.insert(relabelled.end(), data + ml.end, data + len);
    rc = load_from_memfd(d, relabelled.data(), relabelled.size(), err);
  } else {
    rc = load_from_memfd(d, data, len, err);
  }
  if (rc) return rc;
  DcmDataset *ds = d->ff.getDataset();
  if (DcmXfer(ds->getOriginalXfer()).getStreamCompression() != ESC_none)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "corrupt File Meta Information: the toolkit read "
                          "it differently");
  char tsu[65] = "";
  snprintf(tsu, sizeof(tsu), "%s", ml.ts);
  snprintf(info.transfer_syntax_uid, sizeof(info.transfer_syntax_uid), "%s", tsu);
  const ts_entry *ts = find_supported(tsu);
  if (!ts) return unsupported_ts(tsu, err);
  d->ts = ts;
  d->codec = ts->codec;
  snprintf(info.transfer_syntax_name, sizeof(info.transfer_syntax_name), "%s", ts->name);
  d->big_endian = strcmp(ts->uid, "1.2.840.10008.1.2.2") == 0;

  get_uid(ds, DCM_SOPClassUID, info.sop_class_uid);
  get_uid(ds, DCM_SOPInstanceUID, info.sop_instance_uid);
  get_uid(ds, DCM_StudyInstanceUID, info.study_instance_uid);
  get_uid(ds, DCM_SeriesInstanceUID, info.series_instance_uid);
  get_cs(ds, DCM_Modality, info.modality, sizeof(info.modality));

  /* pixel data */
  DcmElement *pe = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, pe).bad() || !pe) {
    if (ds->tagExists(DCM_FloatPixelData) || ds->tagExists(DCM_DoubleFloatPixelData))
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "the DICOM file holds Float/Double Float Pixel Data, which camd does "
                            "not decode (integer Pixel Data only)");
    return camd_error_set(err, CAMD_E_FORMAT,
                          "the DICOM file has no Pixel Data (7FE0,0010): it is not an image "
                          "(SOP Class UID %s)",
                          info.sop_class_uid[0] ? info.sop_class_uid : "absent");
  }
  if (pe->ident() != EVR_PixelData)
    return camd_error_set(err, CAMD_E_FORMAT, "Pixel Data (7FE0,0010) has an unexpected form");
  DcmPixelData *pd = OFstatic_cast(DcmPixelData *, pe);

  /* pixel module */
  unsigned rows = 0, cols = 0, spp = 1, ba = 0, bs = 0, hb = 0, pr = 0, pc = 0;
  if (!get_us(ds, DCM_Rows, &rows) || !get_us(ds, DCM_Columns, &cols))
    return camd_error_set(err, CAMD_E_FORMAT,
                          "Rows (0028,0010) or Columns (0028,0011) is "
                          "missing");
  if (!get_us(ds, DCM_BitsAllocated, &ba))
    return camd_error_set(err, CAMD_E_FORMAT, "BitsAllocated (0028,0100) is missing");
  if (ds->tagExists(DCM_SamplesPerPixel) && !get_us(ds, DCM_SamplesPerPixel, &spp))
    return camd_error_set(err, CAMD_E_FORMAT, "SamplesPerPixel (0028,0002) is malformed");
  if (!get_us(ds, DCM_BitsStored, &bs)) bs = ba;
  if (!get_us(ds, DCM_HighBit, &hb)) hb = bs ? bs - 1 : 0;
  if (!get_us(ds, DCM_PixelRepresentation, &pr)) pr = 0;
  if (spp > 1 && !get_us(ds, DCM_PlanarConfiguration, &pc)) pc = 0;
  get_cs(ds, DCM_PhotometricInterpretation, info.photometric, sizeof(info.photometric));
  if (!info.photometric[0])
    return camd_error_set(err, CAMD_E_FORMAT,
                          "PhotometricInterpretation (0028,0004) is "
                          "missing");
  if (rows == 0 || cols == 0)
    return camd_error_set(err, CAMD_E_FORMAT, "the image is empty (Rows %u, Columns %u)", rows,
                          cols);
  if (spp != 1 && spp != 3)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "SamplesPerPixel %u is not supported (1 or "
                          "3)",
                          spp);
  if (ba != 1 && ba != 8 && ba != 16 && ba != 32)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "BitsAllocated %u is not supported (1, 8, 16 or 32)", ba);
  if (spp == 3 && ba == 1)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "colour images with BitsAllocated 1 are not "
                          "supported");
  if (bs < 1 || bs > ba || hb >= ba || hb + 1 < bs)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "inconsistent pixel attributes: BitsAllocated %u, BitsStored %u, "
                          "HighBit %u",
                          ba, bs, hb);
  if (pr > 1) return camd_error_set(err, CAMD_E_FORMAT, "PixelRepresentation %u is not 0 or 1", pr);
  if (pc > 1) return camd_error_set(err, CAMD_E_FORMAT, "PlanarConfiguration %u is not 0 or 1", pc);
  if (const char *why = photometric_ok(info.photometric, (int)spp, d->codec))
    return camd_error_set(err, CAMD_E_FORMAT, "%s (%s)", why, info.photometric);
  if (!strcmp(info.photometric, "PALETTE COLOR") && ba != 8 && ba != 16)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "PALETTE COLOR with BitsAllocated %u is not supported (8 or 16)", ba);
  long long frames = 1;
  OFString nf;
  if (ds->findAndGetOFString(DCM_NumberOfFrames, nf).good() && !nf.empty()) {
    if (!parse_is(nf.c_str(), &frames) || frames < 1) {
      char shown[24];
      copy_clean(shown, sizeof(shown), nf.c_str());
      return camd_error_set(err, CAMD_E_FORMAT,
                            "NumberOfFrames (0028,0008) '%s' is not a "
                            "positive integer",
                            shown);
    }
  }
  info.rows = rows;
  info.columns = cols;
  info.frames = (size_t)frames;
  info.samples_per_pixel = (int)spp;
  info.bits_allocated = (int)ba;
  info.bits_stored = (int)bs;
  info.high_bit = (int)hb;
  info.pixel_representation = (int)pr;
  info.planar_configuration = (int)pc;

  /* limits, before anything is decoded */
  if (limits->max_frames && (unsigned long long)frames > limits->max_frames)
    return camd_error_set(err, CAMD_E_LIMIT,
                          "DICOM file declares %lld frames, over the limit max_frames=%zu", frames,
                          limits->max_frames);
  rc = camd__image_check_limits(&limits->image, cols, rows, err);
  if (rc) return rc;

  /* pixel data layout */
  size_t pixels = (size_t)rows * cols;
  if (d->codec == CODEC_NATIVE) {
    size_t declared = pd->getLength();
    size_t need;
    if (ba == 1) {
      d->frame_bits = pixels * spp;
      if (!camd_size_mul(d->frame_bits, info.frames, &need))
        return camd_error_set(err, CAMD_E_LIMIT, "declared pixel data size overflows");
      need = (need + 7) / 8;
    } else {
      size_t samples = !strcmp(info.photometric, "YBR_FULL_422") ? 2 : spp;
      if (!strcmp(info.photometric, "YBR_FULL_422") && (cols % 2))
        return camd_error_set(err, CAMD_E_FORMAT,
                              "YBR_FULL_422 needs an even number of "
                              "Columns, not %u",
                              cols);
      d->frame_bytes = pixels * samples * (ba / 8);
      if (!camd_size_mul(d->frame_bytes, info.frames, &need))
        return camd_error_set(err, CAMD_E_LIMIT, "declared pixel data size overflows");
    }
    if (declared < need)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "truncated Pixel Data: %zu bytes for %zu frame(s) of %ux%u x%u at "
                            "%u bits, %zu expected",
                            declared, info.frames, cols, rows, spp, ba, need);
  } else {
    DcmPixelSequence *seq = nullptr;
    DcmXfer x(ds->getOriginalXfer());
    if (pd->getEncapsulatedRepresentation(x.getXfer(), nullptr, seq).bad() || !seq)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "Pixel Data is not encapsulated although the transfer syntax (%s) "
                            "is compressed",
                            ts->name);
    if (d->codec == CODEC_J2K) {
      rc = j2k_index_frames(d, seq, err);
      if (rc) return rc;
    }
  }

  /* pixel spacing */
  double sp[2];
  if (get_ds_values(ds, DCM_PixelSpacing, sp, 2) == 2 && sp[0] > 0 && sp[1] > 0) {
    info.has_pixel_spacing = true;
    info.pixel_spacing[0] = sp[0];
    info.pixel_spacing[1] = sp[1];
  }

  /* modality LUT: a Modality LUT Sequence wins over rescale (as pydicom) */
  info.rescale_slope = 1;
  info.rescale_intercept = 0;
  if (!strcmp(info.photometric, "PALETTE COLOR")) {
    /* the palette maps the stored values; no Modality LUT or VOI applies (PS3.4 N.2) */
    rc = read_palette(ds, pr == 1, &d->pm, err);
    if (rc) return rc;
  } else if (spp == 1) {
    DcmItem *mi = nullptr;
    if (ds->findAndGetSequenceItem(DCM_ModalityLUTSequence, mi, 0).good() && mi) {
      rc = read_lut(mi, pr == 1, "Modality LUT Sequence", &d->pm.modality_lut, err);
      if (rc) return rc;
      info.has_modality_lut = true;
    }
    double slope, icpt;
    long ns = get_ds_values(ds, DCM_RescaleSlope, &slope, 1);
    long ni = get_ds_values(ds, DCM_RescaleIntercept, &icpt, 1);
    if (ns < 0 || ni < 0)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "RescaleSlope/RescaleIntercept is not a finite "
                            "number");
    if (ns == 1 && ni == 1) {
      info.has_rescale = true;
      info.rescale_slope = slope;
      info.rescale_intercept = icpt;
    }
    get_cs(ds, DCM_RescaleType, info.rescale_type, sizeof(info.rescale_type));

    /* VOI: windows and VOI LUTs */
    double wc[CAMD_DICOM_MAX_WINDOWS], ww[CAMD_DICOM_MAX_WINDOWS];
    long nc = get_ds_values(ds, DCM_WindowCenter, wc, CAMD_DICOM_MAX_WINDOWS);
    long nw = get_ds_values(ds, DCM_WindowWidth, ww, CAMD_DICOM_MAX_WINDOWS);
    if (nc > 0 && nw > 0) {
      size_t n = (size_t)(nc < nw ? nc : nw);
      info.n_windows = n;
      for (size_t i = 0; i < n; i++) {
        info.window_center[i] = wc[i];
        info.window_width[i] = ww[i];
        OFString ex;
        d->pm.window_explanation[i][0] = '\0';
        if (ds->findAndGetOFString(DCM_WindowCenterWidthExplanation, ex, i).good())
          copy_clean(d->pm.window_explanation[i], 65, ex.c_str());
      }
    }
    char fn[17];
    get_cs(ds, DCM_VOILUTFunction, fn, sizeof(fn));
    info.voi_function = !strcmp(fn, "LINEAR_EXACT") ? CAMD_VOI_LINEAR_EXACT
                        : !strcmp(fn, "SIGMOID")    ? CAMD_VOI_SIGMOID
                                                    : CAMD_VOI_LINEAR;
    DcmSequenceOfItems *vs = nullptr;
    if (ds->findAndGetSequence(DCM_VOILUTSequence, vs).good() && vs) {
      unsigned long n = vs->card();
      if (n > CAMD__DICOM_MAX_VOI_LUTS) n = CAMD__DICOM_MAX_VOI_LUTS;
      for (unsigned long i = 0; i < n; i++) {
        DcmItem *it = vs->getItem(i);
        if (!it) break;
        char what[48];
        snprintf(what, sizeof(what), "VOI LUT Sequence item %lu", i);
        rc = read_lut(it, pr == 1 && !info.has_modality_lut, what, &d->pm.voi_luts[i], err);
        if (rc) return rc;
        info.n_voi_luts = i + 1;
      }
      info.has_voi_lut = info.n_voi_luts > 0;
    }
  }

  if (info_out) *info_out = info;
  *out = guard.release();
  return 0;
}

/* ---- frames ---- */

struct j2k_reader {
  const unsigned char *data;
  size_t len;
  size_t pos;
};

OPJ_SIZE_T j2k_read(void *buf, OPJ_SIZE_T n, void *user) {
  j2k_reader *r = (j2k_reader *)user;
  if (r->pos >= r->len) return (OPJ_SIZE_T)-1;
  size_t k = r->len - r->pos < n ? r->len - r->pos : n;
  memcpy(buf, r->data + r->pos, k);
  r->pos += k;
  return k;
}
OPJ_OFF_T j2k_skip(OPJ_OFF_T n, void *user) {
  j2k_reader *r = (j2k_reader *)user;
  if (n < 0) {
    if ((size_t)(-n) > r->pos) n = -(OPJ_OFF_T)r->pos;
  } else if ((size_t)n > r->len - r->pos) {
    n = (OPJ_OFF_T)(r->len - r->pos);
  }
  r->pos += n;
  return n;
}
OPJ_BOOL j2k_seek(OPJ_OFF_T n, void *user) {
  j2k_reader *r = (j2k_reader *)user;
  if (n < 0 || (size_t)n > r->len) return OPJ_FALSE;
  r->pos = (size_t)n;
  return OPJ_TRUE;
}
void j2k_error(const char *msg, void *user) {
  std::string *s = (std::string *)user;
  if (s->empty() && msg) {
    *s = msg;
    while (!s->empty() && (s->back() == '\n' || s->back() == ' ')) s->pop_back();
  }
}
void j2k_quiet(const char *, void *) {}

struct opj_guard {
  opj_codec_t *codec = nullptr;
  opj_stream_t *stream = nullptr;
  opj_image_t *image = nullptr;
  ~opj_guard() {
    if (image) opj_image_destroy(image);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
  }
};

/* Decodes one JPEG 2000 / HTJ2K codestream with OpenJPEG into o (rows x columns x samples int32,
 * interleaved, the stored values: pydicom's sign correction applied). */
int opj_decode_frame(const std::vector<unsigned char> &cs, OPJ_CODEC_FORMAT fmt,
                     const camd_dicom_info &info, size_t frame, int32_t *o, camd_error *err) {
  std::string msg;
  opj_guard g;
  j2k_reader rd{cs.data(), cs.size(), 0};
  g.codec = opj_create_decompress(fmt);
  g.stream = opj_stream_create(1 << 16, OPJ_TRUE);
  if (!g.codec || !g.stream)
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory starting OpenJPEG");
  opj_set_error_handler(g.codec, j2k_error, &msg);
  opj_set_warning_handler(g.codec, j2k_quiet, nullptr);
  opj_set_info_handler(g.codec, j2k_quiet, nullptr);
  opj_stream_set_user_data(g.stream, &rd, nullptr);
  opj_stream_set_user_data_length(g.stream, cs.size());
  opj_stream_set_read_function(g.stream, j2k_read);
  opj_stream_set_skip_function(g.stream, j2k_skip);
  opj_stream_set_seek_function(g.stream, j2k_seek);
  opj_dparameters_t params;
  opj_set_default_decoder_parameters(&params);
  if (!opj_setup_decoder(g.codec, &params) || !opj_read_header(g.stream, g.codec, &g.image) ||
      !g.image)
    return camd_error_set(err, CAMD_E_FORMAT, "corrupt JPEG 2000 frame %zu: %s", frame,
                          msg.empty() ? "cannot read the header" : msg.c_str());
  opj_image_t *im = g.image;
  size_t w = im->x1 - im->x0, h = im->y1 - im->y0;
  if (w != info.columns || h != info.rows || im->numcomps != (OPJ_UINT32)info.samples_per_pixel)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "JPEG 2000 frame %zu is %zux%zu with %u components, the data set "
                          "declares %zux%zu with %d samples per pixel",
                          frame, w, h, im->numcomps, info.columns, info.rows,
                          info.samples_per_pixel);
  for (OPJ_UINT32 c = 0; c < im->numcomps; c++) {
    const opj_image_comp_t &cp = im->comps[c];
    if (cp.dx != 1 || cp.dy != 1)
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "JPEG 2000 components with subsampling are "
                            "not supported");
    if (cp.prec < 1 || cp.prec > (OPJ_UINT32)info.bits_allocated || cp.prec > 31)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "JPEG 2000 precision %u does not fit BitsAllocated %d", cp.prec,
                            info.bits_allocated);
  }
  if (!opj_decode(g.codec, g.stream, im) || !opj_end_decompress(g.codec, g.stream))
    return camd_error_set(err, CAMD_E_FORMAT, "corrupt JPEG 2000 frame %zu: %s", frame,
                          msg.empty() ? "decoding failed" : msg.c_str());
  size_t n = w * h, spp = im->numcomps;
  for (OPJ_UINT32 c = 0; c < im->numcomps; c++)
    if (!im->comps[c].data || im->comps[c].w != w || im->comps[c].h != h)
      return camd_error_set(err, CAMD_E_FORMAT, "JPEG 2000 frame %zu decoded to the wrong size",
                            frame);
  for (size_t c = 0; c < spp; c++) {
    const opj_image_comp_t &cp = im->comps[c];
    /* pydicom's correction: unsigned J2K samples with PixelRepresentation 1 are two's
     * complement values of `prec` bits */
    bool extend = !cp.sgnd && info.pixel_representation == 1;
    uint32_t sign = 1u << (cp.prec - 1);
    for (size_t i = 0; i < n; i++) {
      int32_t v = cp.data[i];
      if (extend) v = (int32_t)(((uint32_t)v ^ sign) - sign);
      o[i * spp + c] = v;
    }
  }
  return 0;
}

/* False only when a raw codestream (SOC first) surely uses no High-Throughput code-blocks: its
 * main header and every tile-part header, walked marker segment by marker segment (tile-parts by
 * their Psot) up to EOC, hold no COD/COC whose code-block style has the HT bit (0x40, the only
 * thing that sends OpenJPEG 2.5.0 to its HT decoder) and SIZ does not announce Part 15 (Rsiz bit
 * 14). Anything the walk cannot follow (JP2 boxes, a bad length, Psot 0 or out of the stream, no
 * EOC; a last tile-part whose Psot covers the EOC is accepted) counts as "may use HT". */
bool j2k_may_use_ht(const unsigned char *p, size_t n) {
  if (n < 4 || p[0] != 0xFF || p[1] != 0x4F) return true;
  size_t pos = 2, csiz = 0;
  size_t tile_end = 0; /* inside a tile-part header: where the tile-part ends */
  while (pos + 2 <= n) {
    if (p[pos] != 0xFF) return true;
    unsigned m = p[pos + 1];
    if (m == 0xD9) return tile_end != 0; /* EOC: the end, unless inside a tile-part header */
    if (m == 0x93) {                     /* SOD: the tile-part's data, up to its end */
      if (!tile_end) return true;
      if (tile_end == n) return false; /* the last tile-part ran to the end, EOC included */
      pos = tile_end;
      tile_end = 0;
      continue;
    }
    if (pos + 4 > n) return true;
    size_t len = (size_t)p[pos + 2] << 8 | p[pos + 3];
    if (len < 2 || len > n - pos - 2) return true;
    const unsigned char *seg = p + pos + 2; /* seg[0..1]: the length */
    if (m == 0x51) {                        /* SIZ */
      if (len < 38 || (seg[2] & 0x40)) return true;
      csiz = (size_t)seg[36] << 8 | seg[37];
    } else if (m == 0x52) { /* COD: Scod, SGcod (4), SPcod: levels, xcb, ycb, style */
      if (len < 11 || (seg[10] & 0x40)) return true;
    } else if (m == 0x53) { /* COC: Ccoc (1 or 2), Scoc, SPcoc: levels, xcb, ycb, style */
      size_t at = 2 + (csiz < 257 ? 1 : 2) + 1 + 3;
      if (!csiz || len <= at || (seg[at] & 0x40)) return true;
    } else if (m == 0x90) { /* SOT: Isot (2), Psot (4), TPsot, TNsot */
      if (len < 10 || tile_end) return true;
      size_t psot = (size_t)seg[4] << 24 | (size_t)seg[5] << 16 | (size_t)seg[6] << 8 | seg[7];
      if (psot < 14 || psot > n - pos) return true;
      tile_end = pos + psot;
    } else if (m < 0x50 && m != 0x4F) {
      return true; /* not a marker segment of a codestream header */
    }
    pos += 2 + len;
  }
  return true;
}

/* OpenJPEG 2.5.0 as Debian builds it keeps assert() on, and its HT block decoder (ht_dec.c)
 * asserts on malformed code-blocks (mel_init, frwd_advance, rev_advance: found by the fuzz
 * regression driver within 50 mutations of an HTJ2K seed; upstream issue #1500): an abort that
 * would take the server down. The HT decoder runs for any codestream whose code-block style says
 * HT, whatever the transfer syntax claims (a JPEG 2000 file spliced with an HTJ2K one reached it
 * too), so a frame that may use HT code-blocks (j2k_may_use_ht) is decoded in a forked child that
 * writes the samples into a shared mapping; a child killed by a signal (or the 60 s alarm) is a
 * corrupt frame, a 400. The child touches only OpenJPEG and malloc (fork-safe in glibc) and
 * leaves with _exit. Classic JPEG 2000 frames are decoded in process as before. */
int opj_decode_isolated(const std::vector<unsigned char> &cs, OPJ_CODEC_FORMAT fmt,
                        const camd_dicom_info &info, size_t frame, int32_t *o, camd_error *err) {
  struct shared_head {
    int status;
    char message[CAMD_ERROR_MESSAGE_MAX];
  };
  size_t bytes = info.rows * info.columns * (size_t)info.samples_per_pixel * sizeof(int32_t);
  size_t map_len = sizeof(shared_head) + bytes;
  void *map = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED)
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory decoding a JPEG 2000 frame: %s",
                          strerror(errno));
  shared_head *head = (shared_head *)map;
  int32_t *samples = (int32_t *)((unsigned char *)map + sizeof(shared_head));
  head->status = CAMD_E_INTERNAL;
  snprintf(head->message, sizeof(head->message), "the JPEG 2000 decoder process did not report");
  pid_t pid = fork();
  if (pid < 0) {
    munmap(map, map_len);
    return camd_error_set(err, CAMD_E_NOMEM, "cannot start the JPEG 2000 decoder process: %s",
                          strerror(errno));
  }
  if (pid == 0) {
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd >= 0) dup2(null_fd, 2); /* the assertion text is not for the server log */
    alarm(60);
    camd_error e{};
    try {
      head->status = opj_decode_frame(cs, fmt, info, frame, samples, &e);
      memcpy(head->message, e.message, sizeof(head->message));
    } catch (...) {
      head->status = CAMD_E_NOMEM;
    }
    _exit(0);
  }
  int st = 0;
  pid_t w;
  do {
    w = waitpid(pid, &st, 0);
  } while (w < 0 && errno == EINTR);
  int rc;
  if (w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    rc = head->status;
    if (rc)
      camd_error_set(err, rc, "%s", head->message);
    else
      memcpy(o, samples, bytes);
  } else if (w == pid && WIFSIGNALED(st)) {
    rc = camd_error_set(err, CAMD_E_FORMAT,
                        "corrupt JPEG 2000 frame %zu: OpenJPEG stopped on it (signal %d; its "
                        "High-Throughput block decoder asserts on malformed code-blocks)",
                        frame, WTERMSIG(st));
  } else {
    rc = camd_error_set(err, CAMD_E_INTERNAL, "the JPEG 2000 decoder process failed (status %d)",
                        st);
  }
  munmap(map, map_len);
  return rc;
}

int j2k_frame(camd_dicom *d, size_t frame, camd__dicom_raw *out, camd_error *err) {
  const camd_dicom_info &info = d->info;
  DcmDataset *ds = d->ff.getDataset();
  DcmElement *pe = nullptr;
  DcmPixelSequence *seq = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, pe).bad() || !pe ||
      OFstatic_cast(DcmPixelData *, pe)
          ->getEncapsulatedRepresentation(DcmXfer(ds->getOriginalXfer()).getXfer(), nullptr, seq)
          .bad() ||
      !seq)
    return camd_error_set(err, CAMD_E_INTERNAL, "the JPEG 2000 fragments disappeared");
  std::vector<unsigned char> cs;
  for (Uint32 i = d->j2k_frame_start[frame]; i < d->j2k_frame_start[frame + 1]; i++) {
    DcmPixelItem *it = nullptr;
    Uint8 *p = nullptr;
    if (seq->getItem(it, i).bad() || !it) break;
    Uint32 n = it->getLength();
    if (n && it->getUint8Array(p).good() && p) cs.insert(cs.end(), p, p + n);
  }
  static const unsigned char jp2_sig[12] = {0,   0,   0,    0x0C, 'j',  'P',
                                            ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
  OPJ_CODEC_FORMAT fmt;
  if (cs.size() >= 4 && cs[0] == 0xFF && cs[1] == 0x4F && cs[2] == 0xFF && cs[3] == 0x51)
    fmt = OPJ_CODEC_J2K;
  else if (cs.size() >= 12 && memcmp(cs.data(), jp2_sig, 12) == 0)
    fmt = OPJ_CODEC_JP2;
  else
    return camd_error_set(err, CAMD_E_FORMAT,
                          "frame %zu is not a JPEG 2000 codestream (no SOC "
                          "marker or JP2 signature)",
                          frame);
  size_t n = info.rows * info.columns, spp = (size_t)info.samples_per_pixel;
  int32_t *o = (int32_t *)malloc(n * spp * sizeof(int32_t));
  if (!o) return camd_error_set(err, CAMD_E_NOMEM, "out of memory decoding a JPEG 2000 frame");
  int rc = j2k_may_use_ht(cs.data(), cs.size()) ? opj_decode_isolated(cs, fmt, info, frame, o, err)
                                                : opj_decode_frame(cs, fmt, info, frame, o, err);
  if (rc) {
    free(o);
    return rc;
  }
  out->kind = CAMD__DICOM_RAW_INT32;
  out->data = (unsigned char *)o;
  out->len = n * spp * sizeof(int32_t);
  out->planar = 0;
  const char *pi = info.photometric;
  snprintf(out->color_model, sizeof(out->color_model), "%s",
           (!strcmp(pi, "YBR_RCT") || !strcmp(pi, "YBR_ICT")) ? "RGB" : pi);
  return 0;
}

int native_frame(camd_dicom *d, size_t frame, camd__dicom_raw *out, camd_error *err) {
  const camd_dicom_info &info = d->info;
  DcmElement *pe = nullptr;
  if (d->ff.getDataset()->findAndGetElement(DCM_PixelData, pe).bad() || !pe)
    return camd_error_set(err, CAMD_E_INTERNAL, "Pixel Data disappeared");
  size_t off, n;
  if (info.bits_allocated == 1) {
    size_t bit0 = frame * d->frame_bits;
    off = bit0 / 8;
    n = (bit0 % 8 + d->frame_bits + 7) / 8;
    out->bit_offset = bit0 % 8;
  } else {
    off = frame * d->frame_bytes;
    n = d->frame_bytes;
  }
  unsigned char *buf = (unsigned char *)malloc(n ? n : 1);
  if (!buf) return camd_error_set(err, CAMD_E_NOMEM, "out of memory reading frame %zu", frame);
  OFCondition c = pe->getPartialValue(buf, (Uint32)off, (Uint32)n, nullptr,
                                      d->big_endian ? EBO_BigEndian : EBO_LittleEndian);
  if (c.bad()) {
    free(buf);
    return camd_error_set(err, CAMD_E_FORMAT, "cannot read frame %zu of Pixel Data: %s", frame,
                          c.text());
  }
  out->kind = CAMD__DICOM_RAW_NATIVE;
  out->data = buf;
  out->len = n;
  out->big_endian = d->big_endian;
  out->ybr422_packed = !strcmp(info.photometric, "YBR_FULL_422");
  out->planar = info.planar_configuration;
  snprintf(out->color_model, sizeof(out->color_model), "%s", info.photometric);
  return 0;
}

/* The RLE header of a frame's fragment: segment count = bytes per sample x samples, offsets
 * ascending inside the fragment. */
int rle_check(DcmPixelSequence *seq, Uint32 item, const camd_dicom_info &info, size_t frame,
              camd_error *err) {
  DcmPixelItem *it = nullptr;
  Uint8 *p = nullptr;
  if (seq->getItem(it, item).bad() || !it || it->getUint8Array(p).bad() || !p)
    return camd_error_set(err, CAMD_E_FORMAT, "RLE frame %zu has no data", frame);
  Uint32 n = it->getLength();
  if (n < 64)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "RLE frame %zu: %u bytes, shorter than the RLE "
                          "header",
                          frame, (unsigned)n);
  Uint32 h[16];
  for (int i = 0; i < 16; i++)
    h[i] = (Uint32)p[4 * i] | (Uint32)p[4 * i + 1] << 8 | (Uint32)p[4 * i + 2] << 16 |
           (Uint32)p[4 * i + 3] << 24;
  Uint32 want = (Uint32)(info.samples_per_pixel * (info.bits_allocated / 8));
  if (h[0] != want || want == 0 || want > 15)
    return camd_error_set(err, CAMD_E_FORMAT, "RLE frame %zu has %u segments, %u expected", frame,
                          (unsigned)h[0], (unsigned)want);
  for (Uint32 i = 1; i <= h[0]; i++)
    if (h[i] < 64 || h[i] >= n || (i > 1 && h[i] <= h[i - 1]))
      return camd_error_set(err, CAMD_E_FORMAT,
                            "RLE frame %zu: segment %u offset %u is not "
                            "inside the %u-byte fragment after the previous one",
                            frame, (unsigned)i, (unsigned)h[i], (unsigned)n);
  return 0;
}

/* DCMTK 3.6.7's DJCodecDecoder::scanJpegDataForBitDepth, which runs before its JPEG decoders,
 * never moves past a TEM marker (FF01) met before the frame header: an endless loop (found by
 * libFuzzer). This walks a fragment as it does and says whether it would get stuck. */
bool jpeg_scan_would_loop(const Uint8 *d, Uint32 n) {
  unsigned long off = 0;
  while (off + 4 < n) {
    unsigned m = (unsigned)d[off] << 8 | d[off + 1];
    unsigned seglen = (unsigned)d[off + 2] << 8 | d[off + 3];
    if (m == 0xff01) return true;
    if ((m >= 0xffc0 && m <= 0xffcf && m != 0xffc4 && m != 0xffc8 && m != 0xffcc)) return false;
    if (m == 0xffc4 || m == 0xffc8 || m == 0xffcc || (m >= 0xffda && m <= 0xfffe))
      off += seglen + 2;
    else if (m >= 0xffd0 && m <= 0xffd9)
      off += 2;
    else if (d[off] == 0xff && d[off + 1] > 2 && d[off + 1] <= 0xbf)
      off += 2;
    else
      return false;
  }
  return false;
}

int jpeg_guard(DcmPixelSequence *seq, Uint32 first, Uint32 last, camd_error *err) {
  for (Uint32 i = first; i <= last && i < seq->card(); i++) {
    DcmPixelItem *it = nullptr;
    Uint8 *p = nullptr;
    if (seq->getItem(it, i).bad() || !it || it->getLength() == 0 || it->getUint8Array(p).bad() ||
        !p)
      continue;
    if (jpeg_scan_would_loop(p, it->getLength()))
      return camd_error_set(err, CAMD_E_FORMAT,
                            "corrupt JPEG data: a TEM marker before the frame "
                            "header");
  }
  return 0;
}

int dcmtk_frame(camd_dicom *d, size_t frame, camd__dicom_raw *out, camd_error *err) {
  const camd_dicom_info &info = d->info;
  DcmDataset *ds = d->ff.getDataset();
  DcmElement *pe = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, pe).bad() || !pe)
    return camd_error_set(err, CAMD_E_INTERNAL, "Pixel Data disappeared");
  DcmPixelData *pd = OFstatic_cast(DcmPixelData *, pe);
  size_t expect =
      info.rows * info.columns * (size_t)info.samples_per_pixel * (size_t)(info.bits_allocated / 8);
  Uint32 fsize = 0;
  OFCondition c = pd->getUncompressedFrameSize(ds, fsize);
  if (c.bad())
    return camd_error_set(err, CAMD_E_FORMAT, "cannot size frame %zu: %s", frame, c.text());
  if (fsize != expect)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "the codec reports %u bytes per frame, the pixel attributes %zu",
                          (unsigned)fsize, expect);
  DcmPixelSequence *seq = nullptr;
  if (pd->getEncapsulatedRepresentation(DcmXfer(ds->getOriginalXfer()).getXfer(), nullptr, seq)
          .bad() ||
      !seq)
    return camd_error_set(err, CAMD_E_INTERNAL, "the compressed fragments disappeared");
  Uint32 start = 0;
  bool located =
      DcmCodec::determineStartFragment((Uint32)frame, (Sint32)info.frames, seq, start).good();
  bool rle = !strcmp(d->ts->uid, "1.2.840.10008.1.2.5");
  if (rle) {
    /* DCMTK 3.6.7's RLE decoder trusts the segment offsets (found by fuzzing: reads out of
     * bounds); check the header of the frame's one fragment (PS3.5 G.2) first */
    if (!located)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "cannot locate RLE frame %zu among %lu "
                            "fragments",
                            frame, seq->card() ? seq->card() - 1 : 0);
    int rc = rle_check(seq, start, info, frame, err);
    if (rc) return rc;
  }
  if (!strncmp(d->ts->uid, "1.2.840.10008.1.2.4.5", 20) ||
      !strcmp(d->ts->uid, "1.2.840.10008.1.2.4.70")) { /* JPEG: .50 .51 .57 .70 */
    int rc = located ? jpeg_guard(seq, start, start, err) : jpeg_guard(seq, 1, seq->card(), err);
    if (rc) return rc;
  }
  size_t bufsize = expect + (expect & 1); /* DCMTK wants an even buffer size */
  unsigned char *buf = (unsigned char *)calloc(bufsize, 1);
  if (!buf) return camd_error_set(err, CAMD_E_NOMEM, "out of memory decoding frame %zu", frame);
  OFString model;
  if (!located) {
    /* no offset table and several fragments per frame: walk the frames in order */
    start = 0;
    for (size_t f = 0; f < frame; f++) {
      c = pd->getUncompressedFrame(ds, (Uint32)f, start, buf, (Uint32)bufsize, model);
      if (c.bad()) break;
    }
  }
  if (c.good()) c = pd->getUncompressedFrame(ds, (Uint32)frame, start, buf, (Uint32)bufsize, model);
  if (c.bad()) {
    free(buf);
    return camd_error_set(err, CAMD_E_FORMAT, "cannot decode frame %zu (%s): %s", frame,
                          d->ts->name, c.text());
  }
  out->kind = CAMD__DICOM_RAW_NATIVE;
  out->data = buf;
  out->len = expect;
  out->big_endian = false;
  out->planar = info.planar_configuration;
  char cm[17];
  copy_clean(cm, sizeof(cm), model.c_str());
  snprintf(out->color_model, sizeof(out->color_model), "%s", cm[0] ? cm : info.photometric);
  return 0;
}

/* ---- writing ---- */

/* Reduces text to printable ASCII without backslash (the DICOM value separator), cut to max. */
std::string clean_text(const char *s, size_t max) {
  std::string r;
  if (!s) return r;
  for (; *s && r.size() < max; s++) {
    unsigned char c = (unsigned char)*s;
    r.push_back((c >= 0x20 && c < 0x7f && c != '\\') ? (char)c : '_');
  }
  while (!r.empty() && r.back() == ' ') r.pop_back();
  return r;
}

/* SOP classes whose IOD is single-frame (PS3.3): a reference to one of them may not carry a
 * Referenced Frame Number, even when a (non-conformant) instance has several frames. The frame is
 * still named in the Derivation Description. */
bool single_frame_class(const char *uid) {
  static const char *const k[] = {
      "1.2.840.10008.5.1.4.1.1.1",     /* CR */
      "1.2.840.10008.5.1.4.1.1.1.1",   /* DX presentation */
      "1.2.840.10008.5.1.4.1.1.1.1.1", /* DX processing */
      "1.2.840.10008.5.1.4.1.1.1.2",   /* MG presentation */
      "1.2.840.10008.5.1.4.1.1.1.2.1", /* MG processing */
      "1.2.840.10008.5.1.4.1.1.1.3",   /* IO presentation */
      "1.2.840.10008.5.1.4.1.1.1.3.1", /* IO processing */
      "1.2.840.10008.5.1.4.1.1.2",     /* CT */
      "1.2.840.10008.5.1.4.1.1.4",     /* MR */
      "1.2.840.10008.5.1.4.1.1.6.1",   /* US */
      "1.2.840.10008.5.1.4.1.1.7",     /* Secondary Capture */
      "1.2.840.10008.5.1.4.1.1.128",   /* PET */
  };
  for (const char *c : k)
    if (!strcmp(uid, c)) return true;
  return false;
}

bool valid_root(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 40 || !valid_uid(s)) return false;
  /* no leading zeros in a component */
  for (size_t i = 0; i < n; i++)
    if ((i == 0 || s[i - 1] == '.') && s[i] == '0' && i + 1 < n && s[i + 1] != '.') return false;
  return true;
}

/* root.<random decimal>, at most 64 characters. */
int make_uid(const char *root, char out[65], camd_error *err) {
  unsigned char r[16];
  size_t got = 0;
  while (got < sizeof(r)) {
    ssize_t k = getrandom(r + got, sizeof(r) - got, 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      return camd_error_set(err, CAMD_E_INTERNAL, "getrandom failed: %s", strerror(errno));
    }
    got += (size_t)k;
  }
  bool uuid = !strcmp(root, "2.25");
  if (uuid) { /* RFC 4122 version 4, variant 1 */
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
  }
  /* 128-bit big-endian number to decimal */
  char digits[48];
  size_t nd = 0;
  unsigned char num[16];
  memcpy(num, r, 16);
  for (;;) {
    bool zero = true;
    unsigned rem = 0;
    for (int i = 0; i < 16; i++) {
      unsigned cur = rem * 256 + num[i];
      num[i] = (unsigned char)(cur / 10);
      rem = cur % 10;
      if (num[i]) zero = false;
    }
    digits[nd++] = (char)('0' + rem);
    if (zero) break;
  }
  size_t room = 64 - strlen(root) - 1;
  if (nd > room) nd = room; /* keep the least significant digits */
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  char *p = out + snprintf(out, 65, "%s.", root);
  for (size_t i = 0; i < nd; i++) *p++ = digits[nd - 1 - i];
  *p = '\0';
  return 0;
}

OFCondition put(DcmItem *it, const DcmTagKey &tag, const std::string &v) {
  return it->putAndInsertString(DcmTag(tag), v.c_str());
}

OFCondition put_code(DcmItem *seq_parent, const DcmTagKey &seq, const char *scheme,
                     const char *value, const char *meaning) {
  DcmItem *ci = nullptr;
  OFCondition c = seq_parent->findOrCreateSequenceItem(DcmTag(seq), ci, -2);
  if (c.good()) c = ci->putAndInsertString(DCM_CodeValue, value);
  if (c.good()) c = ci->putAndInsertString(DCM_CodingSchemeDesignator, scheme);
  if (c.good()) c = ci->putAndInsertString(DCM_CodeMeaning, meaning);
  return c;
}

/* Patient, Clinical Trial Subject, General Study and Patient Study attributes outside groups
 * 0010/0012 (which are copied whole). */
const DcmTagKey k_study_tags[] = {
    DCM_StudyInstanceUID,
    DCM_StudyDate,
    DCM_StudyTime,
    DCM_ReferringPhysicianName,
    DCM_ReferringPhysicianIdentificationSequence,
    DCM_ConsultingPhysicianName,
    DCM_ConsultingPhysicianIdentificationSequence,
    DCM_StudyID,
    DCM_AccessionNumber,
    DCM_IssuerOfAccessionNumberSequence,
    DCM_StudyDescription,
    DCM_PhysiciansOfRecord,
    DCM_PhysiciansOfRecordIdentificationSequence,
    DCM_NameOfPhysiciansReadingStudy,
    DCM_PhysiciansReadingStudyIdentificationSequence,
    DCM_RequestingService,
    DCM_RequestingServiceCodeSequence,
    DCM_ReferencedStudySequence,
    DCM_ProcedureCodeSequence,
    DCM_ReasonForPerformedProcedureCodeSequence,
    DCM_ReferencedPatientSequence,
    DCM_AdmittingDiagnosesDescription,
    DCM_AdmittingDiagnosesCodeSequence,
    DCM_AdmissionID,
    DCM_IssuerOfAdmissionIDSequence,
    DCM_ServiceEpisodeID,
    DCM_IssuerOfServiceEpisodeIDSequence,
    DCM_ServiceEpisodeDescription,
    DCM_ReasonForVisit,
    DCM_ReasonForVisitCodeSequence,
    DCM_PatientState,
    DCM_SpecificCharacterSet,
};

std::string now_stamp(const char *fmt) {
  time_t t = time(nullptr);
  struct tm tmv;
  gmtime_r(&t, &tmv);
  char b[32];
  strftime(b, sizeof(b), fmt, &tmv);
  return b;
}

int write_impl(const camd_dicom *src, const camd_image *ov, const camd_dicom_sc_opts *o,
               unsigned char **data, size_t *len, camd_dicom_sc_uids *uids, camd_error *err) {
  const camd_dicom_info &si = src->info;
  if (!o->model_name || !*o->model_name || !o->method || !*o->method || !o->camd_version ||
      !*o->camd_version)
    return camd_error_set(err, CAMD_E_INVALID,
                          "the Secondary Capture needs the model name, the method and the camd "
                          "version");
  if (!ov || !ov->pixels || (ov->channels != 3 && ov->channels != 1))
    return camd_error_set(err, CAMD_E_INVALID, "the overlay must be an 8-bit RGB or gray image");
  if (ov->width != si.columns || ov->height != si.rows)
    return camd_error_set(err, CAMD_E_INVALID,
                          "the overlay is %zux%zu, the source frame %zux%zu: the Secondary "
                          "Capture keeps the frame's geometry",
                          ov->width, ov->height, si.columns, si.rows);
  if (o->frame >= si.frames)
    return camd_error_set(err, CAMD_E_INVALID,
                          "frame %zu out of range: the source has %zu "
                          "frame(s)",
                          o->frame, si.frames);
  if (!si.sop_class_uid[0] || !si.sop_instance_uid[0] || !si.study_instance_uid[0])
    return camd_error_set(err, CAMD_E_INVALID,
                          "the source has no valid SOP Class, SOP Instance or Study Instance UID "
                          "to reference");
  const char *root = (o->uid_root && *o->uid_root) ? o->uid_root : "2.25";
  if (!valid_root(root))
    return camd_error_set(err, CAMD_E_INVALID,
                          "UID root '%.64s' is not a valid UID prefix (digits and dots, no "
                          "leading zeros, at most 40 characters)",
                          root);
  camd_dicom_sc_uids u;
  int rc = 0;
  if (o->series_instance_uid && *o->series_instance_uid) {
    if (strlen(o->series_instance_uid) > 64 || !valid_uid(o->series_instance_uid))
      return camd_error_set(err, CAMD_E_INVALID, "series UID '%.70s' is not a valid UID",
                            o->series_instance_uid);
    snprintf(u.series_instance_uid, sizeof(u.series_instance_uid), "%s", o->series_instance_uid);
  } else {
    rc = make_uid(root, u.series_instance_uid, err);
  }
  if (!rc) rc = make_uid(root, u.sop_instance_uid, err);
  if (rc) return rc;

  DcmFileFormat ff;
  DcmDataset *d = ff.getDataset();
  DcmDataset *s = OFconst_cast(DcmFileFormat &, src->ff).getDataset();
  OFCondition c = EC_Normal;

  /* copied from the source: patient (0010), clinical trial subject (0012), study attributes */
  for (unsigned long i = 0; i < s->card(); i++) {
    DcmElement *e = s->getElement(i);
    if (!e) continue;
    Uint16 g = e->getGTag(), el = e->getETag();
    if ((g == 0x0010 || g == 0x0012) && el != 0x0000 && !e->getTag().isPrivate()) {
      DcmElement *copy = OFstatic_cast(DcmElement *, e->clone());
      if (!copy || d->insert(copy, OFTrue).bad()) {
        delete copy;
        return camd_error_set(err, CAMD_E_NOMEM, "out of memory copying the patient module");
      }
    }
  }
  for (const DcmTagKey &t : k_study_tags)
    if (s->tagExists(t)) s->findAndInsertCopyOfElement(t, d);
  /* a source that says its identity was removed but not how (Type 1C): say so, not invent it */
  OFString removed;
  if (d->findAndGetOFString(DCM_PatientIdentityRemoved, removed).good() && removed == "YES" &&
      !d->tagExists(DCM_DeidentificationMethod) &&
      !d->tagExists(DCM_DeidentificationMethodCodeSequence))
    d->putAndInsertString(DCM_DeidentificationMethod, "not stated in the source instance");
  /* Type 2 attributes present even when the source lacks them */
  const DcmTagKey type2[] = {
      DCM_PatientName, DCM_PatientID, DCM_PatientBirthDate,       DCM_PatientSex,     DCM_StudyDate,
      DCM_StudyTime,   DCM_StudyID,   DCM_ReferringPhysicianName, DCM_AccessionNumber};
  for (const DcmTagKey &t : type2)
    if (!d->tagExists(t)) d->insertEmptyElement(DcmTag(t));

  std::string model = clean_text(o->model_name, 200), method = clean_text(o->method, 32);
  std::string sha = clean_text(o->model_sha256, 64), layer = clean_text(o->layer, 200);
  std::string target = clean_text(o->target, 200), ver = clean_text(o->camd_version, 16);
  std::string date = now_stamp("%Y%m%d"), tim = now_stamp("%H%M%S");
  std::string desc = o->series_description
                         ? clean_text(o->series_description, 64)
                         : clean_text(("camd " + method + " " + model).c_str(), 64);
  std::string what = "Class activation map (" + method + ") of model " + model;
  if (!sha.empty()) what += " (sha256 " + sha + ")";
  if (!layer.empty()) what += ", layer " + layer;
  if (!target.empty()) what += ", target " + target;
  what += ", by camd " + ver + ", overlaid on frame " + std::to_string(o->frame + 1) +
          " of the source image";

  /* SOP Common, General Series, General Equipment, SC Equipment */
  if (c.good()) c = put(d, DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  if (c.good()) c = put(d, DCM_SOPInstanceUID, u.sop_instance_uid);
  if (c.good()) c = put(d, DCM_InstanceCreationDate, date);
  if (c.good()) c = put(d, DCM_InstanceCreationTime, tim);
  if (c.good()) c = put(d, DCM_Modality, "OT");
  if (c.good()) c = put(d, DCM_SeriesInstanceUID, u.series_instance_uid);
  if (c.good())
    c = put(d, DCM_SeriesNumber, std::to_string(o->series_number ? o->series_number : 9001));
  if (c.good()) c = put(d, DCM_SeriesDescription, desc);
  /* Laterality (General Series, 2C) and the body part: the overlay shows the same anatomy */
  if (c.good()) {
    OFString lat;
    if (s->findAndGetOFString(DCM_Laterality, lat).good() && !lat.empty())
      c = put(d, DCM_Laterality, lat.c_str());
    else
      c = d->insertEmptyElement(DCM_Laterality);
  }
  if (c.good() && s->tagExists(DCM_BodyPartExamined))
    s->findAndInsertCopyOfElement(DCM_BodyPartExamined, d);
  if (c.good()) c = put(d, DCM_SeriesDate, date);
  if (c.good()) c = put(d, DCM_SeriesTime, tim);
  if (c.good()) c = put(d, DCM_Manufacturer, "camd");
  if (c.good()) c = put(d, DCM_ConversionType, "WSD");
  if (c.good()) c = put(d, DCM_SecondaryCaptureDeviceManufacturer, "camd");
  if (c.good()) c = put(d, DCM_SecondaryCaptureDeviceManufacturerModelName, "camd");
  if (c.good()) c = put(d, DCM_SecondaryCaptureDeviceSoftwareVersions, ver);
  if (c.good()) c = put(d, DCM_DateOfSecondaryCapture, date);
  if (c.good()) c = put(d, DCM_TimeOfSecondaryCapture, tim);
  /* General Image */
  if (c.good())
    c = put(d, DCM_InstanceNumber, std::to_string(o->instance_number ? o->instance_number : 1));
  if (c.good()) {
    OFString po;
    if (s->findAndGetOFStringArray(DCM_PatientOrientation, po).good() && !po.empty())
      c = put(d, DCM_PatientOrientation, po.c_str());
    else
      c = d->insertEmptyElement(DCM_PatientOrientation);
  }
  if (c.good()) c = put(d, DCM_ContentDate, date);
  if (c.good()) c = put(d, DCM_ContentTime, tim);
  if (c.good()) c = put(d, DCM_ImageType, "DERIVED\\SECONDARY");
  if (c.good()) c = put(d, DCM_DerivationDescription, clean_text(what.c_str(), 1024));
  if (c.good())
    c = put_code(d, DCM_DerivationCodeSequence, "99CAMD", "CAM-OVERLAY",
                 "Class activation map overlay");
  if (c.good()) { /* the private coding scheme used above */
    DcmItem *cs = nullptr;
    c = d->findOrCreateSequenceItem(DCM_CodingSchemeIdentificationSequence, cs, -2);
    if (c.good()) c = put(cs, DCM_CodingSchemeDesignator, "99CAMD");
    if (c.good()) c = put(cs, DCM_CodingSchemeName, "camd explanation codes");
    if (c.good()) c = put(cs, DCM_CodingSchemeResponsibleOrganization, "camd");
  }
  if (c.good()) {
    DcmItem *ri = nullptr;
    c = d->findOrCreateSequenceItem(DCM_SourceImageSequence, ri, -2);
    if (c.good()) c = put(ri, DCM_ReferencedSOPClassUID, si.sop_class_uid);
    if (c.good()) c = put(ri, DCM_ReferencedSOPInstanceUID, si.sop_instance_uid);
    if (c.good() && si.frames > 1 && !single_frame_class(si.sop_class_uid))
      c = put(ri, DCM_ReferencedFrameNumber, std::to_string(o->frame + 1));
    if (c.good())
      c = put_code(ri, DCM_PurposeOfReferenceCodeSequence, "DCM", "121322",
                   "Source image for image processing operation");
  }
  if (c.good()) c = put(d, DCM_ImageComments, clean_text(what.c_str(), 10240));
  if (c.good()) c = put(d, DCM_BurnedInAnnotation, "YES");
  /* once lossy, always lossy (PS3.3 C.7.6.1.1.5) */
  if (c.good()) {
    OFString lossy;
    bool src_lossy =
        src->ts->lossy_method != nullptr ||
        (s->findAndGetOFString(DCM_LossyImageCompression, lossy).good() && lossy == "01");
    if (src_lossy) {
      c = put(d, DCM_LossyImageCompression, "01");
      OFString m;
      if (c.good() && s->findAndGetOFStringArray(DCM_LossyImageCompressionMethod, m).good() &&
          !m.empty())
        c = put(d, DCM_LossyImageCompressionMethod, m.c_str());
      else if (c.good() && src->ts->lossy_method)
        c = put(d, DCM_LossyImageCompressionMethod, src->ts->lossy_method);
      if (c.good() && s->tagExists(DCM_LossyImageCompressionRatio))
        s->findAndInsertCopyOfElement(DCM_LossyImageCompressionRatio, d);
    }
  }
  /* Contributing Equipment: camd as processing equipment */
  if (c.good()) {
    DcmItem *ce = nullptr;
    c = d->findOrCreateSequenceItem(DCM_ContributingEquipmentSequence, ce, -2);
    if (c.good())
      c = put_code(ce, DCM_PurposeOfReferenceCodeSequence, "DCM", "109102", "Processing Equipment");
    if (c.good()) c = put(ce, DCM_Manufacturer, "camd");
    if (c.good())
      c = put(ce, DCM_ManufacturerModelName, clean_text(("camd " + method).c_str(), 64));
    if (c.good()) c = put(ce, DCM_SoftwareVersions, ver);
    if (c.good()) c = put(ce, DCM_ContributionDateTime, date + tim);
    if (c.good()) c = put(ce, DCM_ContributionDescription, clean_text(what.c_str(), 1024));
  }
  /* Image Pixel (+ SC Image's PixelSpacing, same geometry as the source frame) */
  if (c.good()) c = d->putAndInsertUint16(DCM_SamplesPerPixel, 3);
  if (c.good()) c = put(d, DCM_PhotometricInterpretation, "RGB");
  if (c.good()) c = d->putAndInsertUint16(DCM_Rows, (Uint16)si.rows);
  if (c.good()) c = d->putAndInsertUint16(DCM_Columns, (Uint16)si.columns);
  if (c.good()) c = d->putAndInsertUint16(DCM_BitsAllocated, 8);
  if (c.good()) c = d->putAndInsertUint16(DCM_BitsStored, 8);
  if (c.good()) c = d->putAndInsertUint16(DCM_HighBit, 7);
  if (c.good()) c = d->putAndInsertUint16(DCM_PixelRepresentation, 0);
  if (c.good()) c = d->putAndInsertUint16(DCM_PlanarConfiguration, 0);
  if (c.good() && si.has_pixel_spacing) s->findAndInsertCopyOfElement(DCM_PixelSpacing, d);
  if (c.good()) {
    size_t n = ov->width * ov->height;
    std::vector<Uint8> rgb(n * 3);
    for (size_t i = 0; i < n; i++)
      for (int k = 0; k < 3; k++) rgb[3 * i + k] = ov->pixels[ov->channels == 3 ? 3 * i + k : i];
    c = d->putAndInsertUint8Array(DCM_PixelData, rgb.data(), (unsigned long)rgb.size());
  }
  if (c.bad())
    return camd_error_set(err, CAMD_E_INTERNAL, "building the Secondary Capture failed: %s",
                          c.text());

  /* encode to memory */
  std::vector<unsigned char> outbuf;
  std::vector<unsigned char> chunk(1 << 16);
  DcmOutputBufferStream os(chunk.data(), chunk.size());
  ff.transferInit();
  c = EC_StreamNotifyClient;
  while (c == EC_StreamNotifyClient) {
    c = ff.write(os, EXS_LittleEndianExplicit, EET_ExplicitLength, nullptr);
    void *p = nullptr;
    offile_off_t n = 0;
    os.flushBuffer(p, n);
    if (n > 0) outbuf.insert(outbuf.end(), (unsigned char *)p, (unsigned char *)p + n);
  }
  ff.transferEnd();
  if (c.bad())
    return camd_error_set(err, CAMD_E_INTERNAL, "encoding the Secondary Capture failed: %s",
                          c.text());
  unsigned char *res = (unsigned char *)malloc(outbuf.size());
  if (!res) return camd_error_set(err, CAMD_E_NOMEM, "out of memory for the Secondary Capture");
  memcpy(res, outbuf.data(), outbuf.size());
  *data = res;
  *len = outbuf.size();
  if (uids) *uids = u;
  return 0;
}

int exception_status(camd_error *err, const char *where) {
  try {
    throw;
  } catch (const std::bad_alloc &) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory in %s", where);
  } catch (const std::exception &e) {
    return camd_error_set(err, CAMD_E_INTERNAL, "%s failed: %s", where, e.what());
  } catch (...) {
    return camd_error_set(err, CAMD_E_INTERNAL, "%s failed with an unknown exception", where);
  }
}

}  // namespace

/* ---- C entry points ---- */
extern "C" {

int camd_dicom_open(const void *data, size_t len, const camd_dicom_limits *limits, camd_dicom **out,
                    camd_dicom_info *info, camd_error *err) {
  if (!out) return camd_error_set(err, CAMD_E_INVALID, "camd_dicom_open: out is NULL");
  *out = nullptr;
  if (info) *info = camd_dicom_info{};
  if (!data && len) return camd_error_set(err, CAMD_E_INVALID, "DICOM data is NULL");
  try {
    return open_impl((const unsigned char *)data, len, limits, out, info, err);
  } catch (...) {
    return exception_status(err, "reading the DICOM file");
  }
}

void camd_dicom_close(camd_dicom *dcm) {
  try {
    delete dcm;
  } catch (...) {
  }
}

bool camd_dicom_uid_root_valid(const char *root) {
  return root && valid_root(root);
}

const camd_dicom_info *camd_dicom_get_info(const camd_dicom *dcm) {
  return dcm ? &dcm->info : nullptr;
}

const camd__dicom_pixmod *camd__dicom_get_pixmod(const camd_dicom *dcm) {
  return dcm ? &dcm->pm : nullptr;
}

int camd__dicom_raw_frame(camd_dicom *dcm, size_t frame, camd__dicom_raw *out, camd_error *err) {
  memset(out, 0, sizeof(*out));
  if (!dcm || frame >= dcm->info.frames)
    return camd_error_set(err, CAMD_E_INVALID, "frame %zu out of range", frame);
  try {
    switch (dcm->codec) {
      case CODEC_NATIVE:
        return native_frame(dcm, frame, out, err);
      case CODEC_DCMTK:
        return dcmtk_frame(dcm, frame, out, err);
      case CODEC_J2K:
        return j2k_frame(dcm, frame, out, err);
    }
    return camd_error_set(err, CAMD_E_INTERNAL, "unknown codec");
  } catch (...) {
    camd__dicom_raw_free(out);
    return exception_status(err, "decoding the DICOM frame");
  }
}

int camd_dicom_write_sc(const camd_dicom *src, const camd_image *overlay,
                        const camd_dicom_sc_opts *opts, unsigned char **data, size_t *len,
                        camd_dicom_sc_uids *uids, camd_error *err) {
  if (!data || !len || !src || !opts)
    return camd_error_set(err, CAMD_E_INVALID, "camd_dicom_write_sc: NULL argument");
  *data = nullptr;
  *len = 0;
  try {
    return write_impl(src, overlay, opts, data, len, uids, err);
  } catch (...) {
    return exception_status(err, "writing the Secondary Capture");
  }
}

}  // extern "C"
