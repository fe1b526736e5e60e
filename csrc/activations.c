/*
 * activations.c - element-wise activations, forward and backward side by side.
 *
 * Compiled once per ISA (see simd.h). Each op is one vector function of a
 * lane; FNN_MAP and FNN_GRAD turn it into a loop over n floats whose ragged
 * tail goes through the same function with a masked load, so every element
 * gets bit-for-bit the same result wherever a thread's range starts.
 * All arrays are (n,).
 */
#include "vmath.h"
#include "kernels.h"

/* out[i] = f(inp[i]) */
#define FNN_MAP(name, f)                                                        \
    void FNN_K(name)(float *out, const float *inp, int64_t n, float param) {    \
        const vf p = vf_set1(param);                                            \
        (void)p;                                                                \
        int64_t i = 0;                                                          \
        for (; i + FNN_VW <= n; i += FNN_VW) vf_store(out + i, f(vf_load(inp + i), p)); \
        if (i < n) vf_storen(out + i, f(vf_loadn(inp + i, n - i), p), n - i);   \
    }

/* dinp[i] (+)= g(dout[i], saved[i]); the accumulate branch is hoisted by
 * instantiating the loop twice through an always-inline helper */
#define FNN_GRAD(name, g)                                                       \
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
    void FNN_K(name)(float *dinp, const float *dout, const float *saved, int64_t n, \
                     float param, int accumulate) {                             \
        if (accumulate) FNN_K(name##_loop)(dinp, dout, saved, n, vf_set1(param), 1); \
        else FNN_K(name##_loop)(dinp, dout, saved, n, vf_set1(param), 0);       \
    }

/* ---- relu: out = max(x, 0); NaN stays NaN -------------------------------- */
FNN_INLINE vf relu_f(vf x, vf p) { (void)p; return vf_max(vf_zero(), x); }
/* d/dx relu = (x > 0) */
FNN_INLINE vf relu_g(vf dout, vf x, vf p) {
    (void)p;
    return vf_select(vf_gt(x, vf_zero()), dout, vf_zero());
}
FNN_MAP(fnn_relu, relu_f)
FNN_GRAD(fnn_relu_grad, relu_g)

/* ---- leaky_relu: out = x > 0 ? x : slope * x ----------------------------- */
FNN_INLINE vf leaky_relu_f(vf x, vf slope) {
    return vf_select(vf_lt(x, vf_zero()), vf_mul(x, slope), x);
}
FNN_INLINE vf leaky_relu_g(vf dout, vf x, vf slope) {
    return vf_select(vf_gt(x, vf_zero()), dout, vf_mul(dout, slope));
}
FNN_MAP(fnn_leaky_relu, leaky_relu_f)
FNN_GRAD(fnn_leaky_relu_grad, leaky_relu_g)

/* ---- sigmoid: y = 1 / (1 + exp(-x)); dx = dout * y * (1 - y), y saved ---- */
FNN_INLINE vf sigmoid_f(vf x, vf p) { (void)p; return vf_sigmoid(x); }
FNN_INLINE vf sigmoid_g(vf dout, vf y, vf p) {
    (void)p;
    return vf_mul(dout, vf_fnmadd(y, y, y));
}
FNN_MAP(fnn_sigmoid, sigmoid_f)
FNN_GRAD(fnn_sigmoid_grad, sigmoid_g)

/* ---- tanh: y = tanh(x); dx = dout * (1 - y^2), y saved ------------------- */
FNN_INLINE vf tanh_f(vf x, vf p) { (void)p; return vf_tanh(x); }
FNN_INLINE vf tanh_g(vf dout, vf y, vf p) {
    (void)p;
    return vf_mul(dout, vf_fnmadd(y, y, vf_set1(1.0f)));
}
FNN_MAP(fnn_tanh, tanh_f)
FNN_GRAD(fnn_tanh_grad, tanh_g)

/* ---- gelu, erf form: y = x Phi(x); dx = dout * (Phi(x) + x phi(x)) ------- */
FNN_INLINE vf gelu_erf_f(vf x, vf p) { (void)p; return vf_gelu_erf(x); }
FNN_INLINE vf gelu_erf_g(vf dout, vf x, vf p) {
    (void)p;
    fnn_normal_parts n = vf_normal_parts(x);
    return vf_mul(dout, vf_fmadd(x, vf_normal_pdf(n), vf_normal_cdf(n, x)));
}
FNN_MAP(fnn_gelu_erf, gelu_erf_f)
FNN_GRAD(fnn_gelu_erf_grad, gelu_erf_g)

/* ---- gelu, tanh form: y = x (1 + tanh(u)) / 2 = x sigmoid(2u),
 *      u = sqrt(2/pi) (x + 0.044715 x^3);
 *      dx = dout * (s + x * 2 s (1 - s) * du/dx), s = sigmoid(2u),
 *      du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2) ---------------------------- */
#define FNN_GELU_K0 0.797884561f /* sqrt(2/pi) */
#define FNN_GELU_K1 0.044715f
/* beyond |x| = 20, s is exactly 0 or 1 and x^2 could overflow: clamp (NaN passes) */
FNN_INLINE vf gelu_tanh_clamp(vf x) { return vf_min(vf_set1(20.0f), vf_max(vf_set1(-20.0f), x)); }
FNN_INLINE vf gelu_tanh_s(vf x) {
    vf x2 = vf_mul(x, x);
    vf u = vf_mul(vf_set1(2.0f * FNN_GELU_K0), vf_fmadd(vf_mul(x2, vf_set1(FNN_GELU_K1)), x, x));
    return vf_sigmoid(u);
}
FNN_INLINE vf gelu_tanh_f(vf x, vf p) { (void)p; return vf_mul(x, gelu_tanh_s(gelu_tanh_clamp(x))); }
FNN_INLINE vf gelu_tanh_g(vf dout, vf x, vf p) {
    (void)p;
    x = gelu_tanh_clamp(x);
    vf s = gelu_tanh_s(x);
    vf du = vf_mul(vf_set1(2.0f * FNN_GELU_K0),
                   vf_fmadd(vf_mul(x, x), vf_set1(3.0f * FNN_GELU_K1), vf_set1(1.0f)));
    vf ds = vf_mul(vf_fnmadd(s, s, s), du); /* d sigmoid(2u) / dx */
    return vf_mul(dout, vf_fmadd(x, ds, s));
}
FNN_MAP(fnn_gelu_tanh, gelu_tanh_f)
FNN_GRAD(fnn_gelu_tanh_grad, gelu_tanh_g)

/* ---- silu: y = x sigmoid(x); dx = dout * s (1 + x (1 - s)) --------------- */
FNN_INLINE vf silu_f(vf x, vf p) { (void)p; return vf_mul(x, vf_sigmoid(x)); }
FNN_INLINE vf silu_g(vf dout, vf x, vf p) {
    (void)p;
    vf s = vf_sigmoid(x);
    vf one_minus_s = vf_sub(vf_set1(1.0f), s);
    return vf_mul(dout, vf_mul(s, vf_fmadd(x, one_minus_s, vf_set1(1.0f))));
}
FNN_MAP(fnn_silu, silu_f)
FNN_GRAD(fnn_silu_grad, silu_g)

/* ---- the bare vector math, for accuracy checks --------------------------- */
FNN_INLINE vf exp_f(vf x, vf p) { (void)p; return vf_exp(x); }
FNN_INLINE vf erf_f(vf x, vf p) { (void)p; return vf_erf(x); }
FNN_MAP(fnn_exp, exp_f)
FNN_MAP(fnn_erf, erf_f)
