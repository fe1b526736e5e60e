/*
 * runtime/threads.c - thread count and the one parallel-for every kernel uses.
 *
 * Work is split into at most fnn_get_num_threads() contiguous ranges, never
 * into pieces smaller than `grain`, so small arrays never pay for waking
 * threads. Builds without OpenMP run everything on the calling thread.
 */
#include "../fastnn.h"
#include "../kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int fnn_num_threads = 0; /* 0: not set yet, use what OpenMP offers */

int fnn_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fnn_max_hardware_threads(void) {
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

fnn_status fnn_set_num_threads(int n) {
    if (n < 1) return FNN_ERR_ARG;
    fnn_num_threads = n;
    return FNN_OK;
}

int fnn_get_num_threads(void) {
    if (fnn_num_threads > 0) return fnn_has_openmp() ? fnn_num_threads : 1;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void fnn_parallel_for(int64_t n, int64_t grain, int64_t align, void *ctx, fnn_range_body body) {
    int64_t nthreads = fnn_get_num_threads();
    if (grain < 1) grain = 1;
    if (n / grain < nthreads) nthreads = n / grain;
    if (nthreads <= 1) {
        if (n > 0) body(ctx, 0, n);
        return;
    }
#ifdef _OPENMP
    /* chunk = ceil(n / nthreads) rounded up to `align`; the last range is short */
    int64_t chunk = (n + nthreads - 1) / nthreads;
    chunk = (chunk + align - 1) / align * align;
    #pragma omp parallel for num_threads((int)nthreads) schedule(static, 1)
    for (int64_t t = 0; t < nthreads; t++) {
        int64_t begin = t * chunk;
        int64_t end = begin + chunk < n ? begin + chunk : n;
        if (begin < end) body(ctx, begin, end);
    }
#else
    body(ctx, 0, n);
#endif
}
