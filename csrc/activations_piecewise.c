/*
 * activations_piecewise.c - the piecewise-linear element-wise activations,
 * forward and backward side by side: hardtanh (and relu6 through it),
 * hardsigmoid, hardswish, threshold, softshrink, hardshrink.
 *
 * Compiled once per ISA (see simd.h); the loops are activation_map.h's, so
 * every element gets the same bits wherever a thread's range starts. Every
 * array is (n,); each backward takes the forward input x. A NaN input gives a
 * NaN output; the backward masks are strict comparisons, so they are 0 at NaN.
 * The file ends with this ISA's fnn_piecewise_kernels (kernels.h).
 */
#include "activation_lanes.h"

/* ---- hardtanh, a = min_val, b = max_val: out = min(max(x, a), b);
 *      dx = dout where a < x < b, else 0 ------------------------------------- */
FNN_INLINE vf hardtanh_f(vf x, fnn_vparams p) { return vf_min(p.b, vf_max(p.a, x)); } /* NaN passes */
FNN_INLINE vf hardtanh_g(vf dout, vf x, fnn_vparams p) {
    return vf_select(vf_gt(x, p.a), vf_select(vf_lt(x, p.b), dout, vf_zero()), vf_zero());
}
FNN_MAP_FORWARD(hardtanh_forward, hardtanh_f)
FNN_MAP_BACKWARD(hardtanh_backward, hardtanh_g)

/* -3 < x < 3 */
FNN_INLINE vm within3(vf x) { return vf_lt(vf_abs(x), vf_set1(3.0f)); }

/* ---- hardsigmoid: out = min(max(x + 3, 0), 6) / 6; dx = dout / 6 where |x| < 3 */
FNN_INLINE vf hardsigmoid_f(vf x, fnn_vparams p) {
    (void)p;
    return vf_div(ramp6(x), vf_set1(6.0f));
}
FNN_INLINE vf hardsigmoid_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    return vf_select(within3(x), vf_div(dout, vf_set1(6.0f)), vf_zero());
}
FNN_MAP_FORWARD(hardsigmoid_forward, hardsigmoid_f)
FNN_MAP_BACKWARD(hardsigmoid_backward, hardsigmoid_g)

/* ---- hardswish: out = x min(max(x + 3, 0), 6) / 6 (0 below -3, so -inf gives 0);
 *      dx = dout * (x < -3 ? 0 : x > 3 ? 1 : x / 3 + 1/2) ---------------------- */
FNN_INLINE vf hardswish_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    vf slope = vf_fmadd(x, vf_set1(1.0f / 3.0f), vf_set1(0.5f));
    vf d = vf_select(vf_gt(x, vf_set1(3.0f)), dout, vf_mul(dout, slope));
    return vf_select(vf_lt(x, vf_set1(-3.0f)), vf_zero(), d);
}
FNN_MAP_FORWARD(hardswish_forward, hardswish_f)
FNN_MAP_BACKWARD(hardswish_backward, hardswish_g)

/* ---- threshold, a = threshold, b = value: out = x > a ? x : b;
 *      dx = dout where x > a, else 0 ------------------------------------------ */
FNN_INLINE vf threshold_f(vf x, fnn_vparams p) {
    return vf_keep_nan(x, vf_select(vf_gt(x, p.a), x, p.b));
}
FNN_INLINE vf threshold_g(vf dout, vf x, fnn_vparams p) {
    return vf_select(vf_gt(x, p.a), dout, vf_zero());
}
FNN_MAP_FORWARD(threshold_forward, threshold_f)
FNN_MAP_BACKWARD(threshold_backward, threshold_g)

/* ---- softshrink, a = lambd: out = x > a ? x - a : x < -a ? x + a : 0 ------- */
FNN_INLINE vf softshrink_f(vf x, fnn_vparams p) {
    vf inner = vf_select(vf_lt(x, vf_neg(p.a)), vf_add(x, p.a), vf_zero());
    return vf_keep_nan(x, vf_select(vf_gt(x, p.a), vf_sub(x, p.a), inner));
}
FNN_MAP_FORWARD(softshrink_forward, softshrink_f)

/* ---- hardshrink, a = lambd: out = |x| > a ? x : 0 --------------------------- */
FNN_INLINE vf hardshrink_f(vf x, fnn_vparams p) {
    return vf_keep_nan(x, vf_select(vf_gt(vf_abs(x), p.a), x, vf_zero()));
}
FNN_MAP_FORWARD(hardshrink_forward, hardshrink_f)

/* ---- both shrinks' backward, a = lambd: dx = dout where |x| > a, else 0 ---- */
FNN_INLINE vf shrink_g(vf dout, vf x, fnn_vparams p) {
    return vf_select(vf_gt(vf_abs(x), p.a), dout, vf_zero());
}
FNN_MAP_BACKWARD(shrink_backward, shrink_g)

const fnn_piecewise_kernels FNN_K(fnn_piecewise_kernels) = {
    .hardtanh_forward = FNN_K(hardtanh_forward),
    .hardsigmoid_forward = FNN_K(hardsigmoid_forward),
    .hardswish_forward = FNN_K(hardswish_forward),
    .threshold_forward = FNN_K(threshold_forward),
    .softshrink_forward = FNN_K(softshrink_forward),
    .hardshrink_forward = FNN_K(hardshrink_forward),
    .hardtanh_backward = FNN_K(hardtanh_backward),
    .hardsigmoid_backward = FNN_K(hardsigmoid_backward),
    .hardswish_backward = FNN_K(hardswish_backward),
    .threshold_backward = FNN_K(threshold_backward),
    .shrink_backward = FNN_K(shrink_backward),
};
