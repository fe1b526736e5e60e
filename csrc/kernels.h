/*
 * kernels.h - the per-ISA kernel table (internal).
 *
 * activations.c, softmax.c and losses.c hold single-threaded kernels over a
 * contiguous range. setup.py compiles each of them once per ISA; table.c
 * (also compiled per ISA) gathers that ISA's kernels into an fnn_kernels.
 * api.c owns the public entry points: it validates sizes, splits the work
 * over threads and calls through the active table (dispatch.c).
 */
#ifndef FNN_KERNELS_H
#define FNN_KERNELS_H

#include <stdint.h>

#include "gemm/gemm.h"

/* out (n,) = f(inp (n,)); param is the op's scalar option (slope), else 0 */
typedef void (*fnn_map_fn)(float *out, const float *inp, int64_t n, float param);
/* dinp (n,) (+)= dout (n,) * f'(saved (n,)); saved is the forward input or output */
typedef void (*fnn_grad_fn)(float *dinp, const float *dout, const float *saved,
                            int64_t n, float param, int accumulate);
/* softmax / log_softmax along C of inp (rows, C, D) */
typedef void (*fnn_softmax_fn)(float *out, const float *inp, int64_t rows, int64_t C,
                               int64_t D, int log);
/* dinp (rows, C, D) (+)= backward of softmax / log_softmax given out and dout */
typedef void (*fnn_softmax_grad_fn)(float *dinp, const float *dout, const float *out,
                                    int64_t rows, int64_t C, int64_t D, int log,
                                    int accumulate);
/* cross entropy of `rows` rows of logits (rows, C): returns the summed loss of
 * the rows not ignored and writes dlogits (rows, C) scaled by grad_scale.
 * Labels must already be validated. */
typedef double (*fnn_ce_fn)(float *dlogits, const float *logits, const int64_t *labels,
                            int64_t rows, int64_t C, float label_smoothing,
                            int64_t ignore_index, float grad_scale);
/* element-wise loss over (n,): returns the summed loss, writes dpred (n,) scaled */
typedef double (*fnn_pointwise_loss_fn)(float *dpred, const float *pred, const float *target,
                                        int64_t n, float grad_scale);

typedef struct {
    fnn_map_fn relu, leaky_relu, sigmoid, tanh, gelu_erf, gelu_tanh, silu, exp, erf;
    fnn_grad_fn relu_grad, leaky_relu_grad, sigmoid_grad, tanh_grad, gelu_erf_grad,
        gelu_tanh_grad, silu_grad;
    fnn_softmax_fn softmax;
    fnn_softmax_grad_fn softmax_grad;
    fnn_ce_fn cross_entropy;
    fnn_pointwise_loss_fn mse, bce_with_logits;
    fnn_gemm_ukernel_fn gemm_ukernel;
    fnn_gemm_ukernel_direct_fn gemm_ukernel_direct;
    fnn_gemm_pack_fn gemm_pack;
    const fnn_gemm_blocking *gemm_blocking;
    fnn_colsum_fn colsum;
    float (*fma_probe)(int64_t iters); /* 32 * FNN_VW * iters flops on one core */
} fnn_kernels;

extern const fnn_kernels fnn_kernels_generic;
#ifdef FNN_BUILD_AVX2
extern const fnn_kernels fnn_kernels_avx2;
#endif
#ifdef FNN_BUILD_AVX512
extern const fnn_kernels fnn_kernels_avx512;
#endif

/* the table fnn_init() chose; starts as generic so nothing runs uninitialised */
extern const fnn_kernels *fnn_active_kernels;

/* Run body(ctx, begin, end) over [0, n) on up to fnn_get_num_threads()
 * threads, each taking one contiguous range whose start is a multiple of
 * `align` elements. Uses one thread when n < 2 * grain. (threads.c) */
typedef void (*fnn_range_body)(void *ctx, int64_t begin, int64_t end);
void fnn_parallel_for(int64_t n, int64_t grain, int64_t align, void *ctx, fnn_range_body body);

#endif /* FNN_KERNELS_H */
