/*
 * losses_api.c - the public fused loss + gradient entry points of fastnn.h.
 *
 * Each checks its arguments, works out the mean's divisor and cuts the input
 * into fixed blocks of rows; threads take whole blocks (fnn_parallel_for) and
 * the block sums are added in block order, so the loss does not depend on the
 * thread count. The vector loops are in losses.c. Compiled once. Dimension
 * letters: N rows, C classes, D features, n elements.
 */
#include <math.h>
#include <stdlib.h>

#include "fastnn.h"
#include "kernels.h"

/* Loss blocks: fixed so that the summation order never depends on threads. */
#define FNN_LOSS_BLOCK 8192

/* ---- losses: fixed blocks, partial sums added in order ------------------- */

typedef struct {
    const fnn_loss_kernels *k; /* read once per call */
    fnn_pointwise_loss kind;
    float *losses, *grad, *grad2;
    const float *a, *b, *c; /* the inputs, in the order of the kernel's arguments */
    const int64_t *labels;
    const float *weight;
    const fnn_loss_options *options;
    int64_t n, row_len, block_rows;
    float smoothing, param, grad_scale;
    int64_t ignore_index;
    int full;
    double *partial; /* one per block */
} loss_job;

/* the rows [r0, r0 + rows) of block blk */
#define BLOCK_ROWS(j, blk, r0, rows)                                                       \
    int64_t r0 = (blk) * (j)->block_rows;                                                  \
    int64_t rows = (j)->n - r0 < (j)->block_rows ? (j)->n - r0 : (j)->block_rows
#define AT(p, off) ((p) ? (p) + (off) : NULL)

static void ce_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        BLOCK_ROWS(j, blk, r0, rows);
        int64_t off = r0 * j->row_len;
        j->partial[blk] = j->k->cross_entropy(AT(j->losses, r0), j->grad + off, j->a + off,
                                              j->labels + r0, j->weight, rows, j->row_len,
                                              j->smoothing, j->ignore_index, j->grad_scale);
    }
}

static void ce_probs_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        BLOCK_ROWS(j, blk, r0, rows);
        int64_t off = r0 * j->row_len;
        j->partial[blk] = j->k->cross_entropy_probs(AT(j->losses, r0), j->grad + off, j->a + off,
                                                    j->b + off, j->weight, rows, j->row_len,
                                                    j->smoothing, j->grad_scale);
    }
}

static void nll_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        BLOCK_ROWS(j, blk, r0, rows);
        int64_t off = r0 * j->row_len;
        j->partial[blk] = j->k->nll(AT(j->losses, r0), j->grad + off, j->a + off, j->labels + r0,
                                    j->weight, rows, j->row_len, j->ignore_index, j->grad_scale);
    }
}

static void cosine_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        BLOCK_ROWS(j, blk, r0, rows);
        int64_t off = r0 * j->row_len;
        j->partial[blk] = j->k->cosine_embedding(AT(j->losses, r0), j->grad + off,
                                                 j->grad2 + off, j->a + off, j->b + off,
                                                 j->c + r0, rows, j->row_len, j->param,
                                                 j->grad_scale);
    }
}

static void gaussian_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        BLOCK_ROWS(j, blk, i0, n);
        j->partial[blk] = j->k->gaussian_nll(AT(j->losses, i0), j->grad + i0, j->grad2 + i0,
                                             j->a + i0, j->b + i0, j->c + i0, n, j->param,
                                             j->full, j->grad_scale);
    }
}

static void pointwise_blocks(void *ctx, int64_t begin, int64_t end) {
    loss_job *j = ctx;
    const fnn_loss_options *o = j->options;
    for (int64_t blk = begin; blk < end; blk++) {
        BLOCK_ROWS(j, blk, i0, n);
        fnn_loss_options block = {.weight = AT(o->weight, i0), .pos_weight = AT(o->pos_weight, i0),
                                  .param = o->param, .log_space = o->log_space, .full = o->full};
        j->partial[blk] = j->k->pointwise[j->kind](AT(j->losses, i0), j->grad + i0, j->a + i0,
                                                   j->b + i0, n, &block, j->grad_scale);
    }
}

static int valid_reduction(fnn_reduction r) {
    return r == FNN_REDUCTION_NONE || r == FNN_REDUCTION_MEAN || r == FNN_REDUCTION_SUM;
}

/* Run body over ceil(n / block_rows) blocks with the gradient scale of the
 * reduction (1 / divisor for the mean); *loss = sum of partials (/ divisor). */
static fnn_status run_loss(loss_job *j, fnn_range_body body, fnn_reduction reduction,
                           double divisor, float *loss) {
    int mean = reduction == FNN_REDUCTION_MEAN;
    /* a class weight may be negative, and so the divisor; an empty mean's gradient is 0 */
    j->grad_scale = !mean ? 1.0f : divisor != 0.0 ? (float)(1.0 / divisor) : 0.0f;
    if (reduction != FNN_REDUCTION_NONE) j->losses = NULL;
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
    *loss = (float)(mean ? total / divisor : total); /* an empty mean is NaN, as PyTorch */
    return FNN_OK;
}

static int64_t rows_per_block(int64_t row_len) {
    return FNN_LOSS_BLOCK / row_len > 0 ? FNN_LOSS_BLOCK / row_len : 1;
}

/* Validate labels (N,) against C classes; *weight_total = the summed weight
 * (count without weight) of the rows not ignored. */
static fnn_status check_labels(const int64_t *labels, const float *weight, int64_t N, int64_t C,
                               int64_t ignore_index, double *weight_total) {
    double total = 0.0;
    for (int64_t i = 0; i < N; i++) {
        if (labels[i] == ignore_index) continue;
        if (labels[i] < 0 || labels[i] >= C) return FNN_ERR_LABEL;
        total += weight ? (double)weight[labels[i]] : 1.0;
    }
    *weight_total = total;
    return FNN_OK;
}

static int valid_smoothing(float s) { return s >= 0.0f && s <= 1.0f; }

fnn_status fnn_cross_entropy_forward_backward(float *loss, float *losses, float *dlogits,
                                              const float *logits, const int64_t *labels,
                                              const float *weight, int64_t N, int64_t C,
                                              float label_smoothing, int64_t ignore_index,
                                              fnn_reduction reduction) {
    if (N < 0 || C < 1 || !valid_smoothing(label_smoothing) || !valid_reduction(reduction))
        return FNN_ERR_ARG;
    double weight_total;
    fnn_status st = check_labels(labels, weight, N, C, ignore_index, &weight_total);
    if (st != FNN_OK) return st;
    loss_job j = {.k = fnn_active_losses(), .losses = losses, .grad = dlogits, .a = logits,
                  .labels = labels, .weight = weight, .n = N, .row_len = C,
                  .block_rows = rows_per_block(C), .smoothing = label_smoothing,
                  .ignore_index = ignore_index};
    return run_loss(&j, ce_blocks, reduction, weight_total, loss);
}

fnn_status fnn_cross_entropy_probs_forward_backward(float *loss, float *losses, float *dlogits,
                                                    const float *logits, const float *target,
                                                    const float *weight, int64_t N, int64_t C,
                                                    float label_smoothing,
                                                    fnn_reduction reduction) {
    if (N < 0 || C < 1 || !valid_smoothing(label_smoothing) || !valid_reduction(reduction))
        return FNN_ERR_ARG;
    loss_job j = {.k = fnn_active_losses(), .losses = losses, .grad = dlogits, .a = logits,
                  .b = target, .weight = weight, .n = N, .row_len = C,
                  .block_rows = rows_per_block(C), .smoothing = label_smoothing};
    return run_loss(&j, ce_probs_blocks, reduction, (double)N, loss);
}

fnn_status fnn_nll_loss_forward_backward(float *loss, float *losses, float *dlogp,
                                         const float *logp, const int64_t *labels,
                                         const float *weight, int64_t N, int64_t C,
                                         int64_t ignore_index, fnn_reduction reduction) {
    if (N < 0 || C < 1 || !valid_reduction(reduction)) return FNN_ERR_ARG;
    double weight_total;
    fnn_status st = check_labels(labels, weight, N, C, ignore_index, &weight_total);
    if (st != FNN_OK) return st;
    loss_job j = {.k = fnn_active_losses(), .losses = losses, .grad = dlogp, .a = logp,
                  .labels = labels, .weight = weight, .n = N, .row_len = C,
                  .block_rows = rows_per_block(C), .ignore_index = ignore_index};
    return run_loss(&j, nll_blocks, reduction, weight_total, loss);
}

fnn_status fnn_cosine_embedding_loss_forward_backward(float *loss, float *losses, float *dx1,
                                                      float *dx2, const float *x1,
                                                      const float *x2, const float *y,
                                                      int64_t N, int64_t D, float margin,
                                                      fnn_reduction reduction) {
    if (N < 0 || D < 0 || !isfinite(margin) || !valid_reduction(reduction)) return FNN_ERR_ARG;
    loss_job j = {.k = fnn_active_losses(), .losses = losses, .grad = dx1, .grad2 = dx2,
                  .a = x1, .b = x2, .c = y, .n = N, .row_len = D,
                  .block_rows = rows_per_block(D > 0 ? D : 1), .param = margin};
    return run_loss(&j, cosine_blocks, reduction, (double)N, loss);
}

fnn_status fnn_gaussian_nll_loss_forward_backward(float *loss, float *losses, float *dinput,
                                                  float *dvar, const float *input,
                                                  const float *target, const float *var,
                                                  int64_t n, float eps, int full,
                                                  fnn_reduction reduction) {
    if (n < 0 || !(eps > 0.0f) || !isfinite(eps) || !valid_reduction(reduction))
        return FNN_ERR_ARG;
    loss_job j = {.k = fnn_active_losses(), .losses = losses, .grad = dinput, .grad2 = dvar,
                  .a = input, .b = target, .c = var, .n = n, .row_len = 1,
                  .block_rows = FNN_LOSS_BLOCK, .param = eps, .full = full};
    return run_loss(&j, gaussian_blocks, reduction, (double)n, loss);
}

fnn_status fnn_pointwise_loss_forward_backward(fnn_pointwise_loss kind, float *loss,
                                               float *losses, float *dpred, const float *pred,
                                               const float *target, int64_t n,
                                               const fnn_loss_options *options,
                                               fnn_reduction reduction, double divisor) {
    if (n < 0 || (int)kind < 0 || kind >= FNN_POINTWISE_LOSS_COUNT || !options ||
        !valid_reduction(reduction) || !(divisor >= 0.0) || !isfinite(options->param))
        return FNN_ERR_ARG;
    loss_job j = {.k = fnn_active_losses(), .kind = kind, .losses = losses, .grad = dpred,
                  .a = pred, .b = target, .options = options, .n = n, .row_len = 1,
                  .block_rows = FNN_LOSS_BLOCK};
    return run_loss(&j, pointwise_blocks, reduction, divisor, loss);
}
