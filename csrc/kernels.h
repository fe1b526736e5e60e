/*
 * kernels.h - the per-ISA kernel table (internal).
 *
 * activations.c, softmax.c, losses.c and optim.c hold single-threaded
 * kernels over a contiguous range. setup.py compiles each of them once per ISA; table.c
 * (also compiled per ISA) gathers that ISA's kernels into an fnn_kernels.
 * api.c owns the public entry points: it validates sizes, splits the work
 * over threads and calls through the active table (dispatch.c); optim_api.c
 * does the same for the optimizer updates.
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

/* ---- optimizer updates: one step over (n,) floats, in place --------------
 * The step's scalars, derived once by optim_api.c from the public arguments
 * (fastnn.h gives the formulas). An optional buffer passed as NULL turns its
 * option off: SGD and RMSprop momentum, Adam's amsgrad, centered RMSprop. */
typedef struct {
    float neg_lr, weight_decay, momentum, one_minus_dampening;
    int nesterov, first_step;
} fnn_sgd_coefs;
typedef struct {
    float weight_decay;   /* Adam: added to the gradient, 0 for none */
    float decay;          /* AdamW: param *= 1 - lr*weight_decay, 1 for none */
    float one_minus_beta1, beta2, one_minus_beta2, eps;
    float inv_sqrt_bc2;   /* 1 / sqrt(1 - beta2^step) */
    float neg_step_size;  /* -lr / (1 - beta1^step) */
} fnn_adam_coefs;
typedef struct {
    float neg_lr, weight_decay, alpha, one_minus_alpha, eps, momentum;
} fnn_rmsprop_coefs;
/* param, grad, momentum_buf (n,) */
typedef void (*fnn_sgd_fn)(float *param, const float *grad, float *momentum_buf, int64_t n,
                           const fnn_sgd_coefs *c);
/* param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq (n,) */
typedef void (*fnn_adam_fn)(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                            float *max_exp_avg_sq, int64_t n, const fnn_adam_coefs *c);
/* param, grad, square_avg, grad_avg, momentum_buf (n,) */
typedef void (*fnn_rmsprop_fn)(float *param, const float *grad, float *square_avg,
                               float *grad_avg, float *momentum_buf, int64_t n,
                               const fnn_rmsprop_coefs *c);

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
    fnn_sgd_fn sgd;
    fnn_adam_fn adam;
    fnn_rmsprop_fn rmsprop;
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

/* Below this many elements per thread, waking a thread costs more than it
 * saves; element-wise ranges start on multiples of FNN_ALIGN_FLOATS (64 bytes). */
#define FNN_GRAIN_ELEMENTWISE 32768
#define FNN_ALIGN_FLOATS 16

/* Run body(ctx, begin, end) over [0, n) on up to fnn_get_num_threads()
 * threads, each taking one contiguous range whose start is a multiple of
 * `align` elements. Uses one thread when n < 2 * grain. (threads.c) */
typedef void (*fnn_range_body)(void *ctx, int64_t begin, int64_t end);
void fnn_parallel_for(int64_t n, int64_t grain, int64_t align, void *ctx, fnn_range_body body);

#endif /* FNN_KERNELS_H */
