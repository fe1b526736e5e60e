/*
 * api.c - the public entry points of fastnn.h for activations, softmax and
 * losses (GEMM's are in gemm/driver.c, the optimizer updates' in optim_api.c).
 *
 * Each checks its sizes, splits the work over threads with fnn_parallel_for
 * and calls the active ISA's kernel (kernels.h). Element-wise ranges start
 * on 64-byte multiples; softmax splits over rows; losses split over fixed
 * blocks whose partial sums are added in block order.
 */
#include <stdlib.h>
#include <math.h>

#include "fastnn.h"
#include "kernels.h"

/* Loss blocks: fixed so that the summation order never depends on threads. */
#define FNN_LOSS_BLOCK 8192

/* ---- element-wise ------------------------------------------------------- */

typedef struct {
    fnn_map_fn map;
    fnn_grad_fn grad;
    float *out;
    const float *a, *b;
    float param;
    int accumulate;
} elementwise_job;

static void map_range(void *ctx, int64_t begin, int64_t end) {
    elementwise_job *j = ctx;
    j->map(j->out + begin, j->a + begin, end - begin, j->param);
}

static void grad_range(void *ctx, int64_t begin, int64_t end) {
    elementwise_job *j = ctx;
    j->grad(j->out + begin, j->a + begin, j->b + begin, end - begin, j->param, j->accumulate);
}

static fnn_status run_map(fnn_map_fn map, float *out, const float *inp, int64_t n, float param) {
    if (n < 0) return FNN_ERR_ARG;
    elementwise_job j = {.map = map, .out = out, .a = inp, .param = param};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, map_range);
    return FNN_OK;
}

static fnn_status run_grad(fnn_grad_fn grad, float *dinp, const float *dout, const float *saved,
                           int64_t n, float param, int accumulate) {
    if (n < 0) return FNN_ERR_ARG;
    elementwise_job j = {.grad = grad, .out = dinp, .a = dout, .b = saved,
                         .param = param, .accumulate = accumulate != 0};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, grad_range);
    return FNN_OK;
}

#define K fnn_active_kernels

fnn_status fnn_relu_forward(float *out, const float *inp, int64_t n) {
    return run_map(K->relu, out, inp, n, 0.0f);
}
fnn_status fnn_relu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                             int accumulate) {
    return run_grad(K->relu_grad, dinp, dout, inp, n, 0.0f, accumulate);
}
fnn_status fnn_leaky_relu_forward(float *out, const float *inp, int64_t n, float negative_slope) {
    return run_map(K->leaky_relu, out, inp, n, negative_slope);
}
fnn_status fnn_leaky_relu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                                   float negative_slope, int accumulate) {
    return run_grad(K->leaky_relu_grad, dinp, dout, inp, n, negative_slope, accumulate);
}
fnn_status fnn_sigmoid_forward(float *out, const float *inp, int64_t n) {
    return run_map(K->sigmoid, out, inp, n, 0.0f);
}
fnn_status fnn_sigmoid_backward(float *dinp, const float *dout, const float *out, int64_t n,
                                int accumulate) {
    return run_grad(K->sigmoid_grad, dinp, dout, out, n, 0.0f, accumulate);
}
fnn_status fnn_tanh_forward(float *out, const float *inp, int64_t n) {
    return run_map(K->tanh, out, inp, n, 0.0f);
}
fnn_status fnn_tanh_backward(float *dinp, const float *dout, const float *out, int64_t n,
                             int accumulate) {
    return run_grad(K->tanh_grad, dinp, dout, out, n, 0.0f, accumulate);
}
fnn_status fnn_gelu_forward(float *out, const float *inp, int64_t n, int approximate_tanh) {
    return run_map(approximate_tanh ? K->gelu_tanh : K->gelu_erf, out, inp, n, 0.0f);
}
fnn_status fnn_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                             int approximate_tanh, int accumulate) {
    return run_grad(approximate_tanh ? K->gelu_tanh_grad : K->gelu_erf_grad, dinp, dout, inp, n,
                    0.0f, accumulate);
}
fnn_status fnn_silu_forward(float *out, const float *inp, int64_t n) {
    return run_map(K->silu, out, inp, n, 0.0f);
}
fnn_status fnn_silu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                             int accumulate) {
    return run_grad(K->silu_grad, dinp, dout, inp, n, 0.0f, accumulate);
}
fnn_status fnn_exp(float *out, const float *inp, int64_t n) {
    return run_map(K->exp, out, inp, n, 0.0f);
}
fnn_status fnn_erf(float *out, const float *inp, int64_t n) {
    return run_map(K->erf, out, inp, n, 0.0f);
}

/* ---- softmax: threads over rows ------------------------------------------ */

typedef struct {
    float *out;
    const float *a, *b;
    int64_t C, D;
    int log, accumulate;
} softmax_job;

static void softmax_range(void *ctx, int64_t begin, int64_t end) {
    softmax_job *j = ctx;
    int64_t off = begin * j->C * j->D;
    K->softmax(j->out + off, j->a + off, end - begin, j->C, j->D, j->log);
}

static void softmax_grad_range(void *ctx, int64_t begin, int64_t end) {
    softmax_job *j = ctx;
    int64_t off = begin * j->C * j->D;
    K->softmax_grad(j->out + off, j->a + off, j->b + off, end - begin, j->C, j->D, j->log,
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
    softmax_job j = {.out = out, .a = inp, .C = C, .D = D, .log = log};
    fnn_parallel_for(B, rows_per_grain(C, D), 1, &j, softmax_range);
    return FNN_OK;
}

static fnn_status run_softmax_grad(float *dinp, const float *dout, const float *out, int64_t B,
                                   int64_t C, int64_t D, int log, int accumulate) {
    if (B < 0 || C < 0 || D < 0) return FNN_ERR_ARG;
    if (C == 0 || D == 0) return FNN_OK;
    softmax_job j = {.out = dinp, .a = dout, .b = out, .C = C, .D = D, .log = log,
                     .accumulate = accumulate != 0};
    fnn_parallel_for(B, rows_per_grain(C, D), 1, &j, softmax_grad_range);
    return FNN_OK;
}

fnn_status fnn_softmax_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t D) {
    return run_softmax(out, inp, B, C, D, 0);
}
fnn_status fnn_softmax_backward(float *dinp, const float *dout, const float *out, int64_t B,
                                int64_t C, int64_t D, int accumulate) {
    return run_softmax_grad(dinp, dout, out, B, C, D, 0, accumulate);
}
fnn_status fnn_log_softmax_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t D) {
    return run_softmax(out, inp, B, C, D, 1);
}
fnn_status fnn_log_softmax_backward(float *dinp, const float *dout, const float *out, int64_t B,
                                    int64_t C, int64_t D, int accumulate) {
    return run_softmax_grad(dinp, dout, out, B, C, D, 1, accumulate);
}

/* ---- losses: fixed blocks, partial sums added in order ------------------- */

typedef struct {
    float *grad;
    const float *a, *b;
    const int64_t *labels;
    int64_t n, row_len, block_rows;
    float smoothing, grad_scale;
    int64_t ignore_index;
    double *partial; /* one per block */
} loss_job;

static void ce_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t r0 = blk * j->block_rows;
        int64_t rows = j->n - r0 < j->block_rows ? j->n - r0 : j->block_rows;
        int64_t off = r0 * j->row_len;
        j->partial[blk] = K->cross_entropy(j->grad + off, j->a + off, j->labels + r0, rows,
                                           j->row_len, j->smoothing, j->ignore_index,
                                           j->grad_scale);
    }
}

static void mse_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t i0 = blk * j->block_rows;
        int64_t n = j->n - i0 < j->block_rows ? j->n - i0 : j->block_rows;
        j->partial[blk] = K->mse(j->grad + i0, j->a + i0, j->b + i0, n, j->grad_scale);
    }
}

static void bce_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t i0 = blk * j->block_rows;
        int64_t n = j->n - i0 < j->block_rows ? j->n - i0 : j->block_rows;
        j->partial[blk] = K->bce_with_logits(j->grad + i0, j->a + i0, j->b + i0, n, j->grad_scale);
    }
}

/* Run body over ceil(n / block_rows) blocks; *loss = (sum of partials) / count. */
static fnn_status run_loss(loss_job *j, fnn_range_body body, int64_t count, float *loss) {
    int64_t nblocks = (j->n + j->block_rows - 1) / j->block_rows;
    double stack[64];
    j->partial = nblocks <= 64 ? stack : malloc((size_t)nblocks * sizeof(double));
    if (!j->partial) return FNN_ERR_NOMEM;
    int64_t work_per_block = j->block_rows * j->row_len;
    int64_t grain = FNN_GRAIN_ELEMENTWISE / (work_per_block > 0 ? work_per_block : 1);
    fnn_parallel_for(nblocks, grain > 0 ? grain : 1, 1, j, body);
    double total = 0.0;
    for (int64_t b = 0; b < nblocks; b++) total += j->partial[b];
    if (j->partial != stack) free(j->partial);
    *loss = (float)(total / (double)count); /* count == 0 gives NaN, as PyTorch */
    return FNN_OK;
}

fnn_status fnn_cross_entropy_forward_backward(float *loss, float *dlogits, const float *logits,
                                              const int64_t *labels, int64_t N, int64_t C,
                                              float label_smoothing, int64_t ignore_index) {
    if (N < 0 || C < 1 || !(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return FNN_ERR_ARG;
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) {
        if (labels[i] == ignore_index) continue;
        if (labels[i] < 0 || labels[i] >= C) return FNN_ERR_LABEL;
        count++;
    }
    loss_job j = {.grad = dlogits, .a = logits, .labels = labels, .n = N, .row_len = C,
                  .block_rows = FNN_LOSS_BLOCK / C > 0 ? FNN_LOSS_BLOCK / C : 1,
                  .smoothing = label_smoothing, .ignore_index = ignore_index,
                  .grad_scale = count > 0 ? 1.0f / (float)count : 0.0f};
    return run_loss(&j, ce_blocks, count, loss);
}

fnn_status fnn_mse_loss_forward_backward(float *loss, float *dpred, const float *pred,
                                         const float *target, int64_t n) {
    if (n < 0) return FNN_ERR_ARG;
    loss_job j = {.grad = dpred, .a = pred, .b = target, .n = n, .row_len = 1,
                  .block_rows = FNN_LOSS_BLOCK, .grad_scale = n > 0 ? 1.0f / (float)n : 0.0f};
    return run_loss(&j, mse_blocks, n, loss);
}

fnn_status fnn_bce_with_logits_forward_backward(float *loss, float *dlogits, const float *logits,
                                                const float *target, int64_t n) {
    if (n < 0) return FNN_ERR_ARG;
    loss_job j = {.grad = dlogits, .a = logits, .b = target, .n = n, .row_len = 1,
                  .block_rows = FNN_LOSS_BLOCK, .grad_scale = n > 0 ? 1.0f / (float)n : 0.0f};
    return run_loss(&j, bce_blocks, n, loss);
}
