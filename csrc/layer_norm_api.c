/*
 * layer_norm_api.c - the public LayerNorm and RMSNorm entry points of fastnn.h.
 *
 * Compiled once. Dimension letters: M rows, D the normalized size. Threads take
 * blocks of rows (layer_norm.c's row loops). The blocks' size depends only on D,
 * so the per-block weight and bias gradients, summed by one thread each and then
 * added block by block in order, do not depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>

#include "fastnn.h"
#include "kernels.h"

/* rows per block: about FNN_GRAIN_ELEMENTWISE floats */
static int64_t block_rows(int64_t D) {
    int64_t r = FNN_GRAIN_ELEMENTWISE / D;
    return r < 1 ? 1 : r;
}

static int bad_sizes(int64_t M, int64_t D, float eps) {
    return M < 0 || D < 1 || !(eps >= 0.0f && eps < INFINITY);
}

typedef struct {
    const fnn_layer_norm_kernels *k; /* read once per call */
    float *out, *mean, *rstd, *sum;
    const float *inp, *residual, *weight, *bias;
    const float *saved_mean, *saved_rstd; /* backward's: the forward's mean and rstd */
    float *dinp, *parts; /* parts: per block, dweight then dbias partial sums (2 * D) */
    const float *dout;
    int64_t M, D, rows; /* rows: per backward block */
    float eps;
    int rms, accumulate, want_dweight, want_dbias;
} ln_job;

static void forward_range(void *ctx, int64_t begin, int64_t end) {
    ln_job *j = ctx;
    int64_t o = begin * j->D;
    j->k->forward_rows(j->out + o, j->mean ? j->mean + begin : NULL, j->rstd + begin,
                       j->sum ? j->sum + o : NULL, j->inp + o, j->residual ? j->residual + o : NULL,
                       j->weight, j->bias, end - begin, j->D, j->eps, j->rms);
}

static fnn_status run_forward(ln_job *j, int64_t M) {
    if (bad_sizes(M, j->D, j->eps)) return FNN_ERR_ARG;
    if (M == 0) return FNN_OK;
    j->k = fnn_active_layer_norm();
    j->M = M;
    fnn_parallel_for(M, block_rows(j->D), 1, j, forward_range);
    return FNN_OK;
}

fnn_status fnn_layer_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int64_t M, int64_t D,
                                  float eps) {
    ln_job j = {.out = out, .mean = mean, .rstd = rstd, .inp = inp, .weight = weight,
                .bias = bias, .D = D, .eps = eps};
    return run_forward(&j, M);
}

fnn_status fnn_add_layer_norm_forward(float *sum, float *out, float *mean, float *rstd,
                                      const float *inp, const float *residual,
                                      const float *weight, const float *bias, int64_t M,
                                      int64_t D, float eps) {
    ln_job j = {.out = out, .mean = mean, .rstd = rstd, .sum = sum, .inp = inp,
                .residual = residual, .weight = weight, .bias = bias, .D = D, .eps = eps};
    return run_forward(&j, M);
}

fnn_status fnn_rms_norm_forward(float *out, float *rstd, const float *inp, const float *weight,
                                int64_t M, int64_t D, float eps) {
    ln_job j = {.out = out, .rstd = rstd, .inp = inp, .weight = weight, .D = D, .eps = eps,
                .rms = 1};
    return run_forward(&j, M);
}

/* blocks [begin, end) of j->rows rows each */
static void backward_blocks(void *ctx, int64_t begin, int64_t end) {
    ln_job *j = ctx;
    for (int64_t b = begin; b < end; b++) {
        int64_t r0 = b * j->rows, r1 = r0 + j->rows < j->M ? r0 + j->rows : j->M;
        int64_t o = r0 * j->D;
        float *part = j->parts ? j->parts + b * 2 * j->D : NULL;
        j->k->backward_rows(j->dinp ? j->dinp + o : NULL, j->want_dweight ? part : NULL,
                            j->want_dbias ? part + j->D : NULL, j->dout + o, j->inp + o,
                            j->saved_mean ? j->saved_mean + r0 : NULL, j->saved_rstd + r0,
                            j->weight, r1 - r0, j->D, j->accumulate);
    }
}

static fnn_status run_backward(ln_job *j, float *dweight, float *dbias) {
    int64_t M = j->M, D = j->D;
    if (M < 0 || D < 1) return FNN_ERR_ARG;
    if (M == 0) return FNN_OK;
    j->k = fnn_active_layer_norm();
    j->rows = block_rows(D);
    int64_t blocks = (M + j->rows - 1) / j->rows;
    j->want_dweight = dweight != NULL;
    j->want_dbias = dbias != NULL;
    if (dweight || dbias) {
        j->parts = calloc((size_t)(blocks * 2 * D), sizeof(float));
        if (!j->parts) return FNN_ERR_NOMEM;
    }
    fnn_parallel_for(blocks, 1, 1, j, backward_blocks);
    for (int64_t d = 0; d < D && j->parts; d++) {
        double gw = 0.0, gb = 0.0;
        for (int64_t b = 0; b < blocks; b++) {
            gw += (double)j->parts[b * 2 * D + d];
            gb += (double)j->parts[b * 2 * D + D + d];
        }
        if (dweight) dweight[d] = (float)((double)dweight[d] + gw);
        if (dbias) dbias[d] = (float)((double)dbias[d] + gb);
    }
    free(j->parts);
    return FNN_OK;
}

fnn_status fnn_layer_norm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *mean, const float *rstd, const float *inp,
                                   const float *weight, int64_t M, int64_t D, int accumulate) {
    ln_job j = {.dinp = dinp, .dout = dout, .saved_mean = mean, .saved_rstd = rstd,
                .inp = inp, .weight = weight, .M = M, .D = D, .accumulate = accumulate != 0};
    return run_backward(&j, dweight, dbias);
}

fnn_status fnn_rms_norm_backward(float *dinp, float *dweight, const float *dout,
                                 const float *rstd, const float *inp, const float *weight,
                                 int64_t M, int64_t D, int accumulate) {
    ln_job j = {.dinp = dinp, .dout = dout, .saved_rstd = rstd, .inp = inp,
                .weight = weight, .M = M, .D = D, .rms = 1, .accumulate = accumulate != 0};
    return run_backward(&j, dweight, NULL);
}
