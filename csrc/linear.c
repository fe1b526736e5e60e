/*
 * linear.c - the vector loops of a Linear layer that are not a GEMM: the bias
 * gradient (column sums of dout).
 *
 * Compiled once per ISA (see simd.h). linear_api.c splits the N columns over
 * threads; each column is summed over the M rows in row order, so the result
 * does not depend on the thread count. Dimension letters: M rows (the batch,
 * all leading axes), N columns (out_features); ld is dout's row stride.
 * The file ends with this ISA's fnn_linear_kernels (kernels.h).
 */
#include "simd.h"
#include "kernels.h"

/* forward: out (M, N) = inp @ weight.T + bias (N,)   ->   dbias (N,) (+)= sum over M of dout (M, N) */
static void FNN_K(bias_backward)(float *dbias, const float *dout, int64_t M, int64_t N,
                                 int64_t ld, int accumulate) {
    for (int64_t j = 0; j < N; j += FNN_VW) {
        int64_t w = vf_lanes(N - j);
        vf s = accumulate ? vf_loadn_or(dbias + j, w, 0.0f) : vf_zero();
        for (int64_t r = 0; r < M; r++) s = vf_add(s, vf_loadn_or(dout + r * ld + j, w, 0.0f));
        vf_store_w(dbias + j, s, w);
    }
}

const fnn_linear_kernels FNN_K(fnn_linear_kernels) = {
    .bias_backward = FNN_K(bias_backward),
};
