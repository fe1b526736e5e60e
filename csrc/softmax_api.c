/*
 * softmax_api.c - the public softmax / log_softmax entry points of fastnn.h.
 *
 * Each checks its sizes and splits the B rows (blocks of (C, D)) over threads
 * with fnn_parallel_for; each row is computed whole by one thread, so the
 * result does not depend on the thread count. The vector loops are in
 * softmax.c. Compiled once. Dimension letters: B blocks, C the softmax axis,
 * D the axes after it; every array is (B, C, D).
 */
#include "fastnn.h"
#include "kernels.h"

/* ---- softmax: threads over rows ------------------------------------------ */

typedef struct {
    const fnn_softmax_kernels *k; /* read once per call */
    float *out;
    const float *a, *b;
    int64_t C, D;
    int log, accumulate;
} softmax_job;

static void softmax_range(void *ctx, int64_t begin, int64_t end) {
    softmax_job *j = ctx;
    int64_t off = begin * j->C * j->D;
    j->k->forward(j->out + off, j->a + off, end - begin, j->C, j->D, j->log);
}

static void softmax_backward_range(void *ctx, int64_t begin, int64_t end) {
    softmax_job *j = ctx;
    int64_t off = begin * j->C * j->D;
    j->k->backward(j->out + off, j->a + off, j->b + off, end - begin, j->C, j->D, j->log,
                    j->accumulate);
}

static int64_t rows_per_grain(int64_t C, int64_t D) {
    int64_t row = C * D;
    return row >= FNN_GRAIN_ELEMENTWISE ? 1 : FNN_GRAIN_ELEMENTWISE / (row > 0 ? row : 1);
}

static fnn_status run_softmax(float *out, const float *inp, int64_t B, int64_t C, int64_t D,
                              int log) {
    if (B < 0 || C < 0 || D < 0) return FNN_ERR_ARG;
    if (C == 0 || D == 0) return FNN_OK;
    softmax_job j = {.k = fnn_active_softmax(), .out = out, .a = inp, .C = C, .D = D, .log = log};
    fnn_parallel_for(B, rows_per_grain(C, D), 1, &j, softmax_range);
    return FNN_OK;
}

static fnn_status run_softmax_backward(float *dinp, const float *dout, const float *out, int64_t B,
                                   int64_t C, int64_t D, int log, int accumulate) {
    if (B < 0 || C < 0 || D < 0) return FNN_ERR_ARG;
    if (C == 0 || D == 0) return FNN_OK;
    softmax_job j = {.k = fnn_active_softmax(), .out = dinp, .a = dout, .b = out, .C = C, .D = D, .log = log,
                     .accumulate = accumulate != 0};
    fnn_parallel_for(B, rows_per_grain(C, D), 1, &j, softmax_backward_range);
    return FNN_OK;
}

fnn_status fnn_softmax_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t D) {
    return run_softmax(out, inp, B, C, D, 0);
}
fnn_status fnn_softmax_backward(float *dinp, const float *dout, const float *out, int64_t B,
                                int64_t C, int64_t D, int accumulate) {
    return run_softmax_backward(dinp, dout, out, B, C, D, 0, accumulate);
}
fnn_status fnn_log_softmax_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t D) {
    return run_softmax(out, inp, B, C, D, 1);
}
fnn_status fnn_log_softmax_backward(float *dinp, const float *dout, const float *out, int64_t B,
                                    int64_t C, int64_t D, int accumulate) {
    return run_softmax_backward(dinp, dout, out, B, C, D, 1, accumulate);
}

