/* libFuzzer target for the image module: decode (PNG/JPEG/EXIF) arbitrary bytes and, when that
 * succeeds, run the rest of the pipeline the server runs on a decoded image.
 *
 * Build: tests/fuzz/build.sh (libFuzzer; see tests/fuzz/README.md); the ctest suite
 * (tests/fuzz/suite.cmake) replays tests/fuzz/corpus/image/ plus mutations without libFuzzer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "camd/core.h"
#include "camd/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* small limits keep each input fast; the limit path itself is part of what is fuzzed */
  camd_image_limits lim = {4096, 4096, (size_t)4 << 20};
  camd_image img = {0};
  camd_image_info info;
  camd_error err;
  if (camd_image_decode(data, size, &lim, &img, &info, &err) != 0) {
    if (img.pixels) abort(); /* contract: never a partial image */
    return 0;
  }
  if (img.channels != 3 || img.width == 0 || img.height == 0) abort();
  camd_preprocess_opts o;
  camd_preprocess_opts_default(&o);
  o.width = 17;
  o.height = 13;
  o.resize_shorter = 19;
  float t[3 * 17 * 13];
  camd_crop crop;
  if (camd_preprocess(&img, &o, t, sizeof(t) / sizeof(t[0]), &crop, &err) != 0) abort();
  float *map = malloc(img.width * img.height * sizeof(float));
  if (map) {
    float cam[4] = {0.f, 0.25f, 1.f, 0.5f};
    if (camd_heatmap_upsample(cam, 2, 2, &crop, img.width, img.height, 0.f, map, &err) != 0)
      abort();
    camd_image heat = {0}, over = {0};
    if (camd_heatmap_colorize(map, img.width, img.height, CAMD_COLORMAP_JET, &heat, &err) == 0 &&
        camd_image_blend(&img, &heat, 0.5f, &over, &err) == 0) {
      unsigned char *png = NULL;
      size_t len = 0;
      if (camd_png_encode(&over, 1, &png, &len, &err) == 0) {
        camd_image back = {0};
        if (camd_image_decode(png, len, NULL, &back, NULL, &err) != 0) abort();
        camd_image_free(&back);
        free(png);
      }
    }
    camd_bbox box;
    camd_heatmap_bbox(map, img.width, img.height, 0.2f, CAMD_BBOX_LARGEST_COMPONENT, &box, &err);
    camd_image_free(&heat);
    camd_image_free(&over);
    free(map);
  }
  camd_image_free(&img);
  return 0;
}
