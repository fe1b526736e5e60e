/*
 * linear_api.c - the public Linear entry points of fastnn.h: forward as one
 * GEMM with the bias, the pre-activation store and the activation fused in
 * its epilogue; backward as the activation's backward, then the weight-,
 * bias- and input-gradient products, in one call.
 *
 * Compiled once. The GEMMs split over threads by output tiles (gemm/), the
 * activation backward by element ranges and the bias gradient by columns, so
 * every result is the same for any thread count.
 * Dimension letters: M rows, IN in_features, OUT out_features.
 */
#include <stdlib.h>

#include "fastnn.h"
#include "kernels.h"

/* a leading dimension: at least 1, as BLAS wants even for empty matrices */
static int64_t ld_of(int64_t cols) { return cols > 0 ? cols : 1; }

/* out, preact (M, OUT) = act(inp (M, IN) @ weight (OUT, IN)^T + bias (OUT,)) */
fnn_status fnn_linear_forward(float *out, float *preact, const float *inp, const float *weight,
                              const float *bias, int64_t M, int64_t IN, int64_t OUT,
                              fnn_activation act) {
    if (M < 0 || IN < 0 || OUT < 0) return FNN_ERR_ARG;
    fnn_bias_mode mode = bias && OUT > 0 ? FNN_BIAS_COL : FNN_BIAS_NONE;
    return fnn_sgemm_preact(0, 1, M, OUT, IN, 1.0f, inp, ld_of(IN), weight, ld_of(IN), 0.0f, out,
                            ld_of(OUT), bias, mode, act, preact, ld_of(OUT));
}

/* g (n,) = dout (n,) * act'(.) given saved (n,): the forward output (relu,
 * sigmoid, tanh) or pre-activation (gelu, gelu_tanh, silu, mish, hardswish, elu,
 * selu) */
static fnn_status activation_backward(float *g, const float *dout, const float *saved, int64_t n,
                                      fnn_activation act) {
    switch (act) {
    case FNN_ACT_RELU: return fnn_relu_backward(g, dout, saved, n, 0); /* out > 0 iff preact > 0 */
    case FNN_ACT_SIGMOID: return fnn_sigmoid_backward(g, dout, saved, n, 0);
    case FNN_ACT_TANH: return fnn_tanh_backward(g, dout, saved, n, 0);
    case FNN_ACT_GELU: return fnn_gelu_backward(g, dout, saved, n, 0, 0);
    case FNN_ACT_GELU_TANH: return fnn_gelu_backward(g, dout, saved, n, 1, 0);
    case FNN_ACT_SILU: return fnn_silu_backward(g, dout, saved, n, 0);
    case FNN_ACT_MISH: return fnn_mish_backward(g, dout, saved, n, 0);
    case FNN_ACT_HARDSWISH: return fnn_hardswish_backward(g, dout, saved, n, 0);
    case FNN_ACT_ELU: return fnn_elu_backward(g, dout, saved, n, 1.0f, 0);
    case FNN_ACT_SELU: return fnn_selu_backward(g, dout, saved, n, 0);
    default: return FNN_ERR_ARG;
    }
}

/* forward: out = act(inp @ weight^T + bias); dinp (M, IN), dweight (OUT, IN), dbias (OUT,),
 * dout and saved (M, OUT), inp (M, IN), weight (OUT, IN) */
fnn_status fnn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *saved, const float *inp, const float *weight,
                               int64_t M, int64_t IN, int64_t OUT, fnn_activation act,
                               int accumulate) {
    if (M < 0 || IN < 0 || OUT < 0 || act < FNN_ACT_NONE || act >= FNN_ACT_COUNT)
        return FNN_ERR_ARG;
    const int64_t n = M * OUT;
    if (act != FNN_ACT_NONE && n > 0 && !saved) return FNN_ERR_ARG;
    const float *g = dout;
    float *scratch = NULL;
    fnn_status st = FNN_OK;
    if (act != FNN_ACT_NONE && n > 0) {
        scratch = malloc((size_t)n * sizeof(float));
        if (!scratch) return FNN_ERR_NOMEM;
        st = activation_backward(scratch, dout, saved, n, act);
        g = scratch;
    }
    /* dweight (OUT, IN) += g^T (OUT, M) @ inp (M, IN) */
    if (dweight && st == FNN_OK)
        st = fnn_sgemm_ex(1, 0, OUT, IN, M, 1.0f, g, ld_of(OUT), inp, ld_of(IN), 1.0f, dweight,
                          ld_of(IN), NULL, FNN_BIAS_NONE, FNN_ACT_NONE);
    if (dbias && st == FNN_OK) st = fnn_linear_bias_backward(dbias, g, M, OUT, ld_of(OUT), 1);
    /* dinp (M, IN) (+)= g (M, OUT) @ weight (OUT, IN) */
    if (dinp && st == FNN_OK)
        st = fnn_sgemm_ex(0, 0, M, IN, OUT, 1.0f, g, ld_of(OUT), weight, ld_of(IN),
                          accumulate ? 1.0f : 0.0f, dinp, ld_of(IN), NULL, FNN_BIAS_NONE,
                          FNN_ACT_NONE);
    free(scratch);
    return st;
}

typedef struct {
    const fnn_linear_kernels *k; /* read once per call */
    float *dbias;
    const float *dout;
    int64_t M, ld;
    int accumulate;
} bias_job;

static void bias_columns(void *ctx, int64_t begin, int64_t end) {
    bias_job *j = ctx;
    j->k->bias_backward(j->dbias + begin, j->dout + begin, j->M, end - begin, j->ld, j->accumulate);
}

/* forward: out (M, N) = ... + bias (N,); dbias (N,) (+)= sum over M of dout (M, N) */
fnn_status fnn_linear_bias_backward(float *dbias, const float *dout, int64_t M, int64_t N,
                                    int64_t ld, int accumulate) {
    if (M < 0 || N < 0 || (M > 0 && N > 0 && (!dout || ld < N)) || (N > 0 && !dbias))
        return FNN_ERR_ARG;
    bias_job j = {.k = fnn_active_linear(), .dbias = dbias, .dout = dout, .M = M, .ld = ld, .accumulate = accumulate != 0};
    int64_t grain = M > 0 ? FNN_GRAIN_ELEMENTWISE / M : N;
    fnn_parallel_for(N, grain > FNN_ALIGN_FLOATS ? grain : FNN_ALIGN_FLOATS, FNN_ALIGN_FLOATS, &j,
                     bias_columns);
    return FNN_OK;
}
