/*
 * kernels.h - the per-ISA kernel sub-tables and how the api files reach them (internal).
 *
 * Every op family has the same shape:
 *   csrc/<family>.c      the vector loops, forward and backward side by side, written once
 *                        against simd.h and compiled once per ISA (setup.py adds that ISA's
 *                        flags and -DFNN_TARGET); its functions are static, and the file ENDS
 *                        with its sub-table, `const fnn_<family>_kernels FNN_K(fnn_<family>_kernels)
 *                        = {.field = fn, ...}`: designated initialisers, so the compiler checks
 *                        every signature against the typedefs below.
 *   csrc/<family>_api.c  the public fnn_<op>_forward / _backward of fastnn.h: size checks,
 *                        thread splits (fnn_parallel_for), index math and loops over time, all
 *                        compiled once; it calls the kernels through fnn_active_<family>().
 * A family that needs several kernel files gets a folder (gemm/: pack.c and kernel.c per ISA,
 * gemm_api.c once; its sub-table type lives in gemm/gemm.h). csrc/runtime/ (dispatch, threads)
 * is compiled once and holds no kernels.
 *
 * Contract of a sub-table: plain function pointers (and constant data such as block sizes),
 * single-threaded, over the contiguous range they are given, never allocating, never failing:
 * the api file has validated everything. A function must give each element the same bits
 * wherever the range starts, so that threads never change results.
 *
 * Adding a family `foo`:
 *   1. here (or in foo/foo.h): the kernel typedefs and `typedef struct {...} fnn_foo_kernels;`
 *   2. one line X(fnn_foo_kernels, foo) in FNN_FAMILIES below: that declares each ISA's
 *      sub-table, adds the field to fnn_isa_tables, fills it in dispatch.c and defines the
 *      accessor fnn_active_foo();
 *   3. csrc/foo.c ending with its sub-table, csrc/foo_api.c with the entry points declared
 *      in fastnn.h (setup.py finds both files by their names);
 *   4. src/fastnn/_foo.pxi (included by _C.pyx) and a section of fastnn.ops.
 */
#ifndef FNN_KERNELS_H
#define FNN_KERNELS_H

#include <stdatomic.h>
#include <stdint.h>

#include "fastnn.h"
#include "gemm/gemm.h"

/* ---- activations (activations.c, activations_piecewise.c) ---------------
 * n is the number of elements of every array. */
/* SELU's constants (Klambauer et al. 2017), as PyTorch */
#define FNN_SELU_ALPHA 1.6732632423543772848170429916717f
#define FNN_SELU_SCALE 1.0507009873554804934193349852946f
/* an op's scalar options; each op's comment says what a, b, c are (unused: 0) */
typedef struct {
    float a, b, c;
} fnn_map_params;
/* out (n,) = f(inp (n,)) */
typedef void (*fnn_map_forward_fn)(float *out, const float *inp, int64_t n, fnn_map_params param);
/* dinp (n,) (+)= dout (n,) * f'(saved (n,)); saved is the forward input or output */
typedef void (*fnn_map_backward_fn)(float *dinp, const float *dout, const float *saved,
                                    int64_t n, fnn_map_params param, int accumulate);
/* GLU on n pairs: out (n,) = a (n,) * sigmoid(b (n,)) */
typedef void (*fnn_glu_forward_fn)(float *out, const float *a, const float *b, int64_t n);
/* da (n,), db (n,) (+)= the GLU gradients given dout (n,) and the forward's a, b (n,) */
typedef void (*fnn_glu_backward_fn)(float *da, float *db, const float *dout, const float *a,
                                    const float *b, int64_t n, int accumulate);
/* sum over i of (inp[i] > 0 ? 0 : inp[i] * dout[i]), inp and dout (n,): one
 * block of PReLU's weight gradient, summed in a fixed order */
typedef double (*fnn_prelu_weight_grad_fn)(const float *dout, const float *inp, int64_t n);
/* PReLU along a row whose every element is its own channel: out (n,) = inp (n,)
 * where positive, else weight (n,) * inp */
typedef void (*fnn_prelu_channels_forward_fn)(float *out, const float *inp,
                                              const float *weight, int64_t n);
/* dinp (n,) (+)= dout (n,) where inp (n,) > 0, else weight (n,) * dout (skipped when
 * dinp is NULL); dweight (n,) += that row's weight gradient (skipped when NULL) */
typedef void (*fnn_prelu_channels_backward_fn)(float *dinp, float *dweight, const float *dout,
                                               const float *inp, const float *weight,
                                               int64_t n, int accumulate);
typedef struct {
    fnn_map_forward_fn relu_forward, leaky_relu_forward, sigmoid_forward, tanh_forward,
        gelu_erf_forward, gelu_tanh_forward, silu_forward, elu_forward, softplus_forward,
        mish_forward, log_sigmoid_forward, softsign_forward, tanhshrink_forward;
    fnn_map_backward_fn relu_backward, leaky_relu_backward, sigmoid_backward, tanh_backward,
        gelu_erf_backward, gelu_tanh_backward, silu_backward, elu_backward, softplus_backward,
        mish_backward, log_sigmoid_backward, softsign_backward, tanhshrink_backward;
    fnn_glu_forward_fn glu_forward;
    fnn_glu_backward_fn glu_backward;
    fnn_prelu_weight_grad_fn prelu_weight_grad;
    fnn_prelu_channels_forward_fn prelu_channels_forward;
    fnn_prelu_channels_backward_fn prelu_channels_backward;
    fnn_map_forward_fn exp, expm1, log, erf; /* the bare vector math, for accuracy checks */
} fnn_activation_kernels;

/* the piecewise-linear maps (activations_piecewise.c) */
typedef struct {
    fnn_map_forward_fn hardtanh_forward, hardsigmoid_forward, hardswish_forward,
        threshold_forward, softshrink_forward, hardshrink_forward;
    /* shrink_backward serves softshrink and hardshrink (the same mask) */
    fnn_map_backward_fn hardtanh_backward, hardsigmoid_backward, hardswish_backward,
        threshold_backward, shrink_backward;
} fnn_piecewise_kernels;

/* ---- softmax (softmax.c): `rows` blocks of (C, D), softmax along C -------- */
/* out (rows, C, D) = softmax / log_softmax (when log) of inp (rows, C, D) */
typedef void (*fnn_softmax_forward_fn)(float *out, const float *inp, int64_t rows, int64_t C,
                                       int64_t D, int log);
/* dinp (rows, C, D) (+)= backward given the forward output out and dout, all (rows, C, D) */
typedef void (*fnn_softmax_backward_fn)(float *dinp, const float *dout, const float *out,
                                        int64_t rows, int64_t C, int64_t D, int log,
                                        int accumulate);
typedef struct {
    fnn_softmax_forward_fn forward;
    fnn_softmax_backward_fn backward;
} fnn_softmax_kernels;

/* ---- losses (losses.c): one block of rows or elements ---------------------
 * Each writes the per-row (per-element) losses to `losses` unless it is NULL,
 * the gradient d loss_i / d input times grad_scale, and returns the block's
 * summed loss. Labels and options are already validated. Shapes: rows x C
 * (classes) or D (features), n elements; weight (C,) or NULL. */
typedef double (*fnn_cross_entropy_fn)(float *losses, float *dlogits, const float *logits,
                                       const int64_t *labels, const float *weight, int64_t rows,
                                       int64_t C, float label_smoothing, int64_t ignore_index,
                                       float grad_scale);
typedef double (*fnn_cross_entropy_probs_fn)(float *losses, float *dlogits, const float *logits,
                                             const float *target, const float *weight,
                                             int64_t rows, int64_t C, float label_smoothing,
                                             float grad_scale);
typedef double (*fnn_nll_fn)(float *losses, float *dlogp, const float *logp,
                             const int64_t *labels, const float *weight, int64_t rows, int64_t C,
                             int64_t ignore_index, float grad_scale);
typedef double (*fnn_cosine_embedding_fn)(float *losses, float *dx1, float *dx2, const float *x1,
                                          const float *x2, const float *y, int64_t rows,
                                          int64_t D, float margin, float grad_scale);
typedef double (*fnn_gaussian_nll_fn)(float *losses, float *dinput, float *dvar,
                                      const float *input, const float *target, const float *var,
                                      int64_t n, float eps, int full, float grad_scale);
/* element-wise loss of pred against target, all (n,) (options' arrays too) */
typedef double (*fnn_pointwise_loss_fn)(float *losses, float *dpred, const float *pred,
                                        const float *target, int64_t n,
                                        const fnn_loss_options *options, float grad_scale);
typedef struct {
    fnn_cross_entropy_fn cross_entropy;
    fnn_cross_entropy_probs_fn cross_entropy_probs;
    fnn_nll_fn nll;
    fnn_cosine_embedding_fn cosine_embedding;
    fnn_gaussian_nll_fn gaussian_nll;
    fnn_pointwise_loss_fn pointwise[FNN_POINTWISE_LOSS_COUNT]; /* by fnn_pointwise_loss */
} fnn_loss_kernels;

/* ---- optimizer updates (optim.c): one step over (n,) floats, in place -----
 * The step's scalars, derived once by optim_api.c from the public arguments
 * (fastnn.h gives the formulas). An optional buffer passed as NULL turns its
 * option off: SGD and RMSprop momentum, Adam's amsgrad, centered RMSprop.
 * maximize (every rule): the update starts from -grad. */
typedef struct {
    float neg_lr, weight_decay, momentum, one_minus_dampening;
    int nesterov, first_step, maximize;
} fnn_sgd_coefs;
typedef struct {
    float weight_decay;   /* Adam: added to the gradient, 0 for none */
    float decay;          /* AdamW: param *= 1 - lr*weight_decay, 1 for none */
    float one_minus_beta1, beta2, one_minus_beta2, eps;
    float inv_sqrt_bc2;   /* 1 / sqrt(1 - beta2^step) */
    float neg_step_size;  /* -lr / (1 - beta1^step) */
    int maximize;
} fnn_adam_coefs;
typedef struct {
    float neg_lr, weight_decay, alpha, one_minus_alpha, eps, momentum;
    int maximize;
} fnn_rmsprop_coefs;
typedef struct {
    float neg_clr;        /* -lr / (1 + (step - 1) lr_decay) */
    float weight_decay, eps;
    int maximize;
} fnn_adagrad_coefs;
typedef struct {
    float weight_decay, one_minus_beta1, beta2, eps;
    float neg_clr;        /* -lr / (1 - beta1^step) */
    int maximize;
} fnn_adamax_coefs;
typedef struct {
    float weight_decay;   /* RAdam: added to the gradient, 0 for none */
    float decay;          /* decoupled: param *= 1 - lr*weight_decay, 1 for none */
    float one_minus_beta1, beta2, one_minus_beta2, eps;
    float inv_bc1;        /* 1 / (1 - beta1^step) */
    float sqrt_bc2;       /* sqrt(1 - beta2^step) */
    float neg_lr_rect;    /* -lr * rect when rectified, else -lr */
    int rectified, maximize;
} fnn_radam_coefs;
typedef struct {
    float weight_decay;   /* NAdam: added to the gradient, 0 for none */
    float decay;          /* decoupled: param *= 1 - lr*weight_decay, 1 for none */
    float one_minus_beta1, beta2, one_minus_beta2, eps;
    float inv_bc2;        /* 1 / (1 - beta2^step) */
    float grad_coef;      /* -lr (1 - mu) / (1 - mu_product) */
    float avg_coef;       /* -lr mu_next / (1 - mu_product mu_next) */
    int maximize;
} fnn_nadam_coefs;
typedef struct {
    float neg_lr, weight_decay, rho, one_minus_rho, eps;
    int maximize;
} fnn_adadelta_coefs;
typedef struct {
    float weight_decay;
    float decay;          /* 1 - lambd eta */
    float neg_eta, mu;
    int averaging;        /* mu != 1: ax moves towards param, else ax = param */
    int maximize;
} fnn_asgd_coefs;
typedef struct {
    float etaminus, etaplus, step_size_min, step_size_max;
    int maximize;
} fnn_rprop_coefs;
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
/* param, grad, sum (n,) */
typedef void (*fnn_adagrad_fn)(float *param, const float *grad, float *sum, int64_t n,
                               const fnn_adagrad_coefs *c);
/* param, grad, exp_avg, exp_inf (n,) */
typedef void (*fnn_adamax_fn)(float *param, const float *grad, float *exp_avg, float *exp_inf,
                              int64_t n, const fnn_adamax_coefs *c);
/* param, grad, exp_avg, exp_avg_sq (n,) */
typedef void (*fnn_radam_fn)(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                             int64_t n, const fnn_radam_coefs *c);
/* param, grad, exp_avg, exp_avg_sq (n,) */
typedef void (*fnn_nadam_fn)(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                             int64_t n, const fnn_nadam_coefs *c);
/* param, grad, square_avg, acc_delta (n,) */
typedef void (*fnn_adadelta_fn)(float *param, const float *grad, float *square_avg,
                                float *acc_delta, int64_t n, const fnn_adadelta_coefs *c);
/* param, grad, ax (n,) */
typedef void (*fnn_asgd_fn)(float *param, const float *grad, float *ax, int64_t n,
                            const fnn_asgd_coefs *c);
/* param, grad, prev, step_size (n,) */
typedef void (*fnn_rprop_fn)(float *param, const float *grad, float *prev, float *step_size,
                             int64_t n, const fnn_rprop_coefs *c);
typedef struct {
    fnn_sgd_fn sgd;
    fnn_adam_fn adam;
    fnn_rmsprop_fn rmsprop;
    fnn_adagrad_fn adagrad;
    fnn_adamax_fn adamax;
    fnn_radam_fn radam;
    fnn_nadam_fn nadam;
    fnn_adadelta_fn adadelta;
    fnn_asgd_fn asgd;
    fnn_rprop_fn rprop;
} fnn_optim_kernels;

/* ---- Linear layer pieces (linear.c) ----------------------------------------
 * dbias (N,) (+)= column sums of dout (M, N) with row stride ld, rows in order */
typedef void (*fnn_bias_backward_fn)(float *dbias, const float *dout, int64_t M, int64_t N,
                                     int64_t ld, int accumulate);
typedef struct {
    fnn_bias_backward_fn bias_backward;
} fnn_linear_kernels;

/* ---- the FMA ceiling probe (fma_probe.c) --------------------------------- */
typedef struct {
    float (*run)(int64_t iters); /* 2 * 16 * vw * iters flops on one core */
    int64_t vw;                  /* floats per vector */
} fnn_fma_probe_kernels;

/* ---- batch norm and group norm (norm.c) -----------------------------------
 * plane: N blocks of S contiguous floats `stride` apart; cols: W columns of an
 * (N, ld) matrix. Sums in float64 over fixed lanes by element position (norm.c). */
/* *mean, *m2 = mean and sum of squared deviations of the plane x */
typedef void (*fnn_moments_plane_fn)(double *mean, double *m2, const float *x, int64_t N,
                                     int64_t S, int64_t stride);
/* mean, m2 (W,) of the columns of x (N, ld) */
typedef void (*fnn_moments_cols_fn)(double *mean, double *m2, const float *x, int64_t N,
                                    int64_t W, int64_t ld);
/* out = (x - mean) * scale + shift over the plane, then max(0, .) when relu */
typedef void (*fnn_affine_plane_fn)(float *out, const float *x, int64_t N, int64_t S,
                                    int64_t stride, float mean, float scale, float shift,
                                    int relu);
/* the same over columns; mean, scale, shift (W,) */
typedef void (*fnn_affine_cols_fn)(float *out, const float *x, int64_t N, int64_t W, int64_t ld,
                                   const float *mean, const float *scale, const float *shift,
                                   int relu);
/* *sdy = sum dy, *sdyx = sum dy * (x - mean) over the plane; with relu_out (a ReLU's
 * output after the normalization, laid out as x) dy counts only where relu_out > 0 */
typedef void (*fnn_dot_plane_fn)(double *sdy, double *sdyx, const float *dy, const float *x,
                                 const float *relu_out, int64_t N, int64_t S, int64_t stride,
                                 float mean);
/* sdy, sdyx (W,) over columns; mean (W,) */
typedef void (*fnn_dot_cols_fn)(double *sdy, double *sdyx, const float *dy, const float *x,
                                const float *relu_out, int64_t N, int64_t W, int64_t ld,
                                const float *mean);
/* dx (+)= a * dy + b * (x - mean) + c over the plane, dy masked by relu_out as above */
typedef void (*fnn_dx_plane_fn)(float *dx, const float *dy, const float *x,
                                const float *relu_out, int64_t N, int64_t S, int64_t stride,
                                float mean, float a, float b, float c, int accumulate);
/* the same over columns; mean, a, b, c (W,) */
typedef void (*fnn_dx_cols_fn)(float *dx, const float *dy, const float *x,
                               const float *relu_out, int64_t N, int64_t W, int64_t ld,
                               const float *mean, const float *a, const float *b, const float *c,
                               int accumulate);
typedef struct {
    fnn_moments_plane_fn moments_plane;
    fnn_moments_cols_fn moments_cols;
    fnn_affine_plane_fn affine_plane;
    fnn_affine_cols_fn affine_cols;
    fnn_dot_plane_fn dot_plane;
    fnn_dot_cols_fn dot_cols;
    fnn_dx_plane_fn dx_plane;
    fnn_dx_cols_fn dx_cols;
} fnn_norm_kernels;
/* ---- LayerNorm and RMSNorm (layer_norm.c): R rows of D floats ----------------
 * Row arrays (R, D) C-contiguous; weight, bias (D,) or NULL; mean, rstd (R,),
 * mean NULL (not written, read as 0) for RMSNorm. */
/* out = norm(inp (+ residual, then written to sum)) * weight + bias (layer_norm.c) */
typedef void (*fnn_layer_norm_rows_forward_fn)(float *out, float *mean, float *rstd,
                                               float *sum, const float *inp,
                                               const float *residual, const float *weight,
                                               const float *bias, int64_t R, int64_t D,
                                               float eps, int rms);
/* dinp (+)= the rows' input gradient (NULL: skipped); dweight_part, dbias_part (D,)
 * += this block's sums over its rows in order (each NULL: skipped) */
typedef void (*fnn_layer_norm_rows_backward_fn)(float *dinp, float *dweight_part,
                                                float *dbias_part, const float *dout,
                                                const float *inp, const float *mean,
                                                const float *rstd, const float *weight,
                                                int64_t R, int64_t D, int accumulate);
typedef struct {
    fnn_layer_norm_rows_forward_fn forward_rows;
    fnn_layer_norm_rows_backward_fn backward_rows;
} fnn_layer_norm_kernels;

/* ---- scaled dot-product attention (attention.c): one row of a head's scores --
 * n valid columns, then zeros up to n_zero; mask, drop (n,) or NULL. */
typedef struct {
    /* p = softmax(s + mask); returns the logsumexp (-inf and p = 0 when all masked) */
    float (*softmax_row)(float *p, const float *s, const float *mask, int64_t n,
                         int64_t n_zero);
    /* p = exp(s + mask - lse) */
    void (*exp_row)(float *p, const float *s, const float *mask, float lse, int64_t n,
                    int64_t n_zero);
    /* ds = p * (dp * drop - d) */
    void (*softmax_grad_row)(float *ds, const float *dp, const float *p, const float *drop,
                             float d, int64_t n, int64_t n_zero);
    void (*mul_row)(float *out, const float *a, const float *b, int64_t n); /* out = a * b */
    float (*dot_row)(const float *a, const float *b, int64_t n);            /* sum a * b */
} fnn_attention_kernels;

/* ---- pooling (pool.c): `P` planes (P, H, W) -> (P, OH, OW), geometry in g ---- */
/* out (P, OH, OW) = window max of inp (P, H, W), indices (P, OH, OW) its argmax;
 * adaptive when `adaptive` (bins instead of kernel/stride/padding) */
typedef void (*fnn_max_pool_fn)(float *out, int64_t *indices, const float *inp, int64_t P,
                                const fnn_pool_geom *g, int adaptive);
/* dinp (P, H, W) = scatter of dout (P, OH, OW) at indices (P, OH, OW), already checked */
typedef void (*fnn_max_pool_backward_fn)(float *dinp, const float *dout, const int64_t *indices,
                                         int64_t P, const fnn_pool_geom *g);
/* out (P, OH, OW) = window means of inp (P, H, W); backward dinp (P, H, W) from
 * dout (P, OH, OW); divisor > 0 overrides, adaptive as above */
typedef void (*fnn_avg_pool_fn)(float *out, const float *inp, int64_t P, const fnn_pool_geom *g,
                                int count_include_pad, int64_t divisor, int adaptive);
typedef void (*fnn_avg_pool_backward_fn)(float *dinp, const float *dout, int64_t P,
                                         const fnn_pool_geom *g, int count_include_pad,
                                         int64_t divisor, int adaptive);
typedef struct {
    fnn_max_pool_fn max_forward;
    fnn_max_pool_backward_fn max_backward;
    fnn_avg_pool_fn avg_forward;
    fnn_avg_pool_backward_fn avg_backward;
} fnn_pool_kernels;

/* ---- convolution (conv/kernel.c): the implicit-GEMM tile ------------------
 * T (m, n) = sum over j < J of X[ro[i] + co[j]] * B[j * nr + col], a tile of
 * m <= mr rows and n <= nr columns; ro (mr,) row offsets (rows past m repeat a
 * valid one), co (J,) step offsets into the image X, B one packed panel (J, nr)
 * zero past column n. */
/* out[col * ld_out + i] = act(T[i][col] + bias[col]), i < m, col < n; bias (n,) or NULL */
typedef void (*fnn_conv_tile_store_fn)(int64_t J, const float *X, const int64_t *ro,
                                       const int64_t *co, const float *B, float *out,
                                       int64_t ld_out, int64_t m, int64_t n, const float *bias,
                                       fnn_activation act);
/* out[i * ld_out + col] += T[i][col], i < m, col < n rounded up to whole vectors
 * (out has room for them up to nr) */
typedef void (*fnn_conv_tile_accumulate_fn)(int64_t J, const float *X, const int64_t *ro,
                                            const int64_t *co, const float *B, float *out,
                                            int64_t ld_out, int64_t m, int64_t n);
/* panels (ceil(O / nr), P, nr): panels[q][p][l] = src[(q nr + l) P + p] for q nr + l
 * < O, src (O, P); the lanes past O are not written */
typedef void (*fnn_conv_pack_transposed_fn)(float *panels, const float *src, int64_t O,
                                            int64_t P);
/* The first-layer path (conv/kernel.c): "row vectors" of up to vw adjacent output
 * pixels of one row, each an image offset px, an output offset yo and w lanes.
 * out[o ld_out + yo[v] + l] = act(sum over k < Kd of Wk[k ro + o] X[px[v] + taps[k]
 * + l] + bias[o]) for o < mo, l < w[v], v < rv (w[v] = 0: no vector); Wk (Kd, ro) */
typedef void (*fnn_conv_rows_store_fn)(int64_t Kd, const float *X, const int64_t *taps,
                                       const float *Wk, const int64_t *px, const int64_t *yo,
                                       const int64_t *w, float *out, int64_t ld_out, int64_t mo,
                                       const float *bias, fnn_activation act);
/* part[(o ld_part + k) vw + l] += sum over v < nvec of dy[o ld_dy + yo[v] + l]
 * X[px[v] + taps[k] + l] for o < mo <= go, k < nk <= gk, l < w[v] */
typedef void (*fnn_conv_rows_accumulate_fn)(int64_t nvec, const float *X, const int64_t *taps,
                                            const float *dy, int64_t ld_dy, const int64_t *px,
                                            const int64_t *yo, const int64_t *w, float *part,
                                            int64_t ld_part, int64_t mo, int64_t nk);
typedef struct {
    fnn_conv_tile_store_fn tile_store;
    fnn_conv_tile_accumulate_fn tile_accumulate;
    fnn_conv_pack_transposed_fn pack_transposed;
    fnn_conv_rows_store_fn rows_store;
    fnn_conv_rows_accumulate_fn rows_accumulate;
    int64_t mr, nr;         /* tile: rows, columns */
    int64_t vw, ro, rv;     /* row vectors: lanes; forward tile: channels, vectors */
    int64_t go, gk;         /* weight-gradient tile: channels, taps */
} fnn_conv_kernels;

/* ---- embedding (embedding.c) -------------------------------------------------- */
/* dst (E,) += scale * src (E,) */
typedef void (*fnn_add_scaled_row_fn)(float *dst, const float *src, int64_t E, float scale);
typedef struct {
    fnn_add_scaled_row_fn add_scaled_row;
} fnn_embedding_kernels;

/* ---- recurrent cells (rnn/cell.c): one block of units, m rows ---------------
 * A block is w <= FNN_RNN_UNITS hidden units; its G gates sit side by side (gate
 * g in columns g*w .. g*w + w - 1 of the block: rnn_api.c's interleaved layout).
 * Arrays (m, w) have row stride ld, except h and h_prev (row stride ldh); gate
 * arrays (m, G*w) row stride ldg; y and dy (m, w) row stride ldy; the tile hg row
 * stride ldhg. Cells and their letters as fastnn.h's fnn_rnn_cell. */
#define FNN_RNN_UNITS 32
typedef struct {
    int64_t m, w, ld, ldh, ldg, ldy, ldhg;
    const float *hg;      /* (m, G*w): [x | h_prev] W'^T of the block, without bias; GRU
                             (m, 4*w): r, z (both parts), then n's x part and h part */
    const float *bias;    /* (G*w,): b_ih + b_hh (GRU n: b_in alone), or NULL */
    const float *b_hn;    /* (w,) GRU: the hidden bias of n, or NULL */
    float *gates;         /* (m, G*w) out: the gates after their activations (RNN: h) */
    const float *h_prev;  /* (m, w) GRU */
    float *h;             /* (m, w) the new state */
    float *y;             /* (m, w) the output, a copy of h */
    const float *c_prev;  /* LSTM (m, w) */
    float *c;             /* LSTM (m, w) */
    float *hn;            /* GRU (m, w): W_hn h_prev + b_hn, for backward */
} fnn_rnn_cell_forward_args;
typedef struct {
    int64_t m, w, ld, ldh, ldg, ldy;
    float *dgates;        /* (m, G*w) in: the forward's gates; out: d of the pre-activations
                             on the input side (x W_ih^T + b_ih) */
    float *dgh;           /* GRU (m, G*w), ldg: d of h_prev W_hh^T + b_hh; others NULL */
    const float *dy;      /* (m, w) or NULL */
    const float *dh;      /* (m, w) d of h_t from the later steps (or of h_n) */
    float *dh_prev;       /* GRU (m, w): set to the direct part dh_t * z */
    float *dc;            /* LSTM (m, w): in d of c_t from the later steps, out d of c_prev */
    const float *c, *c_prev; /* LSTM (m, w) */
    const float *h_prev;  /* GRU (m, w), row stride ldh */
    const float *hn;      /* GRU (m, w) */
} fnn_rnn_cell_backward_args;
typedef void (*fnn_rnn_cell_forward_fn)(const fnn_rnn_cell_forward_args *a);
typedef void (*fnn_rnn_cell_backward_fn)(const fnn_rnn_cell_backward_args *a);
/* C (m, n) = A (m, K) B (K, n) (+ C when accumulate), row strides lda, ldb, ldc, for
 * m <= FNN_RNN_FEW_ROWS: a step of one or two sequences. Every element sums its K
 * products in order from zero, as the GEMM micro-kernel does, so results match it. */
#define FNN_RNN_FEW_ROWS 2
typedef void (*fnn_rnn_few_rows_product_fn)(int64_t K, const float *A, int64_t lda,
                                            const float *B, int64_t ldb, float *C, int64_t ldc,
                                            int64_t m, int64_t n, int accumulate);
typedef struct {
    fnn_rnn_cell_forward_fn forward[FNN_RNN_CELL_COUNT];
    fnn_rnn_cell_backward_fn backward[FNN_RNN_CELL_COUNT];
    fnn_rnn_few_rows_product_fn few_rows_product;
} fnn_rnn_kernels;

/* ---- the families, once ------------------------------------------------------
 * X(sub-table type, family): the one list dispatch.c, fnn_isa_tables and the
 * accessors are generated from. Each ISA's sub-table is named <type>_<isa>. */
#define FNN_FAMILIES(X)                      \
    X(fnn_activation_kernels, activations)   \
    X(fnn_piecewise_kernels, piecewise)      \
    X(fnn_softmax_kernels, softmax)          \
    X(fnn_loss_kernels, losses)              \
    X(fnn_optim_kernels, optim)              \
    X(fnn_gemm_kernels, gemm)                \
    X(fnn_linear_kernels, linear)            \
    X(fnn_fma_probe_kernels, fma_probe)      \
    X(fnn_norm_kernels, norm)                \
    X(fnn_layer_norm_kernels, layer_norm)    \
    X(fnn_pool_kernels, pool)                \
    X(fnn_conv_kernels, conv)                \
    X(fnn_rnn_kernels, rnn)                  \
    X(fnn_embedding_kernels, embedding)      \
    X(fnn_attention_kernels, attention)

#define FNN_DECLARE_SUBTABLES_(type, family) \
    extern const type type##_generic, type##_avx2, type##_avx512;
FNN_FAMILIES(FNN_DECLARE_SUBTABLES_)
#undef FNN_DECLARE_SUBTABLES_

/* one ISA's set of sub-tables */
typedef struct {
#define FNN_TABLE_FIELD_(type, family) const type *family;
    FNN_FAMILIES(FNN_TABLE_FIELD_)
#undef FNN_TABLE_FIELD_
} fnn_isa_tables;

/* the set fnn_init() chose (dispatch.c); starts as generic so nothing runs
 * uninitialised. Atomic: another thread may switch it while kernels run, so an
 * entry point that uses a family more than once reads its sub-table once. */
extern _Atomic(const fnn_isa_tables *) fnn_active_tables;

/* fnn_active_activations(), fnn_active_gemm(), ...: the active ISA's sub-table of a family */
#define FNN_ACCESSOR_(type, family) \
    static inline const type *fnn_active_##family(void) {                   \
        return atomic_load_explicit(&fnn_active_tables, memory_order_relaxed)->family; \
    }
FNN_FAMILIES(FNN_ACCESSOR_)
#undef FNN_ACCESSOR_

/* Element-wise chunks: about 10-30 us of work, so a thread descheduled
 * mid-chunk delays a call little, and waking a thread pays; they start on
 * multiples of FNN_ALIGN_FLOATS (64 bytes). */
#define FNN_GRAIN_ELEMENTWISE 32768
#define FNN_ALIGN_FLOATS 16

/* Run body(ctx, begin, end) over [0, n) in chunks of `grain` elements rounded
 * up to a multiple of `align` (the last one short), claimed by up to
 * fnn_get_num_threads() threads; one chunk runs on the calling thread.
 * Chunk boundaries depend only on n, grain and align. Kernel code runs with
 * denormals flushed (fnn_set_flush_denormal). (runtime/threads.c) */
typedef void (*fnn_range_body)(void *ctx, int64_t begin, int64_t end);
void fnn_parallel_for(int64_t n, int64_t grain, int64_t align, void *ctx, fnn_range_body body);

/* Run body(ctx, phase, item) for every item of [0, items) of phases [0, phases) in
 * order: every thread that joins claims items one at a time, and starts on an item
 * of phase p only once every item of the phases before p has finished. One wait per
 * phase instead of a fork and join: for short dependent steps (a recurrent layer's
 * time steps split over its units). A thread that never joins costs nothing; one
 * thread runs all in order. (runtime/threads.c) */
typedef void (*fnn_phase_body)(void *ctx, int64_t phase, int64_t item);
void fnn_parallel_phases(int64_t phases, int64_t items, void *ctx, fnn_phase_body body);

#endif /* FNN_KERNELS_H */
