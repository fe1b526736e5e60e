/*
 * table.c - gathers one ISA's kernels into its fnn_kernels table.
 * Compiled once per ISA with the other kernel files (see simd.h, setup.py).
 */
#include "simd.h"
#include "kernels.h"

#define FNN_DECLARE_MAP(name) void FNN_K(name)(float *, const float *, int64_t, float);
#define FNN_DECLARE_GRAD(name) \
    void FNN_K(name)(float *, const float *, const float *, int64_t, float, int);
FNN_DECLARE_MAP(fnn_relu) FNN_DECLARE_MAP(fnn_leaky_relu) FNN_DECLARE_MAP(fnn_sigmoid)
FNN_DECLARE_MAP(fnn_tanh) FNN_DECLARE_MAP(fnn_gelu_erf) FNN_DECLARE_MAP(fnn_gelu_tanh)
FNN_DECLARE_MAP(fnn_silu) FNN_DECLARE_MAP(fnn_exp) FNN_DECLARE_MAP(fnn_erf)
FNN_DECLARE_GRAD(fnn_relu_grad) FNN_DECLARE_GRAD(fnn_leaky_relu_grad)
FNN_DECLARE_GRAD(fnn_sigmoid_grad) FNN_DECLARE_GRAD(fnn_tanh_grad)
FNN_DECLARE_GRAD(fnn_gelu_erf_grad) FNN_DECLARE_GRAD(fnn_gelu_tanh_grad)
FNN_DECLARE_GRAD(fnn_silu_grad)
void FNN_K(fnn_softmax)(float *, const float *, int64_t, int64_t, int64_t, int);
void FNN_K(fnn_softmax_grad)(float *, const float *, const float *, int64_t, int64_t, int64_t,
                             int, int);
double FNN_K(fnn_cross_entropy)(float *, const float *, const int64_t *, int64_t, int64_t,
                                float, int64_t, float);
double FNN_K(fnn_mse)(float *, const float *, const float *, int64_t, float);
double FNN_K(fnn_bce_with_logits)(float *, const float *, const float *, int64_t, float);
void FNN_K(fnn_gemm_ukernel)(int64_t, const float *, const float *, float *, int64_t, int64_t,
                             int64_t, int64_t, int64_t, const fnn_gemm_epilogue *);
void FNN_K(fnn_gemm_ukernel_direct)(int64_t, const float *, int64_t, int, const float *, int64_t,
                                    float *, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    const fnn_gemm_epilogue *);
extern const fnn_gemm_blocking FNN_K(fnn_gemm_blocking);
void FNN_K(fnn_gemm_pack)(float *, const float *, int64_t, int, int64_t, int64_t, int64_t,
                          int64_t, int64_t);
void FNN_K(fnn_colsum)(float *, const float *, int64_t, int64_t, int64_t, int);
float FNN_K(fnn_fma_probe)(int64_t);
void FNN_K(fnn_sgd_step)(float *, const float *, float *, int64_t, const fnn_sgd_coefs *);
void FNN_K(fnn_adam_step)(float *, const float *, float *, float *, float *, int64_t,
                          const fnn_adam_coefs *);
void FNN_K(fnn_rmsprop_step)(float *, const float *, float *, float *, float *, int64_t,
                             const fnn_rmsprop_coefs *);

const fnn_kernels FNN_K(fnn_kernels) = {
    .relu = FNN_K(fnn_relu),
    .leaky_relu = FNN_K(fnn_leaky_relu),
    .sigmoid = FNN_K(fnn_sigmoid),
    .tanh = FNN_K(fnn_tanh),
    .gelu_erf = FNN_K(fnn_gelu_erf),
    .gelu_tanh = FNN_K(fnn_gelu_tanh),
    .silu = FNN_K(fnn_silu),
    .exp = FNN_K(fnn_exp),
    .erf = FNN_K(fnn_erf),
    .relu_grad = FNN_K(fnn_relu_grad),
    .leaky_relu_grad = FNN_K(fnn_leaky_relu_grad),
    .sigmoid_grad = FNN_K(fnn_sigmoid_grad),
    .tanh_grad = FNN_K(fnn_tanh_grad),
    .gelu_erf_grad = FNN_K(fnn_gelu_erf_grad),
    .gelu_tanh_grad = FNN_K(fnn_gelu_tanh_grad),
    .silu_grad = FNN_K(fnn_silu_grad),
    .softmax = FNN_K(fnn_softmax),
    .softmax_grad = FNN_K(fnn_softmax_grad),
    .cross_entropy = FNN_K(fnn_cross_entropy),
    .mse = FNN_K(fnn_mse),
    .bce_with_logits = FNN_K(fnn_bce_with_logits),
    .gemm_ukernel = FNN_K(fnn_gemm_ukernel),
    .gemm_ukernel_direct = FNN_K(fnn_gemm_ukernel_direct),
    .gemm_pack = FNN_K(fnn_gemm_pack),
    .gemm_blocking = &FNN_K(fnn_gemm_blocking),
    .colsum = FNN_K(fnn_colsum),
    .fma_probe = FNN_K(fnn_fma_probe),
    .sgd = FNN_K(fnn_sgd_step),
    .adam = FNN_K(fnn_adam_step),
    .rmsprop = FNN_K(fnn_rmsprop_step),
};
