/*
 * losses_api.c - the public fused loss + gradient entry points of fastnn.h.
 *
 * Each checks its arguments and cuts the input into fixed blocks of rows;
 * threads take whole blocks (fnn_parallel_for) and the block sums are added in
 * block order, so the loss does not depend on the thread count. The vector
 * loops are in losses.c. Compiled once. Dimension letters: N rows, C classes,
 * n elements.
 */
#include <stdlib.h>

#include "fastnn.h"
#include "kernels.h"

/* Loss blocks: fixed so that the summation order never depends on threads. */
#define FNN_LOSS_BLOCK 8192

/* ---- losses: fixed blocks, partial sums added in order ------------------- */

typedef struct {
    const fnn_loss_kernels *k; /* read once per call */
    float *grad;
    const float *a, *b;
    const int64_t *labels;
    int64_t n, row_len, block_rows;
    float smoothing, grad_scale;
    int64_t ignore_index;
    fnn_pointwise_loss_fn pointwise; /* mse or bce_with_logits */
    double *partial; /* one per block */
} loss_job;

static void ce_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t r0 = blk * j->block_rows;
        int64_t rows = j->n - r0 < j->block_rows ? j->n - r0 : j->block_rows;
        int64_t off = r0 * j->row_len;
        j->partial[blk] = j->k->cross_entropy(
            j->grad + off, j->a + off, j->labels + r0, rows, j->row_len, j->smoothing,
            j->ignore_index, j->grad_scale);
    }
}

static void pointwise_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t i0 = blk * j->block_rows;
        int64_t n = j->n - i0 < j->block_rows ? j->n - i0 : j->block_rows;
        j->partial[blk] = j->pointwise(j->grad + i0, j->a + i0, j->b + i0, n, j->grad_scale);
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
    loss_job j = {.k = fnn_active_losses(), .grad = dlogits, .a = logits, .labels = labels, .n = N, .row_len = C,
                  .block_rows = FNN_LOSS_BLOCK / C > 0 ? FNN_LOSS_BLOCK / C : 1,
                  .smoothing = label_smoothing, .ignore_index = ignore_index,
                  .grad_scale = count > 0 ? 1.0f / (float)count : 0.0f};
    return run_loss(&j, ce_blocks, count, loss);
}

/* an element-wise loss of pred, target (n,) with gradient dpred (n,) */
static fnn_status run_pointwise_loss(fnn_pointwise_loss_fn pointwise, float *loss, float *dpred,
                                     const float *pred, const float *target, int64_t n) {
    if (n < 0) return FNN_ERR_ARG;
    loss_job j = {.grad = dpred, .a = pred, .b = target, .n = n, .row_len = 1,
                  .block_rows = FNN_LOSS_BLOCK, .grad_scale = n > 0 ? 1.0f / (float)n : 0.0f,
                  .pointwise = pointwise};
    return run_loss(&j, pointwise_blocks, n, loss);
}

fnn_status fnn_mse_loss_forward_backward(float *loss, float *dpred, const float *pred,
                                         const float *target, int64_t n) {
    return run_pointwise_loss(fnn_active_losses()->mse, loss, dpred, pred, target, n);
}

fnn_status fnn_bce_with_logits_forward_backward(float *loss, float *dlogits, const float *logits,
                                                const float *target, int64_t n) {
    return run_pointwise_loss(fnn_active_losses()->bce_with_logits, loss, dlogits, logits, target, n);
}
