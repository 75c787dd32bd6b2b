/* Process-wide malloc policy: model loading from the heap, then the serving thresholds (glibc). */
#include "camd/core.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* Loading a model allocates its weights once: ~100 MB for ResNet-50 in tensors of 4 KB to 10 MB,
 * then the oneDNN pass copies most of them into blocked layouts and frees the originals. With
 * glibc's defaults every tensor above 128 KB is its own mmap, first-touched 4 KB page by 4 KB page
 * (~20 000 page faults, the largest part of loading on virtual machines where a fault costs
 * ~10 us), and the originals go back to the kernel only for the copies to fault in new pages.
 * From the heap instead, the freed originals are reused for the copies, and the heap grows in
 * huge pages when glibc.malloc.hugetlb=1 (camd_blas_autotune_exec sets it): measured on
 * ResNet-50, 31 000 -> 9 000 page faults from start to after 40 requests. */
enum { LOAD_MMAP_THRESHOLD = 64 << 20, SERVE_MMAP_THRESHOLD = 4 << 20, SERVE_TRIM = 8 << 20 };

void camd_alloc_policy_loading(void) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, LOAD_MMAP_THRESHOLD);
#endif
}

void camd_alloc_policy_serving(void) {
#if defined(__GLIBC__)
  /* What loading left free inside the heap goes back to the kernel, once. Then blocks up to
   * 4 MiB (a request's images and answer) come from the heap and are reused request after
   * request without new page faults (glibc's dynamic threshold would end near the largest block
   * freed so far, which after loading is a weight tensor), and the heap's top is kept until
   * 8 MiB are free there. Measured on ResNet-50 with 2 workers: RSS after 40 requests
   * 213 -> 205 MiB, page faults per request unchanged (~2). */
  malloc_trim(0);
  mallopt(M_MMAP_THRESHOLD, SERVE_MMAP_THRESHOLD);
  mallopt(M_TRIM_THRESHOLD, SERVE_TRIM);
#endif
}
