/* Engine-private BLAS control (blas.c). */
#ifndef CAMD_ENGINE_BLAS_H
#define CAMD_ENGINE_BLAS_H

/* Makes the BLAS library run every call in the calling thread (once per process): the engine's
 * thread pools split the work, and BLAS threads on top would oversubscribe the cores. */
void camd__blas_single_thread(void);

#endif
