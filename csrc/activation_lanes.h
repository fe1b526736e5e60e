/*
 * activation_lanes.h - the forward lane functions that both the element-wise
 * kernels (activations.c, activations_piecewise.c) and the GEMM / convolution
 * epilogue (epilogue.h) run, so a fused activation gives the same bits as the
 * separate one (internal; one ISA, see simd.h). Each maps one vector x with the
 * op's options p (activation_map.h's fnn_vparams).
 */
#ifndef FNN_ACTIVATION_LANES_H
#define FNN_ACTIVATION_LANES_H

#include <float.h>

#include "activation_map.h"
#include "vmath.h"

/* the options of an op without any, and of the ELU family (elu_f's a, b, c) */
#define FNN_NO_PARAMS ((fnn_map_params){0.0f, 0.0f, 0.0f})
#define FNN_ELU_PARAMS(alpha) ((fnn_map_params){(alpha), 1.0f, 1.0f})
#define FNN_SELU_PARAMS ((fnn_map_params){FNN_SELU_ALPHA * FNN_SELU_SCALE, FNN_SELU_SCALE, 1.0f})

/* silu: x sigmoid(x) */
FNN_INLINE vf silu_f(vf x, fnn_vparams p) { (void)p; return vf_mul(x, vf_sigmoid(x)); }

/* the elu family: x > 0 ? b x : a expm1(c x), a = alpha * scale, b = scale,
 * c = input_scale (ELU: alpha, 1, 1; SELU: its alpha * scale, scale, 1; CELU:
 * alpha, 1, 1 / alpha) */
FNN_INLINE vf elu_f(vf x, fnn_vparams p) {
    return vf_select(vf_gt(x, vf_zero()), vf_mul(x, p.b), vf_mul(p.a, vf_expm1(vf_mul(x, p.c))));
}

/* mish: x t, t = tanh(softplus(x)) = m / (m + 2), m = e (e + 2), e = exp(x) */
FNN_INLINE vf mish_t(vf e) {
    vf m = vf_mul(e, vf_add(e, vf_set1(2.0f)));
    return vf_div(m, vf_add(m, vf_set1(2.0f)));
}
/* x clamped where mish's factors have saturated: t = 1 above 20, e = 0 below -104,
 * so a product with an infinite x takes the limit (NaN passes) */
FNN_INLINE vf mish_clamp(vf x) { return vf_min(vf_set1(20.0f), vf_max(vf_set1(-104.0f), x)); }
FNN_INLINE vf mish_f(vf x, fnn_vparams p) {
    (void)p;
    vf t = mish_t(vf_exp(mish_clamp(x)));
    return vf_mul(vf_max(vf_set1(-FLT_MAX), x), t);
}

/* min(max(x + 3, 0), 6): hardsigmoid's and hardswish's ramp, times 6; NaN passes */
FNN_INLINE vf ramp6(vf x) {
    return vf_min(vf_set1(6.0f), vf_max(vf_zero(), vf_add(x, vf_set1(3.0f))));
}
/* hardswish: x min(max(x + 3, 0), 6) / 6, 0 below -3 (so -inf gives 0) */
FNN_INLINE vf hardswish_f(vf x, fnn_vparams p) {
    (void)p;
    vf y = vf_div(vf_mul(x, ramp6(x)), vf_set1(6.0f));
    return vf_select(vf_lt(x, vf_set1(-3.0f)), vf_zero(), y);
}

#endif /* FNN_ACTIVATION_LANES_H */
