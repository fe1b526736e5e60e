/*
 * activations_api.c - the public element-wise activation entry points of
 * fastnn.h, and the names of the epilogue activation codes.
 *
 * Each checks its size, splits the n elements over threads with
 * fnn_parallel_for (ranges start on 64-byte multiples, so every element is
 * computed the same way for any thread count) and calls the active ISA's
 * kernel (activations.c, activations_piecewise.c). Compiled once. Every
 * element-wise array is (n,); GLU and PReLU lay out their rows below.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "kernels.h"

/* ---- element-wise ------------------------------------------------------- */

typedef struct {
    fnn_map_forward_fn forward;
    fnn_map_backward_fn backward;
    float *out;
    const float *a, *b;
    fnn_map_params param;
    int accumulate;
} elementwise_job;

static void forward_range(void *ctx, int64_t begin, int64_t end) {
    elementwise_job *j = ctx;
    j->forward(j->out + begin, j->a + begin, end - begin, j->param);
}

static void backward_range(void *ctx, int64_t begin, int64_t end) {
    elementwise_job *j = ctx;
    j->backward(j->out + begin, j->a + begin, j->b + begin, end - begin, j->param, j->accumulate);
}

static fnn_status run_forward(fnn_map_forward_fn forward, float *out, const float *inp, int64_t n,
                              fnn_map_params param) {
    if (n < 0) return FNN_ERR_ARG;
    elementwise_job j = {.forward = forward, .out = out, .a = inp, .param = param};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, forward_range);
    return FNN_OK;
}

static fnn_status run_backward(fnn_map_backward_fn backward, float *dinp, const float *dout, const float *saved,
                               int64_t n, fnn_map_params param, int accumulate) {
    if (n < 0) return FNN_ERR_ARG;
    elementwise_job j = {.backward = backward, .out = dinp, .a = dout, .b = saved,
                         .param = param, .accumulate = accumulate != 0};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, backward_range);
    return FNN_OK;
}

/* the active ISA's activation kernels */
static const fnn_activation_kernels *kernels(void) { return fnn_active_activations(); }
static const fnn_piecewise_kernels *piecewise(void) { return fnn_active_piecewise(); }

/* an op's options (kernels.h): the ones it has, the rest 0 */
static fnn_map_params params(float a, float b, float c) {
    fnn_map_params p = {a, b, c};
    return p;
}
static const fnn_map_params NO_PARAMS = {0.0f, 0.0f, 0.0f};

/* the public pair of an activation without options; `saved` names what its
 * backward takes: the forward input inp or the forward output out (fastnn.h) */
#define FNN_ACTIVATION_ENTRY_POINTS(table, op, saved)                                   \
    fnn_status fnn_##op##_forward(float *out, const float *inp, int64_t n) {             \
        return run_forward(table()->op##_forward, out, inp, n, NO_PARAMS);               \
    }                                                                                    \
    fnn_status fnn_##op##_backward(float *dinp, const float *dout, const float *saved,   \
                                   int64_t n, int accumulate) {                          \
        return run_backward(table()->op##_backward, dinp, dout, saved, n, NO_PARAMS,     \
                            accumulate);                                                 \
    }
FNN_ACTIVATION_ENTRY_POINTS(kernels, relu, inp)
FNN_ACTIVATION_ENTRY_POINTS(kernels, sigmoid, out)
FNN_ACTIVATION_ENTRY_POINTS(kernels, tanh, out)
FNN_ACTIVATION_ENTRY_POINTS(kernels, silu, inp)
FNN_ACTIVATION_ENTRY_POINTS(kernels, mish, inp)
FNN_ACTIVATION_ENTRY_POINTS(kernels, log_sigmoid, inp)
FNN_ACTIVATION_ENTRY_POINTS(kernels, softsign, inp)
FNN_ACTIVATION_ENTRY_POINTS(kernels, tanhshrink, inp)
FNN_ACTIVATION_ENTRY_POINTS(piecewise, hardsigmoid, inp)
FNN_ACTIVATION_ENTRY_POINTS(piecewise, hardswish, inp)

/* the public pair of an activation with options: `args` are its parameters in
 * the prototype, `values` the fnn_map_params built from them */
#define FNN_ACTIVATION_ENTRY_POINTS_WITH(table, op, kernel, bkernel, args, values)       \
    fnn_status fnn_##op##_forward(float *out, const float *inp, int64_t n args) {        \
        return run_forward(table()->kernel, out, inp, n, values);                        \
    }                                                                                    \
    fnn_status fnn_##op##_backward(float *dinp, const float *dout, const float *inp,     \
                                   int64_t n args, int accumulate) {                     \
        return run_backward(table()->bkernel, dinp, dout, inp, n, values, accumulate);   \
    }
#define FNN_ARGS(...) , __VA_ARGS__
FNN_ACTIVATION_ENTRY_POINTS_WITH(kernels, elu, elu_forward, elu_backward,
                                 FNN_ARGS(float alpha), params(alpha, 1.0f, 1.0f))
FNN_ACTIVATION_ENTRY_POINTS_WITH(kernels, selu, elu_forward, elu_backward, ,
                                 params(FNN_SELU_ALPHA * FNN_SELU_SCALE, FNN_SELU_SCALE, 1.0f))
FNN_ACTIVATION_ENTRY_POINTS_WITH(kernels, celu, elu_forward, elu_backward,
                                 FNN_ARGS(float alpha), params(alpha, 1.0f, 1.0f / alpha))
FNN_ACTIVATION_ENTRY_POINTS_WITH(kernels, softplus, softplus_forward, softplus_backward,
                                 FNN_ARGS(float beta, float threshold),
                                 params(beta, threshold, 0.0f))
FNN_ACTIVATION_ENTRY_POINTS_WITH(piecewise, hardtanh, hardtanh_forward, hardtanh_backward,
                                 FNN_ARGS(float min_val, float max_val),
                                 params(min_val, max_val, 0.0f))
FNN_ACTIVATION_ENTRY_POINTS_WITH(piecewise, relu6, hardtanh_forward, hardtanh_backward, ,
                                 params(0.0f, 6.0f, 0.0f))
FNN_ACTIVATION_ENTRY_POINTS_WITH(piecewise, threshold, threshold_forward, threshold_backward,
                                 FNN_ARGS(float threshold, float value),
                                 params(threshold, value, 0.0f))
FNN_ACTIVATION_ENTRY_POINTS_WITH(piecewise, softshrink, softshrink_forward, shrink_backward,
                                 FNN_ARGS(float lambd), params(lambd, 0.0f, 0.0f))
FNN_ACTIVATION_ENTRY_POINTS_WITH(piecewise, hardshrink, hardshrink_forward, shrink_backward,
                                 FNN_ARGS(float lambd), params(lambd, 0.0f, 0.0f))

FNN_ACTIVATION_ENTRY_POINTS_WITH(kernels, leaky_relu, leaky_relu_forward, leaky_relu_backward,
                                 FNN_ARGS(float negative_slope), params(negative_slope, 0.0f, 0.0f))
fnn_status fnn_gelu_forward(float *out, const float *inp, int64_t n, int approximate_tanh) {
    return run_forward(approximate_tanh ? kernels()->gelu_tanh_forward : kernels()->gelu_erf_forward,
                       out, inp, n, NO_PARAMS);
}
fnn_status fnn_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                             int approximate_tanh, int accumulate) {
    return run_backward(approximate_tanh ? kernels()->gelu_tanh_backward
                                         : kernels()->gelu_erf_backward,
                        dinp, dout, inp, n, NO_PARAMS, accumulate);
}
fnn_status fnn_exp(float *out, const float *inp, int64_t n) {
    return run_forward(kernels()->exp, out, inp, n, NO_PARAMS);
}
fnn_status fnn_expm1(float *out, const float *inp, int64_t n) {
    return run_forward(kernels()->expm1, out, inp, n, NO_PARAMS);
}
fnn_status fnn_log(float *out, const float *inp, int64_t n) {
    return run_forward(kernels()->log, out, inp, n, NO_PARAMS);
}
fnn_status fnn_erf(float *out, const float *inp, int64_t n) {
    return run_forward(kernels()->erf, out, inp, n, NO_PARAMS);
}


/* ---- glu: inp (outer, 2*half, inner) -> out (outer, half, inner) --------
 * The output's flat index k = o*m + j (m = half*inner) pairs a = inp[o*2m + j]
 * with b = a's element m further on; threads take ranges of k, cut into
 * segments that stay inside one o. */

typedef struct {
    const fnn_activation_kernels *k;
    float *out;         /* forward: out (outer, half, inner); backward: dinp (outer, 2*half, inner) */
    const float *dout;  /* backward: (outer, half, inner) */
    const float *inp;   /* (outer, 2*half, inner) */
    int64_t m;          /* half * inner */
    int accumulate;
} glu_job;

static void glu_range(void *ctx, int64_t begin, int64_t end, int backward) {
    glu_job *j = ctx;
    for (int64_t k = begin; k < end;) {
        int64_t o = k / j->m, at = k % j->m;
        int64_t len = j->m - at < end - k ? j->m - at : end - k;
        const float *a = j->inp + o * 2 * j->m + at;
        if (backward) {
            float *da = j->out + o * 2 * j->m + at;
            j->k->glu_backward(da, da + j->m, j->dout + k, a, a + j->m, len, j->accumulate);
        } else {
            j->k->glu_forward(j->out + k, a, a + j->m, len);
        }
        k += len;
    }
}
static void glu_forward_range(void *ctx, int64_t begin, int64_t end) { glu_range(ctx, begin, end, 0); }
static void glu_backward_range(void *ctx, int64_t begin, int64_t end) { glu_range(ctx, begin, end, 1); }

static fnn_status run_glu(float *out, const float *dout, const float *inp, int64_t outer,
                          int64_t half, int64_t inner, int accumulate, fnn_range_body body) {
    if (outer < 0 || half < 0 || inner < 0) return FNN_ERR_ARG;
    glu_job j = {.k = kernels(), .out = out, .dout = dout, .inp = inp, .m = half * inner,
                 .accumulate = accumulate != 0};
    if (j.m > 0) fnn_parallel_for(outer * j.m, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, body);
    return FNN_OK;
}

fnn_status fnn_glu_forward(float *out, const float *inp, int64_t outer, int64_t half,
                           int64_t inner) {
    return run_glu(out, NULL, inp, outer, half, inner, 0, glu_forward_range);
}
fnn_status fnn_glu_backward(float *dinp, const float *dout, const float *inp, int64_t outer,
                            int64_t half, int64_t inner, int accumulate) {
    return run_glu(dinp, dout, inp, outer, half, inner, accumulate, glu_backward_range);
}

/* ---- prelu: inp (outer, C, inner), weight (C,) ----------------------------
 * Forward and d inp are leaky_relu with slope weight[c] on each row (o, c) of
 * inner floats, over ranges of the flat index cut at rows. d weight: each row
 * is cut into blocks of FNN_PRELU_BLOCK; every block's sum goes to its own
 * slot, and weight c's slots are then added in (o, block) order: the bits do
 * not depend on the threads.
 * inner = 1 (a (N, C) input, a channel per column) runs a row at a time with the
 * weight as a vector (the per-row path would make one call per element). Its
 * d weight cuts the (outer, C) array into row blocks and column chunks, both
 * sized by outer and C alone; a task sums its chunk's rows in row order, in
 * float over FNN_PRELU_ROW_GROUP rows and then in double, into its block's
 * slot, and each channel's slots are added in block order. The slots (row
 * blocks, C) stay under FNN_PRELU_SLOT_BUDGET doubles for C up to that: a
 * larger scratch costs more in page faults than the sums do. */
#define FNN_PRELU_BLOCK 4096
#define FNN_PRELU_MAX_ROW_BLOCKS 64
#define FNN_PRELU_SLOT_BUDGET 8192
#define FNN_PRELU_CHUNK 1024
#define FNN_PRELU_ROW_GROUP 64

typedef struct {
    const fnn_activation_kernels *k;
    float *out;          /* forward: out; backward: dinp; both (outer, C, inner) */
    const float *dout;   /* backward: (outer, C, inner) */
    const float *inp;    /* (outer, C, inner) */
    const float *weight; /* (C,) */
    int64_t C, inner, blocks_per_row;
    double *partial;     /* (outer * C * blocks_per_row,) */
    double *slots;       /* inner = 1: (row blocks, C), or NULL for no d weight */
    int64_t outer, rows_per_block, chunks;
    int accumulate;
} prelu_job;

static void prelu_range(void *ctx, int64_t begin, int64_t end, int backward) {
    prelu_job *j = ctx;
    for (int64_t k = begin; k < end;) {
        int64_t row = k / j->inner, at = k % j->inner;
        int64_t len = j->inner - at < end - k ? j->inner - at : end - k;
        fnn_map_params slope = params(j->weight[row % j->C], 0.0f, 0.0f);
        if (backward)
            j->k->leaky_relu_backward(j->out + k, j->dout + k, j->inp + k, len, slope,
                                      j->accumulate);
        else
            j->k->leaky_relu_forward(j->out + k, j->inp + k, len, slope);
        k += len;
    }
}
static void prelu_forward_range(void *ctx, int64_t begin, int64_t end) { prelu_range(ctx, begin, end, 0); }
static void prelu_backward_range(void *ctx, int64_t begin, int64_t end) { prelu_range(ctx, begin, end, 1); }

static void prelu_weight_blocks(void *ctx, int64_t begin, int64_t end) {
    prelu_job *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        int64_t row = t / j->blocks_per_row, b = t % j->blocks_per_row;
        int64_t start = row * j->inner + b * FNN_PRELU_BLOCK;
        int64_t len = j->inner - b * FNN_PRELU_BLOCK;
        if (len > FNN_PRELU_BLOCK) len = FNN_PRELU_BLOCK;
        j->partial[t] = j->k->prelu_weight_grad(j->dout + start, j->inp + start, len);
    }
}

/* inner = 1: rows [begin, end) of (outer, C) */
static void prelu_channel_rows_forward(void *ctx, int64_t begin, int64_t end) {
    prelu_job *j = ctx;
    for (int64_t o = begin; o < end; o++)
        j->k->prelu_channels_forward(j->out + o * j->C, j->inp + o * j->C, j->weight, j->C);
}
/* inner = 1: tasks [begin, end) of (row block, column chunk): d inp and the
 * chunk of the block's d weight slot */
static void prelu_channel_tasks_backward(void *ctx, int64_t begin, int64_t end) {
    prelu_job *j = ctx;
    float group[FNN_PRELU_CHUNK];
    for (int64_t t = begin; t < end; t++) {
        int64_t b = t / j->chunks, c0 = t % j->chunks * FNN_PRELU_CHUNK;
        int64_t len = j->C - c0 < FNN_PRELU_CHUNK ? j->C - c0 : FNN_PRELU_CHUNK;
        int64_t first = b * j->rows_per_block, last = first + j->rows_per_block;
        if (last > j->outer) last = j->outer;
        double *slot = j->slots ? j->slots + b * j->C + c0 : NULL;
        for (int64_t o = first; o < last; o += FNN_PRELU_ROW_GROUP) {
            int64_t stop = o + FNN_PRELU_ROW_GROUP < last ? o + FNN_PRELU_ROW_GROUP : last;
            if (slot) memset(group, 0, (size_t)len * sizeof(float));
            for (int64_t r = o; r < stop; r++) {
                int64_t at = r * j->C + c0;
                j->k->prelu_channels_backward(j->out ? j->out + at : NULL, slot ? group : NULL,
                                              j->dout + at, j->inp + at, j->weight + c0, len,
                                              j->accumulate);
            }
            if (slot)
                for (int64_t c = 0; c < len; c++) slot[c] += group[c];
        }
    }
}

static fnn_status run_prelu_channels_backward(prelu_job *j, float *dweight) {
    int64_t max_blocks = FNN_PRELU_SLOT_BUDGET / j->C;
    if (max_blocks > FNN_PRELU_MAX_ROW_BLOCKS) max_blocks = FNN_PRELU_MAX_ROW_BLOCKS;
    if (max_blocks < 1) max_blocks = 1;
    int64_t rows = (FNN_PRELU_BLOCK + j->C - 1) / j->C;
    int64_t fewest = (j->outer + max_blocks - 1) / max_blocks;
    j->rows_per_block = rows > fewest ? rows : fewest;
    j->chunks = (j->C + FNN_PRELU_CHUNK - 1) / FNN_PRELU_CHUNK;
    int64_t nblocks = (j->outer + j->rows_per_block - 1) / j->rows_per_block;
    if (dweight) {
        j->slots = calloc((size_t)(nblocks * j->C), sizeof(double));
        if (!j->slots) return FNN_ERR_NOMEM;
    }
    int64_t task_len = j->rows_per_block * (j->C < FNN_PRELU_CHUNK ? j->C : FNN_PRELU_CHUNK);
    fnn_parallel_for(nblocks * j->chunks, FNN_GRAIN_ELEMENTWISE / task_len + 1, 1, j,
                     prelu_channel_tasks_backward);
    if (dweight) { /* each channel's slots in block order, a block row at a time */
        for (int64_t b = 1; b < nblocks; b++)
            for (int64_t c = 0; c < j->C; c++) j->slots[c] += j->slots[b * j->C + c];
        for (int64_t c = 0; c < j->C; c++) dweight[c] += (float)j->slots[c];
        free(j->slots);
    }
    return FNN_OK;
}

fnn_status fnn_prelu_forward(float *out, const float *inp, const float *weight, int64_t outer,
                             int64_t C, int64_t inner) {
    if (outer < 0 || C < 1 || inner < 0) return FNN_ERR_ARG;
    prelu_job j = {.k = kernels(), .out = out, .inp = inp, .weight = weight, .C = C,
                   .inner = inner};
    if (inner == 1)
        fnn_parallel_for(outer, FNN_GRAIN_ELEMENTWISE / C + 1, 1, &j, prelu_channel_rows_forward);
    else if (inner > 0)
        fnn_parallel_for(outer * C * inner, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j,
                         prelu_forward_range);
    return FNN_OK;
}

fnn_status fnn_prelu_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, int64_t outer, int64_t C, int64_t inner,
                              int accumulate) {
    if (outer < 0 || C < 1 || inner < 0) return FNN_ERR_ARG;
    prelu_job j = {.k = kernels(), .out = dinp, .dout = dout, .inp = inp, .weight = weight,
                   .C = C, .inner = inner, .accumulate = accumulate != 0,
                   .blocks_per_row = (inner + FNN_PRELU_BLOCK - 1) / FNN_PRELU_BLOCK,
                   .outer = outer};
    if (inner == 1) return (dinp || dweight) && outer ? run_prelu_channels_backward(&j, dweight)
                                                      : FNN_OK;
    if (dinp && inner > 0)
        fnn_parallel_for(outer * C * inner, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j,
                         prelu_backward_range);
    if (!dweight || inner == 0) return FNN_OK;
    int64_t nblocks = outer * C * j.blocks_per_row;
    double stack[64];
    j.partial = nblocks <= 64 ? stack : malloc((size_t)nblocks * sizeof(double));
    if (!j.partial) return FNN_ERR_NOMEM;
    int64_t block_len = inner < FNN_PRELU_BLOCK ? inner : FNN_PRELU_BLOCK;
    fnn_parallel_for(nblocks, FNN_GRAIN_ELEMENTWISE / block_len + 1, 1, &j, prelu_weight_blocks);
    for (int64_t c = 0; c < C; c++) {
        double total = 0.0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t b = 0; b < j.blocks_per_row; b++)
                total += j.partial[(o * C + c) * j.blocks_per_row + b];
        dweight[c] += (float)total;
    }
    if (j.partial != stack) free(j.partial);
    return FNN_OK;
}


/* ---- the epilogue activation codes' names: the one list Python reads --- */

static const char *const activation_names[FNN_ACT_COUNT] = {
    [FNN_ACT_NONE] = "none",
    [FNN_ACT_RELU] = "relu",
    [FNN_ACT_GELU] = "gelu",
    [FNN_ACT_SIGMOID] = "sigmoid",
    [FNN_ACT_TANH] = "tanh",
    [FNN_ACT_GELU_TANH] = "gelu_tanh",
    [FNN_ACT_SILU] = "silu",
    [FNN_ACT_MISH] = "mish",
    [FNN_ACT_HARDSWISH] = "hardswish",
    [FNN_ACT_ELU] = "elu",
    [FNN_ACT_SELU] = "selu",
};

const char *fnn_activation_name(int act) {
    return act >= 0 && act < FNN_ACT_COUNT ? activation_names[act] : NULL;
}
