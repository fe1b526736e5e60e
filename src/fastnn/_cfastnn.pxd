# Declarations of csrc/fastnn.h for Cython. Every kernel is nogil and returns
# an fnn_status that _checks.pxi turns into a Python exception.
from libc.stdint cimport int64_t

cdef extern from "fastnn.h" nogil:
    ctypedef enum fnn_status:
        FNN_OK
        FNN_ERR_ARG
        FNN_ERR_LABEL
        FNN_ERR_NOMEM
        FNN_ERR_ISA

    ctypedef enum fnn_isa:
        FNN_ISA_GENERIC
        FNN_ISA_AVX2
        FNN_ISA_AVX512
        FNN_ISA_COUNT

    fnn_status fnn_init(int requested)
    int fnn_active_isa()
    int fnn_best_isa()
    const char *fnn_isa_name(int isa)
    int fnn_isa_compiled(int isa)
    fnn_status fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    int FNN_MAX_THREADS
    int fnn_default_num_threads()
    int fnn_spin_iterations()
    void fnn_set_flush_denormal(int on)
    int fnn_get_flush_denormal()

    size_t FNN_CACHE_MIN_BYTES
    ctypedef struct fnn_cache_info:
        size_t cached_bytes, cached_blocks, live_bytes, live_blocks, hits, misses, limit
    void fnn_cache_init()
    void *fnn_cache_malloc(void *ctx, size_t size)
    void *fnn_cache_calloc(void *ctx, size_t nelem, size_t elsize)
    void *fnn_cache_realloc(void *ctx, void *ptr, size_t new_size)
    void fnn_cache_free(void *ctx, void *ptr, size_t size)
    size_t fnn_cache_empty()
    void fnn_cache_set_limit(size_t bytes)
    void fnn_cache_stats(fnn_cache_info *info)

    fnn_status fnn_relu_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_relu_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_leaky_relu_forward(float *out, const float *inp, int64_t n, float negative_slope)
    fnn_status fnn_leaky_relu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                                       float negative_slope, int accumulate)
    fnn_status fnn_sigmoid_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_sigmoid_backward(float *dinp, const float *dout, const float *out, int64_t n, int accumulate)
    fnn_status fnn_tanh_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_tanh_backward(float *dinp, const float *dout, const float *out, int64_t n, int accumulate)
    fnn_status fnn_gelu_forward(float *out, const float *inp, int64_t n, int approximate_tanh)
    fnn_status fnn_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                                 int approximate_tanh, int accumulate)
    fnn_status fnn_silu_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_silu_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_mish_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_mish_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_log_sigmoid_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_log_sigmoid_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_softsign_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_softsign_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_tanhshrink_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_tanhshrink_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_selu_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_selu_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_relu6_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_relu6_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_hardsigmoid_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_hardsigmoid_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_hardswish_forward(float *out, const float *inp, int64_t n)
    fnn_status fnn_hardswish_backward(float *dinp, const float *dout, const float *inp, int64_t n, int accumulate)
    fnn_status fnn_elu_forward(float *out, const float *inp, int64_t n, float alpha)
    fnn_status fnn_elu_backward(float *dinp, const float *dout, const float *inp, int64_t n, float alpha,
                                   int accumulate)
    fnn_status fnn_celu_forward(float *out, const float *inp, int64_t n, float alpha)
    fnn_status fnn_celu_backward(float *dinp, const float *dout, const float *inp, int64_t n, float alpha,
                                    int accumulate)
    fnn_status fnn_softshrink_forward(float *out, const float *inp, int64_t n, float lambd)
    fnn_status fnn_softshrink_backward(float *dinp, const float *dout, const float *inp, int64_t n, float lambd,
                                          int accumulate)
    fnn_status fnn_hardshrink_forward(float *out, const float *inp, int64_t n, float lambd)
    fnn_status fnn_hardshrink_backward(float *dinp, const float *dout, const float *inp, int64_t n, float lambd,
                                          int accumulate)
    fnn_status fnn_softplus_forward(float *out, const float *inp, int64_t n, float beta, float threshold)
    fnn_status fnn_softplus_backward(float *dinp, const float *dout, const float *inp, int64_t n, float beta,
                                        float threshold, int accumulate)
    fnn_status fnn_hardtanh_forward(float *out, const float *inp, int64_t n, float min_val, float max_val)
    fnn_status fnn_hardtanh_backward(float *dinp, const float *dout, const float *inp, int64_t n, float min_val,
                                        float max_val, int accumulate)
    fnn_status fnn_threshold_forward(float *out, const float *inp, int64_t n, float threshold, float value)
    fnn_status fnn_threshold_backward(float *dinp, const float *dout, const float *inp, int64_t n, float threshold,
                                         float value, int accumulate)
    fnn_status fnn_glu_forward(float *out, const float *inp, int64_t outer, int64_t half, int64_t inner)
    fnn_status fnn_glu_backward(float *dinp, const float *dout, const float *inp, int64_t outer, int64_t half,
                                int64_t inner, int accumulate)
    fnn_status fnn_prelu_forward(float *out, const float *inp, const float *weight, int64_t outer, int64_t C,
                                 int64_t inner)
    fnn_status fnn_prelu_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                                  const float *weight, int64_t outer, int64_t C, int64_t inner, int accumulate)
    fnn_status fnn_exp(float *out, const float *inp, int64_t n)
    fnn_status fnn_expm1(float *out, const float *inp, int64_t n)
    fnn_status fnn_log(float *out, const float *inp, int64_t n)
    fnn_status fnn_erf(float *out, const float *inp, int64_t n)

    fnn_status fnn_softmax_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t D)
    fnn_status fnn_softmax_backward(float *dinp, const float *dout, const float *out,
                                    int64_t B, int64_t C, int64_t D, int accumulate)
    fnn_status fnn_log_softmax_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t D)
    fnn_status fnn_log_softmax_backward(float *dinp, const float *dout, const float *out,
                                        int64_t B, int64_t C, int64_t D, int accumulate)

    ctypedef enum fnn_reduction:
        FNN_REDUCTION_NONE
        FNN_REDUCTION_MEAN
        FNN_REDUCTION_SUM
    ctypedef enum fnn_pointwise_loss:
        FNN_LOSS_MSE
        FNN_LOSS_L1
        FNN_LOSS_SMOOTH_L1
        FNN_LOSS_HUBER
        FNN_LOSS_BCE
        FNN_LOSS_BCE_WITH_LOGITS
        FNN_LOSS_SOFT_MARGIN
        FNN_LOSS_KL_DIV
        FNN_LOSS_POISSON_NLL
        FNN_LOSS_MARGIN_RANKING
    ctypedef struct fnn_loss_options:
        const float *weight
        const float *pos_weight
        float param
        int log_space
        int full
    fnn_status fnn_cross_entropy_forward_backward(float *loss, float *losses, float *dlogits,
                                                  const float *logits, const int64_t *labels,
                                                  const float *weight, int64_t N, int64_t C,
                                                  float label_smoothing, int64_t ignore_index,
                                                  fnn_reduction reduction)
    fnn_status fnn_cross_entropy_probs_forward_backward(float *loss, float *losses,
                                                        float *dlogits, const float *logits,
                                                        const float *target, const float *weight,
                                                        int64_t N, int64_t C,
                                                        float label_smoothing,
                                                        fnn_reduction reduction)
    fnn_status fnn_nll_loss_forward_backward(float *loss, float *losses, float *dlogp,
                                             const float *logp, const int64_t *labels,
                                             const float *weight, int64_t N, int64_t C,
                                             int64_t ignore_index, fnn_reduction reduction)
    fnn_status fnn_cosine_embedding_loss_forward_backward(float *loss, float *losses, float *dx1,
                                                          float *dx2, const float *x1,
                                                          const float *x2, const float *y,
                                                          int64_t N, int64_t D, float margin,
                                                          fnn_reduction reduction)
    fnn_status fnn_gaussian_nll_loss_forward_backward(float *loss, float *losses, float *dinput,
                                                      float *dvar, const float *input,
                                                      const float *target, const float *var,
                                                      int64_t n, float eps, int full,
                                                      fnn_reduction reduction)
    fnn_status fnn_pointwise_loss_forward_backward(fnn_pointwise_loss kind, float *loss,
                                                   float *losses, float *dpred, const float *pred,
                                                   const float *target, int64_t n,
                                                   const fnn_loss_options *options,
                                                   fnn_reduction reduction, double divisor)

    fnn_status fnn_sgd_step(float *param, const float *grad, float *momentum_buf, int64_t n,
                            float lr, float momentum, float dampening, int nesterov,
                            float weight_decay, int first_step, int maximize)
    fnn_status fnn_adam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                             float *max_exp_avg_sq, int64_t n, float lr, float beta1, float beta2,
                             float eps, float weight_decay, int decoupled, int64_t step,
                             int maximize)
    fnn_status fnn_rmsprop_step(float *param, const float *grad, float *square_avg, float *grad_avg,
                                float *momentum_buf, int64_t n, float lr, float alpha, float eps,
                                float weight_decay, float momentum, int maximize)
    fnn_status fnn_adagrad_step(float *param, const float *grad, float *sum, int64_t n, float lr,
                                float lr_decay, float weight_decay, float eps, int64_t step,
                                int maximize)
    fnn_status fnn_adamax_step(float *param, const float *grad, float *exp_avg, float *exp_inf,
                               int64_t n, float lr, float beta1, float beta2, float eps,
                               float weight_decay, int64_t step, int maximize)
    fnn_status fnn_radam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                              int64_t n, float lr, float beta1, float beta2, float eps,
                              float weight_decay, int decoupled, int64_t step, int maximize)
    fnn_status fnn_nadam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                              float *mu_product, int64_t n, float lr, float beta1, float beta2,
                              float eps, float weight_decay, float momentum_decay, int decoupled,
                              int64_t step, int maximize)
    fnn_status fnn_adadelta_step(float *param, const float *grad, float *square_avg,
                                 float *acc_delta, int64_t n, float lr, float rho, float eps,
                                 float weight_decay, int maximize)
    fnn_status fnn_asgd_step(float *param, const float *grad, float *ax, float *eta, float *mu,
                             int64_t n, float lr, float lambd, float alpha, float t0,
                             float weight_decay, int64_t step, int maximize)
    fnn_status fnn_rprop_step(float *param, const float *grad, float *prev, float *step_size,
                              int64_t n, float etaminus, float etaplus, float step_size_min,
                              float step_size_max, int maximize)

    ctypedef enum fnn_activation:
        FNN_ACT_NONE
        FNN_ACT_RELU
        FNN_ACT_GELU
        FNN_ACT_SIGMOID
        FNN_ACT_TANH
        FNN_ACT_GELU_TANH
        FNN_ACT_COUNT
    const char *fnn_activation_name(int act)
    ctypedef enum fnn_bias_mode:
        FNN_BIAS_NONE
        FNN_BIAS_ROW
        FNN_BIAS_COL

    fnn_status fnn_sgemm_ex(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                            float *C, int64_t ldc, const float *bias, fnn_bias_mode bias_mode,
                            fnn_activation act)
    fnn_status fnn_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                                         float alpha, const float *A, int64_t lda, int64_t stride_a,
                                         const float *B, int64_t ldb, int64_t stride_b, float beta,
                                         float *C, int64_t ldc, int64_t stride_c, int64_t batch_count)
    void fnn_gemm_tile(int64_t *mr, int64_t *nr, int64_t *kc, int64_t *mc, int64_t *nc)

    fnn_status fnn_linear_forward(float *out, float *preact, const float *inp, const float *weight,
                                  const float *bias, int64_t M, int64_t IN, int64_t OUT,
                                  fnn_activation act)
    fnn_status fnn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *saved, const float *inp, const float *weight,
                                   int64_t M, int64_t IN, int64_t OUT, fnn_activation act,
                                   int accumulate)
    fnn_status fnn_linear_bias_backward(float *dbias, const float *dout, int64_t M, int64_t N,
                                        int64_t ld, int accumulate)

    fnn_status fnn_fma_probe(int64_t iters, double *flops)

    fnn_status fnn_batch_norm_forward(float *out, float *mean, float *invstd, float *running_mean,
                                      float *running_var, const float *inp, const float *weight,
                                      const float *bias, int64_t N, int64_t C, int64_t S,
                                      float eps, float momentum, int training,
                                      fnn_activation act)
    fnn_status fnn_batch_norm_backward(float *dinp, float *dweight, float *dbias,
                                       const float *dout, const float *mean, const float *invstd,
                                       const float *inp, const float *relu_out,
                                       const float *weight, int64_t N, int64_t C, int64_t S,
                                       int training, int accumulate)
    fnn_status fnn_group_norm_forward(float *out, float *mean, float *invstd, const float *inp,
                                      const float *weight, const float *bias, int64_t N,
                                      int64_t C, int64_t S, int64_t G, float eps)
    fnn_status fnn_group_norm_backward(float *dinp, float *dweight, float *dbias,
                                       const float *dout, const float *mean, const float *invstd,
                                       const float *inp, const float *weight, int64_t N,
                                       int64_t C, int64_t S, int64_t G, int accumulate)
    fnn_status fnn_layer_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                                      const float *weight, const float *bias, int64_t M,
                                      int64_t D, float eps)
    fnn_status fnn_add_layer_norm_forward(float *sum, float *out, float *mean, float *rstd,
                                          const float *inp, const float *residual,
                                          const float *weight, const float *bias, int64_t M,
                                          int64_t D, float eps)
    fnn_status fnn_layer_norm_backward(float *dinp, float *dweight, float *dbias,
                                       const float *dout, const float *mean, const float *rstd,
                                       const float *inp, const float *weight, int64_t M,
                                       int64_t D, int accumulate)
    fnn_status fnn_rms_norm_forward(float *out, float *rstd, const float *inp,
                                    const float *weight, int64_t M, int64_t D, float eps)
    fnn_status fnn_rms_norm_backward(float *dinp, float *dweight, const float *dout,
                                     const float *rstd, const float *inp, const float *weight,
                                     int64_t M, int64_t D, int accumulate)
    ctypedef struct fnn_conv2d_shape:
        int64_t N, C, H, W, O, KH, KW, OH, OW
        int64_t sh, sw, pt, pl, dh, dw, groups
    fnn_status fnn_conv2d_forward(float *y, const float *x, const float *weight, const float *bias,
                                  const fnn_conv2d_shape *s, fnn_activation act)
    fnn_status fnn_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dy,
                                   const float *x, const float *weight, const fnn_conv2d_shape *s)
    # pooling over (P, H, W) planes (pool.c, pool_api.c)
    ctypedef struct fnn_pool_geom:
        int64_t H, W, OH, OW
        int64_t kh, kw, sh, sw
        int64_t ph, pw, dh, dw
    fnn_status fnn_max_pool2d_forward(float *out, int64_t *indices, const float *inp, int64_t P,
                                      const fnn_pool_geom *g)
    fnn_status fnn_max_pool2d_backward(float *dinp, const float *dout, const int64_t *indices,
                                       int64_t P, const fnn_pool_geom *g)
    fnn_status fnn_avg_pool2d_forward(float *out, const float *inp, int64_t P,
                                      const fnn_pool_geom *g, int count_include_pad,
                                      int64_t divisor_override)
    fnn_status fnn_avg_pool2d_backward(float *dinp, const float *dout, int64_t P,
                                       const fnn_pool_geom *g, int count_include_pad,
                                       int64_t divisor_override)
    fnn_status fnn_adaptive_avg_pool2d_forward(float *out, const float *inp, int64_t P,
                                               const fnn_pool_geom *g)
    fnn_status fnn_adaptive_avg_pool2d_backward(float *dinp, const float *dout, int64_t P,
                                                const fnn_pool_geom *g)
    fnn_status fnn_adaptive_max_pool2d_forward(float *out, int64_t *indices, const float *inp,
                                               int64_t P, const fnn_pool_geom *g)
    # recurrent layers, one layer and direction per call (rnn/rnn_api.c)
    ctypedef enum fnn_rnn_cell:
        FNN_RNN_TANH
        FNN_RNN_RELU
        FNN_RNN_LSTM
        FNN_RNN_GRU
    ctypedef struct fnn_rnn_shape:
        int64_t T, N, input_size, H, proj_size, ldy
        fnn_rnn_cell cell
        int reverse
    int64_t fnn_rnn_workspace_floats(const fnn_rnn_shape *s)
    fnn_status fnn_rnn_forward(float *y, float *h_n, float *c_n, float *workspace,
                               const float *x, const float *h0, const float *c0,
                               const float *w_ih, const float *w_hh, const float *w_hr,
                               const float *b_ih, const float *b_hh, const int64_t *lengths,
                               const fnn_rnn_shape *s)
    fnn_status fnn_rnn_backward(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh,
                                float *dw_hr, float *db_ih, float *db_hh, const float *dy,
                                const float *dh_n, const float *dc_n, float *workspace,
                                const float *w_ih, const float *w_hh, const float *w_hr,
                                const int64_t *lengths, const fnn_rnn_shape *s,
                                int accumulate_dx)
    # embedding lookup (embedding.c, embedding_api.c)
    fnn_status fnn_embedding_forward(float *out, const float *weight, const int64_t *indices,
                                     int64_t L, int64_t V, int64_t E)
    fnn_status fnn_embedding_backward(float *dweight, const float *dout, const int64_t *indices,
                                      int64_t L, int64_t V, int64_t E, int64_t padding_idx,
                                      int scale_grad_by_freq)
    ctypedef struct fnn_attention_strides:
        int64_t b, h, row
    ctypedef struct fnn_attention_shape:
        int64_t B, H, L, S, E, Ev
        fnn_attention_strides q, k, v, out, mask
        fnn_attention_strides dout, dq, dk, dv
        float scale
        int causal
    fnn_status fnn_attention_forward(float *out, float *lse, float *probs, const float *q,
                                     const float *k, const float *v, const float *mask,
                                     const float *drop, const fnn_attention_shape *s)
    fnn_status fnn_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                      const float *out, const float *lse, const float *probs,
                                      const float *q, const float *k, const float *v,
                                      const float *mask, const float *drop,
                                      const fnn_attention_shape *s)
