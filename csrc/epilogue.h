/*
 * epilogue.h - the activations a GEMM or convolution tile applies to its output
 * while it is still in registers (internal; one ISA, see simd.h).
 *
 * fnn_epilogue_activate(x, act) maps one vector by an fnn_activation code.
 * Besides relu, gelu, sigmoid and tanh it runs the element-wise kernels' own
 * lane functions (activation_lanes.h), so Linear + SiLU fused gives the bits
 * of Linear and then SiLU. gemm/kernel.c and conv/kernel.c both call it.
 */
#ifndef FNN_EPILOGUE_H
#define FNN_EPILOGUE_H

#include "activation_lanes.h"
#include "fastnn.h"

FNN_INLINE vf fnn_epilogue_activate(vf x, fnn_activation act) {
    switch (act) {
    case FNN_ACT_RELU: return vf_max(vf_zero(), x);
    case FNN_ACT_GELU: return vf_gelu_erf(x);
    case FNN_ACT_GELU_TANH: return vf_gelu_tanh(x);
    case FNN_ACT_SIGMOID: return vf_sigmoid(x);
    case FNN_ACT_TANH: return vf_tanh(x);
    case FNN_ACT_SILU: return silu_f(x, fnn_vparams_set(FNN_NO_PARAMS));
    case FNN_ACT_MISH: return mish_f(x, fnn_vparams_set(FNN_NO_PARAMS));
    case FNN_ACT_HARDSWISH: return hardswish_f(x, fnn_vparams_set(FNN_NO_PARAMS));
    case FNN_ACT_ELU: return elu_f(x, fnn_vparams_set(FNN_ELU_PARAMS(1.0f)));
    case FNN_ACT_SELU: return elu_f(x, fnn_vparams_set(FNN_SELU_PARAMS));
    default: return x;
    }
}

#endif /* FNN_EPILOGUE_H */
