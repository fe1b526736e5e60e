/*
 * activations.c - element-wise activations, forward and backward side by side.
 *
 * Compiled once per ISA (see simd.h). Each op is one vector function of a
 * lane; FNN_MAP_FORWARD and FNN_MAP_BACKWARD turn it into a loop over n floats
 * whose ragged tail goes through the same function with a masked load, so every
 * element gets bit-for-bit the same result wherever a thread's range starts.
 * Dimension letter: n, the element count; every array is (n,).
 * The file ends with this ISA's fnn_activation_kernels (kernels.h).
 */
#include "vmath.h"
#include "kernels.h"

/* out (n,) = f(inp (n,)) */
#define FNN_MAP_FORWARD(name, f)                                                \
    static void FNN_K(name)(float *out, const float *inp, int64_t n, float param) { \
        const vf p = vf_set1(param);                                            \
        (void)p;                                                                \
        int64_t i = 0;                                                          \
        for (; i + FNN_VW <= n; i += FNN_VW) vf_store(out + i, f(vf_load(inp + i), p)); \
        if (i < n) vf_storen(out + i, f(vf_loadn(inp + i, n - i), p), n - i);   \
    }

/* dinp (n,) (+)= g(dout (n,), saved (n,)); the accumulate branch is hoisted by
 * instantiating the loop twice through an always-inline helper */
#define FNN_MAP_BACKWARD(name, g)                                               \
    FNN_INLINE void FNN_K(name##_loop)(float *dinp, const float *dout, const float *saved, \
                                       int64_t n, vf p, int accumulate) {       \
        int64_t i = 0;                                                          \
        for (; i + FNN_VW <= n; i += FNN_VW) {                                  \
            vf d = g(vf_load(dout + i), vf_load(saved + i), p);                 \
            if (accumulate) d = vf_add(vf_load(dinp + i), d);                   \
            vf_store(dinp + i, d);                                              \
        }                                                                       \
        if (i < n) {                                                            \
            int64_t r = n - i;                                                  \
            vf d = g(vf_loadn(dout + i, r), vf_loadn(saved + i, r), p);         \
            if (accumulate) d = vf_add(vf_loadn(dinp + i, r), d);               \
            vf_storen(dinp + i, d, r);                                          \
        }                                                                       \
    }                                                                           \
    static void FNN_K(name)(float *dinp, const float *dout, const float *saved, int64_t n, \
                            float param, int accumulate) {                      \
        if (accumulate) FNN_K(name##_loop)(dinp, dout, saved, n, vf_set1(param), 1); \
        else FNN_K(name##_loop)(dinp, dout, saved, n, vf_set1(param), 0);       \
    }

/* ---- relu: out = max(x, 0); NaN stays NaN -------------------------------- */
/* max returns x when x compares equal to 0, so a negative denormal that DAZ
 * reads as -0 would come out as itself: adding 0 makes it +0 (and -0 +0) */
FNN_INLINE vf relu_f(vf x, vf p) { (void)p; return vf_add(vf_max(vf_zero(), x), vf_zero()); }
/* d/dx relu = (x > 0) */
FNN_INLINE vf relu_g(vf dout, vf x, vf p) {
    (void)p;
    return vf_select(vf_gt(x, vf_zero()), dout, vf_zero());
}
FNN_MAP_FORWARD(relu_forward, relu_f)
FNN_MAP_BACKWARD(relu_backward, relu_g)

/* ---- leaky_relu: out = x > 0 ? x : slope * x ----------------------------- */
FNN_INLINE vf leaky_relu_f(vf x, vf slope) {
    return vf_select(vf_lt(x, vf_zero()), vf_mul(x, slope), x);
}
FNN_INLINE vf leaky_relu_g(vf dout, vf x, vf slope) {
    return vf_select(vf_gt(x, vf_zero()), dout, vf_mul(dout, slope));
}
FNN_MAP_FORWARD(leaky_relu_forward, leaky_relu_f)
FNN_MAP_BACKWARD(leaky_relu_backward, leaky_relu_g)

/* ---- sigmoid: y = 1 / (1 + exp(-x)); dx = dout * y * (1 - y), y saved ---- */
FNN_INLINE vf sigmoid_f(vf x, vf p) { (void)p; return vf_sigmoid(x); }
FNN_INLINE vf sigmoid_g(vf dout, vf y, vf p) {
    (void)p;
    return vf_mul(dout, vf_fnmadd(y, y, y));
}
FNN_MAP_FORWARD(sigmoid_forward, sigmoid_f)
FNN_MAP_BACKWARD(sigmoid_backward, sigmoid_g)

/* ---- tanh: y = tanh(x); dx = dout * (1 - y^2), y saved ------------------- */
FNN_INLINE vf tanh_f(vf x, vf p) { (void)p; return vf_tanh(x); }
FNN_INLINE vf tanh_g(vf dout, vf y, vf p) {
    (void)p;
    return vf_mul(dout, vf_fnmadd(y, y, vf_set1(1.0f)));
}
FNN_MAP_FORWARD(tanh_forward, tanh_f)
FNN_MAP_BACKWARD(tanh_backward, tanh_g)

/* ---- gelu, erf form: y = x Phi(x); dx = dout * (Phi(x) + x phi(x)) ------- */
FNN_INLINE vf gelu_erf_f(vf x, vf p) { (void)p; return vf_gelu_erf(x); }
FNN_INLINE vf gelu_erf_g(vf dout, vf x, vf p) {
    (void)p;
    fnn_normal_parts n = vf_normal_parts(x);
    return vf_mul(dout, vf_fmadd(x, vf_normal_pdf(n), vf_normal_cdf(n, x)));
}
FNN_MAP_FORWARD(gelu_erf_forward, gelu_erf_f)
FNN_MAP_BACKWARD(gelu_erf_backward, gelu_erf_g)

/* ---- gelu, tanh form (vmath.h): y = x (1 + tanh(u)) / 2 = x sigmoid(2u),
 *      u = sqrt(2/pi) (x + 0.044715 x^3);
 *      dx = dout * (s + x * 2 s (1 - s) * du/dx), s = sigmoid(2u),
 *      du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2) ---------------------------- */
FNN_INLINE vf gelu_tanh_f(vf x, vf p) { (void)p; return vf_gelu_tanh(x); }
FNN_INLINE vf gelu_tanh_g(vf dout, vf x, vf p) {
    (void)p;
    x = vf_gelu_tanh_clamp(x);
    vf s = vf_gelu_tanh_s(x);
    vf du = vf_mul(vf_set1(2.0f * FNN_GELU_K0),
                   vf_fmadd(vf_mul(x, x), vf_set1(3.0f * FNN_GELU_K1), vf_set1(1.0f)));
    vf ds = vf_mul(vf_fnmadd(s, s, s), du); /* d sigmoid(2u) / dx */
    return vf_mul(dout, vf_fmadd(x, ds, s));
}
FNN_MAP_FORWARD(gelu_tanh_forward, gelu_tanh_f)
FNN_MAP_BACKWARD(gelu_tanh_backward, gelu_tanh_g)

/* ---- silu: y = x sigmoid(x); dx = dout * s (1 + x (1 - s)) --------------- */
FNN_INLINE vf silu_f(vf x, vf p) { (void)p; return vf_mul(x, vf_sigmoid(x)); }
FNN_INLINE vf silu_g(vf dout, vf x, vf p) {
    (void)p;
    vf s = vf_sigmoid(x);
    vf one_minus_s = vf_sub(vf_set1(1.0f), s);
    return vf_mul(dout, vf_mul(s, vf_fmadd(x, one_minus_s, vf_set1(1.0f))));
}
FNN_MAP_FORWARD(silu_forward, silu_f)
FNN_MAP_BACKWARD(silu_backward, silu_g)

/* ---- the bare vector math, for accuracy checks --------------------------- */
FNN_INLINE vf exp_f(vf x, vf p) { (void)p; return vf_exp(x); }
FNN_INLINE vf erf_f(vf x, vf p) { (void)p; return vf_erf(x); }
FNN_MAP_FORWARD(exp_map, exp_f)
FNN_MAP_FORWARD(erf_map, erf_f)

const fnn_activation_kernels FNN_K(fnn_activation_kernels) = {
    .relu_forward = FNN_K(relu_forward),
    .leaky_relu_forward = FNN_K(leaky_relu_forward),
    .sigmoid_forward = FNN_K(sigmoid_forward),
    .tanh_forward = FNN_K(tanh_forward),
    .gelu_erf_forward = FNN_K(gelu_erf_forward),
    .gelu_tanh_forward = FNN_K(gelu_tanh_forward),
    .silu_forward = FNN_K(silu_forward),
    .relu_backward = FNN_K(relu_backward),
    .leaky_relu_backward = FNN_K(leaky_relu_backward),
    .sigmoid_backward = FNN_K(sigmoid_backward),
    .tanh_backward = FNN_K(tanh_backward),
    .gelu_erf_backward = FNN_K(gelu_erf_backward),
    .gelu_tanh_backward = FNN_K(gelu_tanh_backward),
    .silu_backward = FNN_K(silu_backward),
    .exp = FNN_K(exp_map),
    .erf = FNN_K(erf_map),
};
