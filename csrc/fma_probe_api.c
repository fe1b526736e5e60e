/*
 * fma_probe_api.c - fnn_fma_probe (fastnn.h): every thread runs the active
 * ISA's probe (fma_probe.c) for `iters` rounds; *flops is the work done.
 */
#include "fastnn.h"
#include "kernels.h"

#define FNN_PROBE_MAX_THREADS 64

typedef struct {
    const fnn_fma_probe_kernels *k; /* read once per call */
    int64_t iters;
    float sink[FNN_PROBE_MAX_THREADS];
} probe_job;

static void probe_range(void *ctx, int64_t begin, int64_t end) {
    probe_job *j = ctx;
    for (int64_t t = begin; t < end; t++) j->sink[t] = j->k->run(j->iters);
}

fnn_status fnn_fma_probe(int64_t iters, double *flops) {
    int64_t nthreads = fnn_get_num_threads();
    if (iters < 0 || !flops) return FNN_ERR_ARG;
    if (nthreads > FNN_PROBE_MAX_THREADS) nthreads = FNN_PROBE_MAX_THREADS;
    probe_job j = {.k = fnn_active_fma_probe(), .iters = iters};
    fnn_parallel_for(nthreads, 1, 1, &j, probe_range); /* sink keeps the work observable */
    *flops = 2.0 * 16.0 * (double)j.k->vw * (double)iters * (double)nthreads;
    return FNN_OK;
}
