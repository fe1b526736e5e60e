/*
 * fastnn.h - the one public header of the fastnn C kernels.
 *
 * Plain C11, no Python. Every kernel returns an fnn_status and never prints,
 * exits or keeps memory. Arrays are float32, C-contiguous, with int64 sizes.
 *
 * Argument order (after llm.c): outputs first, then what forward caches for
 * backward, then inputs and weights, then sizes, then options. Gradients are named d<name>: dinp is the gradient w.r.t. inp, dout
 * the gradient arriving from above. Backward kernels take `accumulate`:
 * 0 overwrites dinp, 1 adds to it (the model layer uses 1 so that residual
 * branches and shared weights sum their gradients; the caller zeroes once).
 *
 * One name stem per op: fnn_<op>_forward / fnn_<op>_backward.
 * Each section names its files: csrc/<family>.c holds the vector loops
 * (compiled once per ISA), csrc/<family>_api.c the entry points below.
 *
 * The ISA path (AVX-512, AVX2+FMA or portable C) is picked once, by
 * fnn_init(); every kernel then runs on it. Large arrays are cut into chunks
 * that up to fnn_get_num_threads() threads of fastnn's own pool claim (small
 * ones stay on the calling thread); results do not depend on the thread
 * count. Kernels flush denormals to zero (fnn_set_flush_denormal).
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FNN_OK = 0,
    FNN_ERR_ARG = 1,        /* a size or option is out of range */
    FNN_ERR_LABEL = 2,      /* a class label is outside [0, C) and is not ignore_index */
    FNN_ERR_NOMEM = 3,      /* scratch allocation failed */
    FNN_ERR_ISA = 4,        /* the requested ISA path is not supported by this CPU or build */
} fnn_status;

typedef enum {
    FNN_ISA_GENERIC = 0,    /* portable C, the reference */
    FNN_ISA_AVX2 = 1,       /* AVX2 + FMA, 8 floats per vector */
    FNN_ISA_AVX512 = 2,     /* AVX-512 F/BW/DQ/VL, 16 floats per vector */
    FNN_ISA_COUNT = 3
} fnn_isa;

/* ---- runtime: ISA dispatch and threads (runtime/dispatch.c, threads.c) --- */

/* Pick the ISA path: `requested` is -1 for the best the CPU has, or an
 * fnn_isa to force. Forcing a path the CPU or build lacks returns FNN_ERR_ISA
 * and leaves the previous choice in place. */
fnn_status fnn_init(int requested);
fnn_isa fnn_active_isa(void);
fnn_isa fnn_best_isa(void);            /* widest path the CPU and build support */
const char *fnn_isa_name(fnn_isa isa); /* "generic", "avx2", "avx512"; the one list */
int fnn_isa_compiled(fnn_isa isa);     /* 1 if this build contains the path */

#define FNN_MAX_THREADS 1024
fnn_status fnn_set_num_threads(int n); /* 1 <= n <= FNN_MAX_THREADS */
int fnn_get_num_threads(void);         /* the set count, else fnn_default_num_threads() */
int fnn_default_num_threads(void);     /* CPUs this process may run on (sched_getaffinity) */
int fnn_spin_iterations(void);         /* pauses an idle pool thread spins before it sleeps */
/* 1 (the default): kernels run with MXCSR FTZ and DAZ set, restored on return */
void fnn_set_flush_denormal(int on);
int fnn_get_flush_denormal(void);

/* ---- runtime: the block cache behind fresh outputs (runtime/alloc.c) -----
 * Blocks of at least FNN_CACHE_MIN_BYTES come in size classes (4 per power
 * of two) and go back to a per-class free list when freed, up to a cap on
 * the cached bytes, so reusing them costs no page faults. Data is page-
 * aligned. Thread-safe (one mutex), fork-safe (atfork handlers). The
 * signatures are NumPy's PyDataMemAllocator ones (ctx unused; free reads
 * the block's size from its header, not from `size`). */
#define FNN_CACHE_MIN_BYTES ((size_t)1 << 18) /* 256 KiB */
typedef struct {
    size_t cached_bytes, cached_blocks; /* free, kept for reuse */
    size_t live_bytes, live_blocks;     /* handed out, not freed yet (capacities) */
    size_t hits, misses;                /* class requests served from / not from the cache */
    size_t limit;                       /* cap on cached_bytes */
} fnn_cache_info;
void fnn_cache_init(void);  /* once per process, before the first use (atfork) */
void *fnn_cache_malloc(void *ctx, size_t size);
void *fnn_cache_calloc(void *ctx, size_t nelem, size_t elsize);
void *fnn_cache_realloc(void *ctx, void *ptr, size_t new_size);
void fnn_cache_free(void *ctx, void *ptr, size_t size);
size_t fnn_cache_empty(void);           /* free every cached block; the bytes freed */
void fnn_cache_set_limit(size_t bytes); /* frees cached blocks down to the new cap */
void fnn_cache_stats(fnn_cache_info *info);

/* ---- element-wise activations (activations.c, activations_api.c) --------
 * Forward: out = f(inp), all (n,). out may alias inp.
 * Backward: dinp (+)= dout * f'(...), all (n,). relu, leaky_relu, gelu and
 * silu take the forward input `inp`; sigmoid and tanh take the forward
 * output `out` (cheaper, and what the model layer has cached). */
fnn_status fnn_relu_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_relu_backward(float *dinp, const float *dout, const float *inp,
                             int64_t n, int accumulate);
fnn_status fnn_leaky_relu_forward(float *out, const float *inp, int64_t n,
                                  float negative_slope);
fnn_status fnn_leaky_relu_backward(float *dinp, const float *dout, const float *inp,
                                   int64_t n, float negative_slope, int accumulate);
fnn_status fnn_sigmoid_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_sigmoid_backward(float *dinp, const float *dout, const float *out,
                                int64_t n, int accumulate);
fnn_status fnn_tanh_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_tanh_backward(float *dinp, const float *dout, const float *out,
                             int64_t n, int accumulate);
/* approximate_tanh: 0 = exact erf form x*Phi(x), 1 = tanh approximation */
fnn_status fnn_gelu_forward(float *out, const float *inp, int64_t n, int approximate_tanh);
fnn_status fnn_gelu_backward(float *dinp, const float *dout, const float *inp,
                             int64_t n, int approximate_tanh, int accumulate);
fnn_status fnn_silu_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_silu_backward(float *dinp, const float *dout, const float *inp,
                             int64_t n, int accumulate);
/* The ELU family, all from the forward input: elu = x > 0 ? x : alpha (exp(x) - 1);
 * selu = scale * elu with PyTorch's alpha and scale; celu = x > 0 ? x :
 * alpha (exp(x / alpha) - 1), alpha != 0. */
fnn_status fnn_elu_forward(float *out, const float *inp, int64_t n, float alpha);
fnn_status fnn_elu_backward(float *dinp, const float *dout, const float *inp,
                            int64_t n, float alpha, int accumulate);
fnn_status fnn_selu_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_selu_backward(float *dinp, const float *dout, const float *inp,
                             int64_t n, int accumulate);
fnn_status fnn_celu_forward(float *out, const float *inp, int64_t n, float alpha);
fnn_status fnn_celu_backward(float *dinp, const float *dout, const float *inp,
                             int64_t n, float alpha, int accumulate);
/* softplus = beta x > threshold ? x : log(1 + exp(beta x)) / beta */
fnn_status fnn_softplus_forward(float *out, const float *inp, int64_t n, float beta,
                                float threshold);
fnn_status fnn_softplus_backward(float *dinp, const float *dout, const float *inp,
                                 int64_t n, float beta, float threshold, int accumulate);
/* mish = x tanh(softplus(x)); log_sigmoid = -softplus(-x); softsign = x / (1 + |x|);
 * tanhshrink = x - tanh(x); all from the forward input */
fnn_status fnn_mish_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_mish_backward(float *dinp, const float *dout, const float *inp,
                             int64_t n, int accumulate);
fnn_status fnn_log_sigmoid_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_log_sigmoid_backward(float *dinp, const float *dout, const float *inp,
                                    int64_t n, int accumulate);
fnn_status fnn_softsign_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_softsign_backward(float *dinp, const float *dout, const float *inp,
                                 int64_t n, int accumulate);
fnn_status fnn_tanhshrink_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_tanhshrink_backward(float *dinp, const float *dout, const float *inp,
                                   int64_t n, int accumulate);

/* ---- piecewise-linear activations (activations_piecewise.c, activations_api.c)
 * Same contract, all from the forward input; backward masks are strict:
 * hardtanh = min(max(x, min_val), max_val), d = (min_val < x < max_val);
 * relu6 = hardtanh(x, 0, 6); hardsigmoid = min(max(x + 3, 0), 6) / 6;
 * hardswish = x hardsigmoid(x); threshold = x > threshold ? x : value;
 * softshrink = x > lambd ? x - lambd : x < -lambd ? x + lambd : 0;
 * hardshrink = |x| > lambd ? x : 0. */
fnn_status fnn_hardtanh_forward(float *out, const float *inp, int64_t n, float min_val,
                                float max_val);
fnn_status fnn_hardtanh_backward(float *dinp, const float *dout, const float *inp,
                                 int64_t n, float min_val, float max_val, int accumulate);
fnn_status fnn_relu6_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_relu6_backward(float *dinp, const float *dout, const float *inp,
                              int64_t n, int accumulate);
fnn_status fnn_hardsigmoid_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_hardsigmoid_backward(float *dinp, const float *dout, const float *inp,
                                    int64_t n, int accumulate);
fnn_status fnn_hardswish_forward(float *out, const float *inp, int64_t n);
fnn_status fnn_hardswish_backward(float *dinp, const float *dout, const float *inp,
                                  int64_t n, int accumulate);
fnn_status fnn_threshold_forward(float *out, const float *inp, int64_t n, float threshold,
                                 float value);
fnn_status fnn_threshold_backward(float *dinp, const float *dout, const float *inp,
                                  int64_t n, float threshold, float value, int accumulate);
fnn_status fnn_softshrink_forward(float *out, const float *inp, int64_t n, float lambd);
fnn_status fnn_softshrink_backward(float *dinp, const float *dout, const float *inp,
                                   int64_t n, float lambd, int accumulate);
fnn_status fnn_hardshrink_forward(float *out, const float *inp, int64_t n, float lambd);
fnn_status fnn_hardshrink_backward(float *dinp, const float *dout, const float *inp,
                                   int64_t n, float lambd, int accumulate);

/* ---- GLU and PReLU (activations.c, activations_api.c) ---------------------
 * glu: inp (outer, 2*half, inner) split along its middle axis into a, b (each
 * (outer, half, inner)); out (outer, half, inner) = a * sigmoid(b).
 * Backward: dinp (outer, 2*half, inner) (+)= [da, db] given dout (outer, half,
 * inner) and the forward input inp. */
fnn_status fnn_glu_forward(float *out, const float *inp, int64_t outer, int64_t half,
                           int64_t inner);
fnn_status fnn_glu_backward(float *dinp, const float *dout, const float *inp, int64_t outer,
                            int64_t half, int64_t inner, int accumulate);
/* prelu: inp, out (outer, C, inner), weight (C,): out = x > 0 ? x : weight[c] x.
 * Backward, each skipped when its pointer is NULL:
 *   dinp (outer, C, inner) (+)= dout where x > 0, else weight[c] dout
 *   dweight (C,)            += sum over outer and inner of (x > 0 ? 0 : x dout),
 *                              in a fixed order (the bits do not depend on threads)
 * FNN_ERR_NOMEM if the scratch for the sums cannot be allocated. */
fnn_status fnn_prelu_forward(float *out, const float *inp, const float *weight, int64_t outer,
                             int64_t C, int64_t inner);
fnn_status fnn_prelu_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, int64_t outer, int64_t C, int64_t inner,
                              int accumulate);

/* The vector math the kernels are built on, exposed for accuracy checks. */
fnn_status fnn_exp(float *out, const float *inp, int64_t n);
fnn_status fnn_expm1(float *out, const float *inp, int64_t n);
fnn_status fnn_log(float *out, const float *inp, int64_t n);
fnn_status fnn_erf(float *out, const float *inp, int64_t n);

/* ---- softmax over one axis (softmax.c, softmax_api.c) --------------------
 * inp, out, dout, dinp are (B, C, D): the softmax runs along C for each of the
 * B*D fibres (D = 1 is the usual last-axis case). out may alias inp.
 * Backward takes the forward OUTPUT out (softmax probabilities or log-probs). */
fnn_status fnn_softmax_forward(float *out, const float *inp,
                               int64_t B, int64_t C, int64_t D);
fnn_status fnn_softmax_backward(float *dinp, const float *dout, const float *out,
                                int64_t B, int64_t C, int64_t D, int accumulate);
fnn_status fnn_log_softmax_forward(float *out, const float *inp,
                                   int64_t B, int64_t C, int64_t D);
fnn_status fnn_log_softmax_backward(float *dinp, const float *dout, const float *out,
                                    int64_t B, int64_t C, int64_t D, int accumulate);

/* ---- losses, fused loss + gradient (losses.c, losses_api.c) ----------------
 * Each writes the loss to *loss and d loss / d input to the gradient arrays
 * (written, not accumulated: a loss starts the backward pass). reduction is
 * torch's: with FNN_REDUCTION_NONE the per-row or per-element losses go to
 * `losses` (*loss gets their sum) and the gradient is each one's own; MEAN and
 * SUM leave `losses` unused (it may be NULL) and scale the gradient to match.
 * Sums are taken in double over fixed blocks, so the loss does not depend on
 * the thread count. */
typedef enum { FNN_REDUCTION_NONE = 0, FNN_REDUCTION_MEAN = 1, FNN_REDUCTION_SUM = 2 } fnn_reduction;

/* Cross entropy of logits (N, C) against labels (N,) int64 with class weight
 * (C,) or NULL, as torch.nn.functional.cross_entropy; losses (N,), dlogits (N, C).
 * dlogits may be logits itself (the gradient overwrites the logits in place).
 * Rows whose label is ignore_index contribute nothing and are not counted; the
 * mean divides by the summed weight of the counted rows' labels (their count
 * without weight), NaN with a zero gradient when that is 0 (as PyTorch).
 * A label outside [0, C) that is not ignore_index is FNN_ERR_LABEL before
 * anything is written. */
fnn_status fnn_cross_entropy_forward_backward(float *loss, float *losses, float *dlogits,
                                              const float *logits, const int64_t *labels,
                                              const float *weight, int64_t N, int64_t C,
                                              float label_smoothing, int64_t ignore_index,
                                              fnn_reduction reduction);
/* Cross entropy of logits (N, C) against class probabilities target (N, C); the
 * mean is over the N rows. */
fnn_status fnn_cross_entropy_probs_forward_backward(float *loss, float *losses, float *dlogits,
                                                    const float *logits, const float *target,
                                                    const float *weight, int64_t N, int64_t C,
                                                    float label_smoothing,
                                                    fnn_reduction reduction);
/* Negative log likelihood of log-probabilities logp (N, C) against labels (N,),
 * weight (C,) or NULL, ignore_index and the mean as cross entropy's; dlogp (N, C). */
fnn_status fnn_nll_loss_forward_backward(float *loss, float *losses, float *dlogp,
                                         const float *logp, const int64_t *labels,
                                         const float *weight, int64_t N, int64_t C,
                                         int64_t ignore_index, fnn_reduction reduction);
/* Cosine embedding of rows x1, x2 (N, D) against y (N,) in {1, -1}; dx1, dx2 (N, D). */
fnn_status fnn_cosine_embedding_loss_forward_backward(float *loss, float *losses, float *dx1,
                                                      float *dx2, const float *x1,
                                                      const float *x2, const float *y,
                                                      int64_t N, int64_t D, float margin,
                                                      fnn_reduction reduction);
/* Gaussian negative log likelihood of input with mean target and variance var
 * (all (n,), var >= 0, clamped to eps > 0), dinput and dvar (n,). */
fnn_status fnn_gaussian_nll_loss_forward_backward(float *loss, float *losses, float *dinput,
                                                  float *dvar, const float *input,
                                                  const float *target, const float *var,
                                                  int64_t n, float eps, int full,
                                                  fnn_reduction reduction);

/* The element-wise losses of pred against target (n,) (torch's formulas):
 *   MSE (pred - target)^2          L1 |pred - target|
 *   SMOOTH_L1 (param = beta >= 0)  HUBER (param = delta > 0)
 *   BCE on probabilities in [0, 1] (logs clamped at -100)
 *   BCE_WITH_LOGITS (pos_weight)   SOFT_MARGIN log(1 + exp(-target pred))
 *   KL_DIV of log-probabilities (log_space = log_target)
 *   POISSON_NLL (log_space = log_input, full, param = eps)
 *   MARGIN_RANKING of pred = input1 - input2 against target in {1, -1} (param = margin) */
typedef enum {
    FNN_LOSS_MSE, FNN_LOSS_L1, FNN_LOSS_SMOOTH_L1, FNN_LOSS_HUBER, FNN_LOSS_BCE,
    FNN_LOSS_BCE_WITH_LOGITS, FNN_LOSS_SOFT_MARGIN, FNN_LOSS_KL_DIV, FNN_LOSS_POISSON_NLL,
    FNN_LOSS_MARGIN_RANKING, FNN_POINTWISE_LOSS_COUNT
} fnn_pointwise_loss;
typedef struct {
    const float *weight;     /* (n,) or NULL: each loss times weight[i] (BCE, BCE_WITH_LOGITS) */
    const float *pos_weight; /* (n,) or NULL: BCE_WITH_LOGITS' weight of the positive term */
    float param;             /* beta, delta, eps or margin, as listed above */
    int log_space;           /* KL_DIV log_target, POISSON_NLL log_input */
    int full;                /* POISSON_NLL: add the Stirling term */
} fnn_loss_options;
/* dpred, losses (n,). The mean divides by `divisor` (n for torch's "mean",
 * the batch size for KL_DIV's "batchmean"); it must be >= 0 (0: NaN loss, zero
 * gradient). */
fnn_status fnn_pointwise_loss_forward_backward(fnn_pointwise_loss kind, float *loss,
                                               float *losses, float *dpred, const float *pred,
                                               const float *target, int64_t n,
                                               const fnn_loss_options *options,
                                               fnn_reduction reduction, double divisor);

/* ---- optimizer updates, fused, in place (optim.c, optim_api.c) ------------
 * One step of torch.optim's update (torch 2.x, foreach=False, maximize=False)
 * over n floats: param, grad and every state buffer are (n,), a flat view of
 * one parameter tensor. The caller keeps the state buffers between steps
 * (zeroed before the first) and the step count. Each element is updated on
 * its own, so the result is bitwise the same for any thread count.
 * Hyper-parameters must be finite and in range (else FNN_ERR_ARG): lr >= 0,
 * weight_decay >= 0, momentum >= 0, eps >= 0, betas in [0, 1), alpha in
 * [0, 1]. Pointers may be NULL only when n == 0 or their option is off.
 * A term with weight_decay == 0 is skipped, as torch does. lerp(a, b, t) is
 * a + t (b - a). maximize != 0 (torch's maximize=True) ascends: every update
 * starts from g = -grad in place of grad. */

/* torch.optim.SGD. momentum_buf may be NULL when momentum == 0; nesterov
 * needs momentum > 0 and dampening == 0; first_step: the buffer is empty.
 *   g = grad + weight_decay * param
 *   if momentum != 0:
 *       buf = first_step ? g : momentum * buf + (1 - dampening) * g
 *       g = nesterov ? g + momentum * buf : buf
 *   param -= lr * g */
fnn_status fnn_sgd_step(float *param, const float *grad, float *momentum_buf, int64_t n,
                        float lr, float momentum, float dampening, int nesterov,
                        float weight_decay, int first_step, int maximize);
/* torch.optim.Adam (decoupled = 0) or AdamW (decoupled = 1); amsgrad when
 * max_exp_avg_sq is not NULL. step: the 1-based count of this step (>= 1).
 *   decoupled: param *= 1 - lr * weight_decay;  g = grad
 *   else:      g = grad + weight_decay * param
 *   exp_avg = lerp(exp_avg, g, 1 - beta1)
 *   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
 *   bc1 = 1 - beta1^step, bc2 = 1 - beta2^step     (in double, once)
 *   amsgrad: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), used for v below
 *   param -= lr / bc1 * exp_avg / (sqrt(v) / sqrt(bc2) + eps),  v = exp_avg_sq */
fnn_status fnn_adam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                         float *max_exp_avg_sq, int64_t n, float lr, float beta1, float beta2,
                         float eps, float weight_decay, int decoupled, int64_t step,
                         int maximize);
/* torch.optim.RMSprop; centered when grad_avg is not NULL; momentum_buf may be
 * NULL when momentum == 0.
 *   g = grad + weight_decay * param
 *   square_avg = alpha * square_avg + (1 - alpha) * g * g
 *   centered: grad_avg = lerp(grad_avg, g, 1 - alpha)
 *             avg = sqrt(square_avg - grad_avg * grad_avg) + eps
 *   else:     avg = sqrt(square_avg) + eps
 *   momentum > 0: buf = momentum * buf + g / avg;  param -= lr * buf
 *   else:         param -= lr * g / avg */
fnn_status fnn_rmsprop_step(float *param, const float *grad, float *square_avg, float *grad_avg,
                            float *momentum_buf, int64_t n, float lr, float alpha, float eps,
                            float weight_decay, float momentum, int maximize);
/* torch.optim.Adagrad; lr_decay >= 0; step: the 1-based count of this step.
 *   g = grad + weight_decay * param
 *   clr = lr / (1 + (step - 1) * lr_decay)
 *   sum += g * g;  param -= clr * g / (sqrt(sum) + eps) */
fnn_status fnn_adagrad_step(float *param, const float *grad, float *sum, int64_t n, float lr,
                            float lr_decay, float weight_decay, float eps, int64_t step,
                            int maximize);
/* torch.optim.Adamax; step: the 1-based count of this step.
 *   g = grad + weight_decay * param
 *   exp_avg = lerp(exp_avg, g, 1 - beta1)
 *   exp_inf = max(beta2 * exp_inf, |g| + eps)
 *   param -= lr / (1 - beta1^step) * exp_avg / exp_inf */
fnn_status fnn_adamax_step(float *param, const float *grad, float *exp_avg, float *exp_inf,
                           int64_t n, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int64_t step, int maximize);
/* torch.optim.RAdam (decoupled: decoupled_weight_decay=True); step >= 1.
 *   decoupled: param *= 1 - lr * weight_decay;  g = grad
 *   else:      g = grad + weight_decay * param
 *   exp_avg = lerp(exp_avg, g, 1 - beta1)
 *   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
 *   mhat = exp_avg / (1 - beta1^step)
 *   rho_inf = 2 / (1 - beta2) - 1,  rho = rho_inf - 2 step beta2^step / (1 - beta2^step)
 *   rho > 5: rect = sqrt((rho - 4)(rho - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho))
 *            param -= lr * rect * mhat * sqrt(1 - beta2^step) / (sqrt(exp_avg_sq) + eps)
 *   else:    param -= lr * mhat          (scalars in double, once) */
fnn_status fnn_radam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                          int64_t n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, int decoupled, int64_t step, int maximize);
/* torch.optim.NAdam (decoupled: decoupled_weight_decay=True); step >= 1;
 * momentum_decay >= 0; *mu_product (a scalar, 1 before the first step) is updated.
 *   decoupled: param *= 1 - lr * weight_decay;  g = grad
 *   else:      g = grad + weight_decay * param
 *   mu = beta1 (1 - 0.5 * 0.96^(step momentum_decay)),  mu_next the same at step + 1
 *   *mu_product *= mu                                   (in float, as torch's 0-d tensor)
 *   exp_avg = lerp(exp_avg, g, 1 - beta1)
 *   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
 *   denom = sqrt(exp_avg_sq / (1 - beta2^step)) + eps
 *   param -= lr (1 - mu) / (1 - *mu_product) * g / denom
 *   param -= lr mu_next / (1 - *mu_product mu_next) * exp_avg / denom   (scalars in double) */
fnn_status fnn_nadam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                          float *mu_product, int64_t n, float lr, float beta1, float beta2,
                          float eps, float weight_decay, float momentum_decay, int decoupled,
                          int64_t step, int maximize);
/* torch.optim.Adadelta; rho in [0, 1].
 *   g = grad + weight_decay * param
 *   square_avg = rho * square_avg + (1 - rho) * g * g
 *   delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
 *   acc_delta = rho * acc_delta + (1 - rho) * delta * delta
 *   param -= lr * delta */
fnn_status fnn_adadelta_step(float *param, const float *grad, float *square_avg,
                             float *acc_delta, int64_t n, float lr, float rho, float eps,
                             float weight_decay, int maximize);
/* torch.optim.ASGD; step >= 1 (this step's count); lambd, alpha, t0 finite; *eta and *mu
 * (scalars: lr and 1 before the first step) are this step's and are updated for the next.
 *   g = grad + weight_decay * param
 *   param *= 1 - lambd * eta;  param -= eta * g
 *   mu != 1: ax += (param - ax) * mu,  else ax = param
 *   *eta = lr / (1 + lambd lr step)^alpha;  *mu = 1 / max(1, step - t0)   (in double) */
fnn_status fnn_asgd_step(float *param, const float *grad, float *ax, float *eta, float *mu,
                         int64_t n, float lr, float lambd, float alpha, float t0,
                         float weight_decay, int64_t step, int maximize);
/* torch.optim.Rprop; 0 < etaminus < 1 < etaplus; 0 <= step_size_min <= step_size_max
 * (step_size starts as lr, prev as 0).
 *   s = grad * prev
 *   step_size = clamp(step_size * (s > 0 ? etaplus : s < 0 ? etaminus : 1),
 *                     step_size_min, step_size_max)
 *   g = s < 0 ? 0 : grad;  param -= sign(g) * step_size;  prev = g */
fnn_status fnn_rprop_step(float *param, const float *grad, float *prev, float *step_size,
                          int64_t n, float etaminus, float etaplus, float step_size_min,
                          float step_size_max, int maximize);

/* ---- SGEMM (gemm/: kernel.c, pack.c, gemm_api.c) ---------------------------
 * Row-major C := act(alpha * op(A) op(B) + beta * C + bias).
 * op(A) is (M, K): A is (M, K) with row stride lda, or (K, M) when trans_a.
 * op(B) is (K, N): B is (K, N) with row stride ldb, or (N, K) when trans_b.
 * C is (M, N) with row stride ldc. beta == 0 never reads C (NaN in C does not
 * leak, as in BLAS). K == 0 or alpha == 0 gives act(beta * C + bias) without
 * reading A or B (as BLAS).
 * Threads split the M and N macro-tiles only, never K, so the result is
 * bitwise the same for any thread count. */
typedef enum {
    FNN_ACT_NONE = 0,
    FNN_ACT_RELU = 1,
    FNN_ACT_GELU = 2,     /* erf form, torch's default */
    FNN_ACT_SIGMOID = 3,
    FNN_ACT_TANH = 4,
    FNN_ACT_GELU_TANH = 5, /* tanh approximation, torch's approximate="tanh" */
    FNN_ACT_SILU = 6,
    FNN_ACT_MISH = 7,
    FNN_ACT_HARDSWISH = 8,
    FNN_ACT_ELU = 9,       /* alpha = 1, torch's default */
    FNN_ACT_SELU = 10,
    FNN_ACT_COUNT = 11
} fnn_activation;
/* "none", "relu", "gelu", "sigmoid", "tanh", "gelu_tanh", "silu", "mish", "hardswish",
 * "elu", "selu" for 0 .. FNN_ACT_COUNT - 1, NULL outside: the one list of epilogue
 * activations (activations_api.c) */
const char *fnn_activation_name(int act);

typedef enum {
    FNN_BIAS_NONE = 0,
    FNN_BIAS_ROW = 1,     /* bias is (M,): added to every column of row i */
    FNN_BIAS_COL = 2,     /* bias is (N,): added to every row (a Linear layer's bias) */
} fnn_bias_mode;

fnn_status fnn_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                     float *C, int64_t ldc);
/* the same with the fused epilogue: bias (NULL for FNN_BIAS_NONE) and act */
fnn_status fnn_sgemm_ex(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                        float *C, int64_t ldc, const float *bias, fnn_bias_mode bias_mode,
                        fnn_activation act);
/* batch_count independent products; matrix b of each operand starts at
 * X + b * stride_x (a stride of 0 broadcasts one matrix to every product) */
fnn_status fnn_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                                     float alpha, const float *A, int64_t lda, int64_t stride_a,
                                     const float *B, int64_t ldb, int64_t stride_b, float beta,
                                     float *C, int64_t ldc, int64_t stride_c, int64_t batch_count);
/* the active ISA's micro-tile, for tests that sweep sizes around it */
void fnn_gemm_tile(int64_t *mr, int64_t *nr, int64_t *kc, int64_t *mc, int64_t *nc);

/* ---- Linear layer, fused (linear.c, linear_api.c) ----------------------------
 * Dimension letters: M rows (every leading axis of the input), IN in_features,
 * OUT out_features. inp (M, IN), weight (OUT, IN) as torch.nn.Linear, bias
 * (OUT,) or NULL; out, preact, dout (M, OUT); all C-contiguous.
 *
 * Forward: preact = inp @ weight^T + bias; out = act(preact). preact may be
 * NULL; when given, the GEMM epilogue stores it from the same registers it
 * then activates (no second pass). out must not alias inp or weight. */
fnn_status fnn_linear_forward(float *out, float *preact, const float *inp, const float *weight,
                              const float *bias, int64_t M, int64_t IN, int64_t OUT,
                              fnn_activation act);
/* Backward of fnn_linear_forward. g = dout * act'(.): from saved = out for
 * relu, sigmoid and tanh, from saved = preact for gelu and gelu_tanh, g = dout
 * for none (saved unused, may be NULL); g goes to a scratch buffer of M * OUT
 * floats, freed before returning. Then, each skipped when its pointer is NULL:
 *   dweight (OUT, IN) += g^T @ inp
 *   dbias (OUT,)      += g summed over the M rows (fnn_linear_bias_backward)
 *   dinp (M, IN)     (+)= g @ weight
 * Outputs must not alias the inputs. */
fnn_status fnn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *saved, const float *inp, const float *weight,
                               int64_t M, int64_t IN, int64_t OUT, fnn_activation act,
                               int accumulate);
/* The bias gradient alone: dbias (N,) (+)= sum over the M rows of dout (M, N)
 * with row stride ld. Each column is summed in row order by one thread. */
fnn_status fnn_linear_bias_backward(float *dbias, const float *dout, int64_t M, int64_t N,
                                    int64_t ld, int accumulate);

/* ---- the machine's FMA ceiling (fma_probe.c, fma_probe_api.c) --------------
 * Every thread runs `iters` rounds of 16 independent vector FMA chains on the
 * active ISA; *flops is what was done. */
fnn_status fnn_fma_probe(int64_t iters, double *flops);

/* ---- batch norm and group norm (norm.c, norm_api.c) -------------------------
 * Dimension letters: N batch, C channels, S spatial size (the product of the
 * axes after C: 1 for (N, C), L for (N, C, L), H*W for (N, C, H, W)), G groups.
 * inp, out, dout, dinp are (N, C, S); weight, bias, dweight, dbias are (C,),
 * weight / bias NULL meaning 1 / 0 (no affine). Statistics are float64 sums,
 * two passes (mean, then squared deviations); xhat = (inp - mean) * invstd and
 * out = xhat * weight + bias is computed as (inp - mean) * (invstd * weight) +
 * bias, so inp == mean gives exactly bias. Backward is torch's one reduction
 * (sum dout, sum dout * xhat) and one pass writing dinp. dweight and dbias
 * accumulate (+=); dinp (+)= by `accumulate`; each output is skipped when NULL.
 * Batch norm threads split channels, group norm (n, group) blocks: each
 * statistic is summed whole by one thread, so results do not depend on the
 * thread count. eps must be finite and >= 0, momentum in [0, 1].
 *
 * fnn_batch_norm_forward, training != 0: mean (C,) and invstd (C,) are written
 * with the batch's mean and 1 / sqrt(biased variance + eps) over the M = N*S
 * values of each channel (M >= 1); when running_mean and running_var (C,) are
 * given (both or neither) they are updated in place, in double:
 *   running_mean = (1 - momentum) * running_mean + momentum * mean
 *   running_var  = (1 - momentum) * running_var + momentum * var * M / (M - 1)
 * (for M == 1 the unbiased variance is NaN, as torch). The caller passes
 * 1 / num_batches_tracked as momentum for torch's momentum=None.
 * training == 0: mean = running_mean, invstd = 1 / sqrt(running_var + eps)
 * (both required), written to mean and invstd too, so backward takes the same
 * arguments. act FNN_ACT_RELU applies a ReLU to out (FNN_ACT_NONE: none). */
fnn_status fnn_batch_norm_forward(float *out, float *mean, float *invstd, float *running_mean,
                                  float *running_var, const float *inp, const float *weight,
                                  const float *bias, int64_t N, int64_t C, int64_t S, float eps,
                                  float momentum, int training, fnn_activation act);
/* Backward of fnn_batch_norm_forward given its mean and invstd (C,):
 *   dbias += sum dout;  dweight += sum dout * xhat          (over N and S)
 *   training: dinp (+)= weight * invstd * (dout - mean(dout) - xhat * mean(dout * xhat))
 *   else (constant statistics): dinp (+)= weight * invstd * dout
 * relu_out (N, C, S) or NULL: the forward's output when it applied the ReLU;
 * dout then counts only where relu_out > 0 (the ReLU's backward, fused). */
fnn_status fnn_batch_norm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *mean, const float *invstd, const float *inp,
                                   const float *relu_out, const float *weight, int64_t N,
                                   int64_t C, int64_t S, int training, int accumulate);
/* Group norm: G divides C; mean and invstd (N, G) over the C/G * S values of
 * each (n, group); weight and bias per channel. */
fnn_status fnn_group_norm_forward(float *out, float *mean, float *invstd, const float *inp,
                                  const float *weight, const float *bias, int64_t N, int64_t C,
                                  int64_t S, int64_t G, float eps);
/* dbias += sum over (N, S) of dout; dweight += sum of dout * xhat;
 * dinp (+)= invstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight,
 * the means over each (n, group). Scratch of 2 * N * C doubles, freed. */
fnn_status fnn_group_norm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *mean, const float *invstd, const float *inp,
                                   const float *weight, int64_t N, int64_t C, int64_t S,
                                   int64_t G, int accumulate);

/* ---- LayerNorm and RMSNorm over the last axis (layer_norm.c, layer_norm_api.c)
 * Dimension letters: M rows (every leading axis), D the normalized size (the
 * product of normalized_shape). inp, residual, sum, out, dout, dinp (M, D);
 * weight, bias, dweight, dbias (D,), weight / bias NULL meaning 1 / 0; mean, rstd
 * (M,). Statistics are float64 sums (two passes for LayerNorm: a row of equal
 * values gives exactly bias). Threads split rows; the weight and bias gradients
 * are summed over fixed blocks of rows and the blocks added in order, so results
 * do not depend on the thread count. eps must be finite and >= 0; D >= 1.
 *
 * LayerNorm: mean = mean(x), rstd = 1 / sqrt(biased variance + eps),
 * out = (x - mean) * rstd * weight + bias. */
fnn_status fnn_layer_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int64_t M, int64_t D,
                                  float eps);
/* The same of x = inp + residual, with x written to sum (a pre-LN block's residual
 * stream); sum must not alias out. */
fnn_status fnn_add_layer_norm_forward(float *sum, float *out, float *mean, float *rstd,
                                      const float *inp, const float *residual,
                                      const float *weight, const float *bias, int64_t M,
                                      int64_t D, float eps);
/* xhat = (inp - mean) * rstd, g = dout * weight:
 *   dinp (+)= rstd * (g - mean(g) - xhat * mean(g * xhat))     (means over each row)
 *   dweight += sum over rows of dout * xhat;  dbias += sum of dout
 * Each output is skipped when NULL; scratch of 2 * D floats per block of rows. */
fnn_status fnn_layer_norm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *mean, const float *rstd, const float *inp,
                                   const float *weight, int64_t M, int64_t D, int accumulate);
/* RMSNorm: rstd = 1 / sqrt(mean(x^2) + eps), out = x * rstd * weight. */
fnn_status fnn_rms_norm_forward(float *out, float *rstd, const float *inp, const float *weight,
                                int64_t M, int64_t D, float eps);
/* dinp (+)= rstd * (g - xhat * mean(g * xhat)), xhat = inp * rstd, g = dout * weight;
 * dweight += sum over rows of dout * xhat */
fnn_status fnn_rms_norm_backward(float *dinp, float *dweight, const float *dout,
                                 const float *rstd, const float *inp, const float *weight,
                                 int64_t M, int64_t D, int accumulate);

/* ---- convolution (conv/conv_api.c) ------------------------------------------
 * 2-D convolution, NCHW, zero padding: x (N, C, H, W), weight (O, C/groups,
 * KH, KW), y (N, O, OH, OW); output pixel (oh, ow) reads input rows
 * oh*sh - pt + kh*dh and columns ow*sw - pl + kw*dw (outside [0, H) x [0, W): 0).
 * The bottom / right padding is implied by OH, OW (the caller computes them).
 * 1-D is H = KH = OH = 1. Results do not depend on the thread count. */
typedef struct {
    int64_t N, C, H, W, O, KH, KW, OH, OW;
    int64_t sh, sw, pt, pl, dh, dw, groups;
} fnn_conv2d_shape;
/* y = act(conv(x, weight) + bias); bias (O,) or NULL */
fnn_status fnn_conv2d_forward(float *y, const float *x, const float *weight, const float *bias,
                              const fnn_conv2d_shape *s, fnn_activation act);
/* Gradients of y = conv(x, weight) + bias given dy (N, O, OH, OW), each output
 * overwritten, each skipped when NULL: dx (N, C, H, W), dweight (O, C/groups,
 * KH, KW), dbias (O,). x is read only for dweight. */
fnn_status fnn_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dy,
                               const float *x, const float *weight, const fnn_conv2d_shape *s);
/* ---- pooling over NCHW planes (pool.c, pool_api.c) ------------------------
 * inp / dinp are (P, H, W) and out / dout / indices (P, OH, OW), P = N*C planes;
 * 1-D pooling is H = 1 with a 1-row kernel. The geometry is checked here
 * (kernel, stride, dilation >= 1, padding <= kernel/2, OH/OW >= 1 as the caller
 * computed them from the floor/ceil rule); windows are clipped to the input and
 * max padding acts as -inf. Indices are int64 flat offsets into each plane's H*W
 * (PyTorch's return_indices). A NaN in a window is the max (its last one, as
 * PyTorch). Threads split over whole planes, so results never depend on them.
 * Backward writes dinp (not accumulated). */
typedef struct {
    int64_t H, W, OH, OW;       /* input and output plane sizes */
    int64_t kh, kw, sh, sw;     /* kernel and stride */
    int64_t ph, pw, dh, dw;     /* padding (top/left = bottom/right) and dilation */
} fnn_pool_geom;
fnn_status fnn_max_pool2d_forward(float *out, int64_t *indices, const float *inp, int64_t P,
                                  const fnn_pool_geom *g);
/* dinp (P, H, W) = scatter-add of dout (P, OH, OW) at indices (P, OH, OW); an index
 * outside [0, H*W) is FNN_ERR_ARG before anything is written. Also adaptive max's. */
fnn_status fnn_max_pool2d_backward(float *dinp, const float *dout, const int64_t *indices,
                                   int64_t P, const fnn_pool_geom *g);
/* average over the clipped window divided by divisor_override when > 0, else the
 * window size within the padded input (count_include_pad) or within the input */
fnn_status fnn_avg_pool2d_forward(float *out, const float *inp, int64_t P, const fnn_pool_geom *g,
                                  int count_include_pad, int64_t divisor_override);
fnn_status fnn_avg_pool2d_backward(float *dinp, const float *dout, int64_t P,
                                   const fnn_pool_geom *g, int count_include_pad,
                                   int64_t divisor_override);
/* adaptive pooling: only H, W, OH, OW of g are read; bin i along an axis of size
 * In -> Out covers [floor(i*In/Out), ceil((i+1)*In/Out)) */
fnn_status fnn_adaptive_avg_pool2d_forward(float *out, const float *inp, int64_t P,
                                           const fnn_pool_geom *g);
fnn_status fnn_adaptive_avg_pool2d_backward(float *dinp, const float *dout, int64_t P,
                                            const fnn_pool_geom *g);
fnn_status fnn_adaptive_max_pool2d_forward(float *out, int64_t *indices, const float *inp,
                                           int64_t P, const fnn_pool_geom *g);

/* ---- recurrent layers, one layer and direction per call (rnn/rnn_api.c) ----
 * Dimension letters: T time steps, N batch, I input features, H hidden units,
 * G gates per unit (the cell's), P the LSTM's projection size (proj_size; 0:
 * none) and R = P or H, the width of the state h and of the output. Time-major:
 * x (T, N, I) C-contiguous; y is the output sequence, row (t, n) at
 * y + (t*N + n)*ldy (ldy >= R: a bidirectional layer's two directions write the
 * two halves of one (T, N, 2R) array). Weights as torch.nn: w_ih (G*H, I),
 * w_hh (G*H, R), b_ih, b_hh (G*H,) (both or neither), gate blocks of rows in the
 * cell's order; w_hr (P, H) with a projection (h = (o tanh(c)) w_hr^T), else
 * NULL. States h0, h_n (N, R), c0, c_n (N, H); a NULL h0 / c0 is zeros.
 * lengths (N,) int64 or NULL: the valid steps of each sequence,
 * 1 <= lengths[n] <= T, non-increasing (sorted longest first); past its length
 * a sequence's output is 0 and its state stays, so h_n is the state after its
 * last valid step (the reverse direction starts there), as torch's
 * pack_padded_sequence gives. reverse: the sequence runs from t = T-1 down.
 * Threads split the batch (each runs every step of its rows) or, for a small
 * batch without projection, the hidden units; each row's arithmetic is the
 * same either way, so results do not depend on the thread count. */
typedef enum {
    FNN_RNN_TANH = 0,   /* G = 1: h = tanh(x W_ih^T + b_ih + h_prev W_hh^T + b_hh) */
    FNN_RNN_RELU = 1,   /* G = 1, the same with relu */
    FNN_RNN_LSTM = 2,   /* G = 4, gates (i, f, g, o): c = f c_prev + i g, h = o tanh(c) */
    FNN_RNN_GRU = 3,    /* G = 3, gates (r, z, n) as torch.nn.GRU:
                           n = tanh(x W_in^T + b_in + r (h_prev W_hn^T + b_hn)),
                           h = (1 - z) n + z h_prev */
    FNN_RNN_CELL_COUNT = 4
} fnn_rnn_cell;
typedef struct {
    int64_t T, N;          /* time steps, batch */
    int64_t input_size;    /* I (not a field named I: <complex.h> defines that) */
    int64_t H;
    int64_t proj_size;     /* P: LSTM only, 0 <= P < H */
    int64_t ldy;
    fnn_rnn_cell cell;
    int reverse;
} fnn_rnn_shape;
/* floats of the workspace one forward fills for its backward */
int64_t fnn_rnn_workspace_floats(const fnn_rnn_shape *s);
/* y (see above), h_n, c_n (LSTM; each may be NULL). workspace: NULL, or
 * fnn_rnn_workspace_floats(s) floats that fnn_rnn_backward then reads. */
fnn_status fnn_rnn_forward(float *y, float *h_n, float *c_n, float *workspace, const float *x,
                           const float *h0, const float *c0, const float *w_ih,
                           const float *w_hh, const float *w_hr, const float *b_ih,
                           const float *b_hh, const int64_t *lengths, const fnn_rnn_shape *s);
/* Backward of one fnn_rnn_forward, given its workspace (which holds x too;
 * overwritten: one backward per forward) and the gradients dy (rows as y, ldy) of the output
 * sequence and dh_n (N, R), dc_n (N, H) of the final state (each NULL for
 * zero). Each output is skipped when NULL: dx (T, N, I) (+)= by accumulate_dx;
 * dh0 (N, R), dc0 (N, H) written; dw_ih, dw_hh, dw_hr, db_ih, db_hh += (the
 * weights' gradients accumulate). */
fnn_status fnn_rnn_backward(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh,
                            float *dw_hr, float *db_ih, float *db_hh, const float *dy,
                            const float *dh_n, const float *dc_n, float *workspace,
                            const float *w_ih, const float *w_hh, const float *w_hr,
                            const int64_t *lengths, const fnn_rnn_shape *s, int accumulate_dx);

/* ---- embedding lookup (embedding.c, embedding_api.c) --------------------------
 * Dimension letters: V rows of the table, E embedding size, L lookups.
 * weight (V, E), indices (L,) int64, out / dout (L, E). An index outside
 * [0, V) is FNN_ERR_LABEL before anything is written. */
fnn_status fnn_embedding_forward(float *out, const float *weight, const int64_t *indices,
                                 int64_t L, int64_t V, int64_t E);
/* dweight (V, E) += dout rows scattered to their indices, in index order (each
 * column range by one thread, so results do not depend on the thread count);
 * rows whose index is padding_idx (-1: none) are skipped; scale_grad_by_freq
 * divides each row by the count of its index among the L lookups. */
fnn_status fnn_embedding_backward(float *dweight, const float *dout, const int64_t *indices,
                                  int64_t L, int64_t V, int64_t E, int64_t padding_idx,
                                  int scale_grad_by_freq);

/* ---- scaled dot-product attention (attention.c, attention_api.c) ------------
 * Dimension letters: B batch, H heads, L queries, S keys, E the query / key head
 * size, Ev the value head size. Each operand is B x H matrices addressed by
 * element strides: row r of head (b, h) of q starts at q + b*q.b + h*q.h + r*q.row,
 * and its E (or Ev) values are contiguous. So q, k, v may be views of one packed
 * projection (B, T, 3*H*E): q.b = T*3*H*E, q.h = E, q.row = 3*H*E, k and v offset by
 * H*E and 2*H*E; out may be (B, L, H*Ev) with no transposing copy. The gradients
 * dq, dk, dv take the strides of q, k, v, dout those of out.
 *   out = softmax(scale * q k^T + mask) (dropped out) v, per head
 * mask: an additive float mask (L, S) per head, row j of head (b, h) at
 * mask + b*mask.b + h*mask.h + j*mask.row (strides 0 broadcast), or NULL.
 * causal: query i sees keys j <= i only (top-left aligned, as torch's is_causal);
 * only those scores are computed, to the micro-tile. A query that sees no key with
 * a finite score gets zero output (and zero gradients), as torch's CPU flash kernel.
 * drop (B, H, L, S) contiguous or NULL: the dropout factors (0 or 1 / (1 - p)) the
 * probabilities are multiplied by. probs (B, H, L, S) and lse (B, H, L) contiguous:
 * the probabilities before dropout and the rows' logsumexp. Each (b, h) head is
 * computed by one thread (the forward also splits long heads into blocks of query
 * rows), so results do not depend on the thread count. */
typedef struct {
    int64_t b, h, row;
} fnn_attention_strides;
typedef struct {
    int64_t B, H, L, S, E, Ev;
    fnn_attention_strides q, k, v, out, mask;
    fnn_attention_strides dout, dq, dk, dv; /* backward only */
    float scale;
    int causal;
} fnn_attention_shape;
/* out and lse written; probs written when not NULL (a per-thread scratch holds each
 * head's otherwise) */
fnn_status fnn_attention_forward(float *out, float *lse, float *probs, const float *q,
                                 const float *k, const float *v, const float *mask,
                                 const float *drop, const fnn_attention_shape *s);
/* dq, dk, dv written from dout and the forward's out, lse and probs (NULL: recomputed
 * from q, k, mask and lse), with D = rowsum(dout * out):
 *   dv = (P drop)^T dout;  dP = dout v^T;  dS = P (dP drop - D);
 *   dq = scale dS k;  dk = scale dS^T q */
fnn_status fnn_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                  const float *out, const float *lse, const float *probs,
                                  const float *q, const float *k, const float *v,
                                  const float *mask, const float *drop,
                                  const fnn_attention_shape *s);

#ifdef __cplusplus
}
#endif
#endif /* FASTNN_H */
