/*
 * activations.c - element-wise activations, forward and backward side by side.
 *
 * Compiled once per ISA (see simd.h). Each op is one vector function of a
 * lane; FNN_MAP_FORWARD and FNN_MAP_BACKWARD turn it into a loop over n floats
 * whose ragged tail goes through the same function with a masked load, so every
 * element gets bit-for-bit the same result wherever a thread's range starts.
 * Dimension letter: n, the element count; every array is (n,). GLU's halves
 * and PReLU's weight-gradient blocks are laid out by activations_api.c.
 * The piecewise-linear maps are in activations_piecewise.c. The file ends
 * with this ISA's fnn_activation_kernels (kernels.h).
 */
#include "activation_lanes.h"

/* ---- relu: out = max(x, 0); NaN stays NaN -------------------------------- */
/* max returns x when x compares equal to 0, so a negative denormal that DAZ
 * reads as -0 would come out as itself: adding 0 makes it +0 (and -0 +0) */
FNN_INLINE vf relu_f(vf x, fnn_vparams p) { (void)p; return vf_add(vf_max(vf_zero(), x), vf_zero()); }
/* d/dx relu = (x > 0) */
FNN_INLINE vf relu_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    return vf_select(vf_gt(x, vf_zero()), dout, vf_zero());
}
FNN_MAP_FORWARD(relu_forward, relu_f)
FNN_MAP_BACKWARD(relu_backward, relu_g)

/* ---- leaky_relu: out = x > 0 ? x : slope * x ----------------------------- */
FNN_INLINE vf leaky_relu_f(vf x, fnn_vparams slope) {
    return vf_select(vf_lt(x, vf_zero()), vf_mul(x, slope.a), x);
}
FNN_INLINE vf leaky_relu_g(vf dout, vf x, fnn_vparams slope) {
    return vf_select(vf_gt(x, vf_zero()), dout, vf_mul(dout, slope.a));
}
FNN_MAP_FORWARD(leaky_relu_forward, leaky_relu_f)
FNN_MAP_BACKWARD(leaky_relu_backward, leaky_relu_g)

/* ---- sigmoid: y = 1 / (1 + exp(-x)); dx = dout * y * (1 - y), y saved ---- */
FNN_INLINE vf sigmoid_f(vf x, fnn_vparams p) { (void)p; return vf_sigmoid(x); }
FNN_INLINE vf sigmoid_g(vf dout, vf y, fnn_vparams p) {
    (void)p;
    return vf_mul(dout, vf_fnmadd(y, y, y));
}
FNN_MAP_FORWARD(sigmoid_forward, sigmoid_f)
FNN_MAP_BACKWARD(sigmoid_backward, sigmoid_g)

/* ---- tanh: y = tanh(x); dx = dout * (1 - y^2), y saved ------------------- */
FNN_INLINE vf tanh_f(vf x, fnn_vparams p) { (void)p; return vf_tanh(x); }
FNN_INLINE vf tanh_g(vf dout, vf y, fnn_vparams p) {
    (void)p;
    return vf_mul(dout, vf_fnmadd(y, y, vf_set1(1.0f)));
}
FNN_MAP_FORWARD(tanh_forward, tanh_f)
FNN_MAP_BACKWARD(tanh_backward, tanh_g)

/* ---- gelu, erf form: y = x Phi(x); dx = dout * (Phi(x) + x phi(x)) ------- */
FNN_INLINE vf gelu_erf_f(vf x, fnn_vparams p) { (void)p; return vf_gelu_erf(x); }
FNN_INLINE vf gelu_erf_g(vf dout, vf x, fnn_vparams p) {
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
FNN_INLINE vf gelu_tanh_f(vf x, fnn_vparams p) { (void)p; return vf_gelu_tanh(x); }
FNN_INLINE vf gelu_tanh_g(vf dout, vf x, fnn_vparams p) {
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

/* ---- silu: y = x sigmoid(x) (silu_f, activation_lanes.h);
 *      dx = dout * s (1 + x (1 - s)) -------------------------------------------- */
FNN_INLINE vf silu_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    vf s = vf_sigmoid(x);
    vf one_minus_s = vf_sub(vf_set1(1.0f), s);
    return vf_mul(dout, vf_mul(s, vf_fmadd(x, one_minus_s, vf_set1(1.0f))));
}
FNN_MAP_FORWARD(silu_forward, silu_f)
FNN_MAP_BACKWARD(silu_backward, silu_g)

/* ---- elu family: out = x > 0 ? b x : a expm1(c x) (elu_f, activation_lanes.h,
 *      which says what a, b, c are for ELU, SELU and CELU);
 *      dx = dout * (x > 0 ? b : a c exp(c x)) ------------------------------------ */
FNN_INLINE vf elu_g(vf dout, vf x, fnn_vparams p) {
    vf negative = vf_mul(vf_mul(p.a, p.c), vf_exp(vf_mul(x, p.c)));
    return vf_mul(dout, vf_select(vf_gt(x, vf_zero()), p.b, negative));
}
FNN_MAP_FORWARD(elu_forward, elu_f)
FNN_MAP_BACKWARD(elu_backward, elu_g)

/* ---- softplus, a = beta, b = threshold: z = beta x;
 *      out = z > threshold ? x : log(1 + exp(z)) / beta, where
 *      log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)) never overflows;
 *      dx = dout * (z > threshold ? 1 : sigmoid(z)) ---------------------------- */
FNN_INLINE vf softplus_f(vf x, fnn_vparams p) {
    vf z = vf_mul(x, p.a);
    vf log1p_exp = vf_add(vf_max(z, vf_zero()), vf_log1p_01(vf_exp(vf_neg(vf_abs(z)))));
    return vf_select(vf_gt(z, p.b), x, vf_div(log1p_exp, p.a));
}
FNN_INLINE vf softplus_g(vf dout, vf x, fnn_vparams p) {
    vf z = vf_mul(x, p.a);
    return vf_select(vf_gt(z, p.b), dout, vf_mul(dout, vf_sigmoid(z)));
}
FNN_MAP_FORWARD(softplus_forward, softplus_f)
FNN_MAP_BACKWARD(softplus_backward, softplus_g)

/* ---- mish: out = x t, t = tanh(softplus(x)) = m / (m + 2), m = e (e + 2),
 *      e = exp(x): one exp and one division, full relative precision for
 *      negative x; t is 1 in float32 from x = 20 on, where e is clamped.
 *      dx = dout * (t + x sigmoid(x) (1 - t^2)); mish_f, mish_t and mish_clamp are in
 *      activation_lanes.h ---------------------------------------------------------- */
FNN_INLINE vf mish_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    vf xc = mish_clamp(x);
    vf e = vf_exp(xc);
    vf t = mish_t(e);
    vf s = vf_div(e, vf_add(vf_set1(1.0f), e));
    return vf_mul(dout, vf_fmadd(vf_mul(xc, s), vf_fnmadd(t, t, vf_set1(1.0f)), t));
}
FNN_MAP_FORWARD(mish_forward, mish_f)
FNN_MAP_BACKWARD(mish_backward, mish_g)

/* ---- log_sigmoid: out = -softplus(-x) = min(x, 0) - log1p(exp(-|x|));
 *      dx = dout * sigmoid(-x) ------------------------------------------------ */
FNN_INLINE vf log_sigmoid_f(vf x, fnn_vparams p) {
    (void)p;
    return vf_sub(vf_min(x, vf_zero()), vf_log1p_01(vf_exp(vf_neg(vf_abs(x)))));
}
FNN_INLINE vf log_sigmoid_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    vf e = vf_exp(vf_neg(vf_abs(x)));
    return vf_mul(dout, vf_sigmoid_given_exp(vf_neg(x), e));
}
FNN_MAP_FORWARD(log_sigmoid_forward, log_sigmoid_f)
FNN_MAP_BACKWARD(log_sigmoid_backward, log_sigmoid_g)

/* ---- softsign: out = x / (1 + |x|), +-1 at +-inf; dx = dout / (1 + |x|)^2 -- */
FNN_INLINE vf softsign_f(vf x, fnn_vparams p) {
    (void)p;
    vf xc = vf_min(vf_set1(FLT_MAX), vf_max(vf_set1(-FLT_MAX), x)); /* NaN passes */
    return vf_div(xc, vf_add(vf_set1(1.0f), vf_abs(xc)));
}
FNN_INLINE vf softsign_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    vf d = vf_add(vf_set1(1.0f), vf_abs(x));
    return vf_div(dout, vf_mul(d, d));
}
FNN_MAP_FORWARD(softsign_forward, softsign_f)
FNN_MAP_BACKWARD(softsign_backward, softsign_g)

/* ---- tanhshrink: out = x - tanh(x); dx = dout * tanh(x)^2 ----------------
 * Below |x| = FNN_TANHSHRINK_SPLIT, where x - tanh(x) would cancel, it is
 * x^3 P(x^2), P the Taylor series of (x - tanh x) / x^3 to s^9 (truncation
 * under 3e-8 relative); coefficients highest degree first. */
#define FNN_TANHSHRINK_SPLIT 0.625f
static const float FNN_TANHSHRINK_P[10] = {
    -9.691537957e-05f, 2.391291142e-04f, -5.900274409e-04f, 1.455834387e-03f,
    -3.592128037e-03f, 8.863235530e-03f, -2.186948854e-02f, 5.396825397e-02f,
    -1.333333333e-01f, 3.333333333e-01f};
FNN_INLINE vf tanhshrink_f(vf x, fnn_vparams p) {
    (void)p;
    vf s = vf_mul(x, x);
    vf q = vf_set1(FNN_TANHSHRINK_P[0]);
    for (int i = 1; i < 10; i++) q = vf_fmadd(q, s, vf_set1(FNN_TANHSHRINK_P[i]));
    vf series = vf_mul(vf_mul(x, s), q);
    return vf_select(vf_lt(vf_abs(x), vf_set1(FNN_TANHSHRINK_SPLIT)), series,
                     vf_sub(x, vf_tanh(x)));
}
FNN_INLINE vf tanhshrink_g(vf dout, vf x, fnn_vparams p) {
    (void)p;
    vf t = vf_tanh(x);
    return vf_mul(dout, vf_mul(t, t));
}
FNN_MAP_FORWARD(tanhshrink_forward, tanhshrink_f)
FNN_MAP_BACKWARD(tanhshrink_backward, tanhshrink_g)

/* ---- glu on n pairs: out = a sigmoid(b);
 *      da = dout sigmoid(b), db = dout a sigmoid(b) (1 - sigmoid(b)) ----------- */
/* out (n,) = a (n,) * sigmoid(b (n,)) */
static void FNN_K(glu_forward)(float *out, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + FNN_VW <= n; i += FNN_VW)
        vf_store(out + i, vf_mul(vf_load(a + i), vf_sigmoid(vf_load(b + i))));
    if (i < n)
        vf_storen(out + i, vf_mul(vf_loadn(a + i, n - i), vf_sigmoid(vf_loadn(b + i, n - i))),
                  n - i);
}
/* da, db (n,) (+)= d of out = a sigmoid(b), given dout, a, b (n,); w lanes */
FNN_INLINE void FNN_K(glu_backward_lanes)(float *da, float *db, const float *dout,
                                          const float *a, const float *b, int64_t w,
                                          int accumulate) {
    vf g = vf_load_w(dout, w, 0.0f), s = vf_sigmoid(vf_load_w(b, w, 0.0f));
    vf dav = vf_mul(g, s);
    vf dbv = vf_mul(vf_mul(dav, vf_load_w(a, w, 0.0f)), vf_sub(vf_set1(1.0f), s));
    if (accumulate) {
        dav = vf_add(vf_load_w(da, w, 0.0f), dav);
        dbv = vf_add(vf_load_w(db, w, 0.0f), dbv);
    }
    vf_store_w(da, dav, w);
    vf_store_w(db, dbv, w);
}
static void FNN_K(glu_backward)(float *da, float *db, const float *dout, const float *a,
                                const float *b, int64_t n, int accumulate) {
    for (int64_t i = 0; i < n; i += FNN_VW)
        FNN_K(glu_backward_lanes)(da + i, db + i, dout + i, a + i, b + i, vf_lanes(n - i),
                                  accumulate);
}

/* ---- prelu's weight gradient over one block: sum of (x > 0 ? 0 : x dout),
 *      x, dout (n,); float lanes in a fixed order, added up in double -------- */
static double FNN_K(prelu_weight_grad)(const float *dout, const float *inp, int64_t n) {
    vf acc = vf_zero();
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf x = vf_load_w(inp + i, w, 0.0f);
        acc = vf_add(acc, vf_select(vf_gt(x, vf_zero()), vf_zero(),
                                    vf_mul(x, vf_load_w(dout + i, w, 0.0f))));
    }
    float lanes[FNN_VW];
    vf_store(lanes, acc);
    double total = 0.0;
    for (int l = 0; l < FNN_VW; l++) total += lanes[l];
    return total;
}

/* ---- prelu with a channel per element (inner = 1: a (N, C) row at a time):
 *      weight (n,) lines up with inp, so the slope is a vector ------------------ */
/* out (n,) = x < 0 ? weight x : x, inp and weight (n,) (leaky_relu_f's select) */
static void FNN_K(prelu_channels_forward)(float *out, const float *inp, const float *weight,
                                          int64_t n) {
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf x = vf_load_w(inp + i, w, 0.0f);
        vf_store_w(out + i, vf_select(vf_lt(x, vf_zero()),
                                      vf_mul(x, vf_load_w(weight + i, w, 0.0f)), x), w);
    }
}
/* dinp (n,) (+)= x > 0 ? dout : weight dout, and if dweight is not NULL
 * dweight (n,) += x > 0 ? 0 : x dout (float, one row added at a time) */
static void FNN_K(prelu_channels_backward)(float *dinp, float *dweight, const float *dout,
                                           const float *inp, const float *weight, int64_t n,
                                           int accumulate) {
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf x = vf_load_w(inp + i, w, 0.0f), d = vf_load_w(dout + i, w, 0.0f);
        vm positive = vf_gt(x, vf_zero());
        if (dinp) {
            vf g = vf_select(positive, d, vf_mul(d, vf_load_w(weight + i, w, 0.0f)));
            if (accumulate) g = vf_add(vf_load_w(dinp + i, w, 0.0f), g);
            vf_store_w(dinp + i, g, w);
        }
        if (dweight)
            vf_store_w(dweight + i, vf_add(vf_load_w(dweight + i, w, 0.0f),
                                           vf_select(positive, vf_zero(), vf_mul(x, d))), w);
    }
}

/* ---- the bare vector math, for accuracy checks --------------------------- */
FNN_INLINE vf exp_f(vf x, fnn_vparams p) { (void)p; return vf_exp(x); }
FNN_INLINE vf expm1_f(vf x, fnn_vparams p) { (void)p; return vf_expm1(x); }
FNN_INLINE vf log_f(vf x, fnn_vparams p) { (void)p; return vf_log(x); }
FNN_INLINE vf erf_f(vf x, fnn_vparams p) { (void)p; return vf_erf(x); }
FNN_MAP_FORWARD(exp_map, exp_f)
FNN_MAP_FORWARD(expm1_map, expm1_f)
FNN_MAP_FORWARD(log_map, log_f)
FNN_MAP_FORWARD(erf_map, erf_f)

const fnn_activation_kernels FNN_K(fnn_activation_kernels) = {
    .relu_forward = FNN_K(relu_forward),
    .leaky_relu_forward = FNN_K(leaky_relu_forward),
    .sigmoid_forward = FNN_K(sigmoid_forward),
    .tanh_forward = FNN_K(tanh_forward),
    .gelu_erf_forward = FNN_K(gelu_erf_forward),
    .gelu_tanh_forward = FNN_K(gelu_tanh_forward),
    .silu_forward = FNN_K(silu_forward),
    .elu_forward = FNN_K(elu_forward),
    .softplus_forward = FNN_K(softplus_forward),
    .mish_forward = FNN_K(mish_forward),
    .log_sigmoid_forward = FNN_K(log_sigmoid_forward),
    .softsign_forward = FNN_K(softsign_forward),
    .tanhshrink_forward = FNN_K(tanhshrink_forward),
    .relu_backward = FNN_K(relu_backward),
    .leaky_relu_backward = FNN_K(leaky_relu_backward),
    .sigmoid_backward = FNN_K(sigmoid_backward),
    .tanh_backward = FNN_K(tanh_backward),
    .gelu_erf_backward = FNN_K(gelu_erf_backward),
    .gelu_tanh_backward = FNN_K(gelu_tanh_backward),
    .silu_backward = FNN_K(silu_backward),
    .elu_backward = FNN_K(elu_backward),
    .softplus_backward = FNN_K(softplus_backward),
    .mish_backward = FNN_K(mish_backward),
    .log_sigmoid_backward = FNN_K(log_sigmoid_backward),
    .softsign_backward = FNN_K(softsign_backward),
    .tanhshrink_backward = FNN_K(tanhshrink_backward),
    .glu_forward = FNN_K(glu_forward),
    .glu_backward = FNN_K(glu_backward),
    .prelu_weight_grad = FNN_K(prelu_weight_grad),
    .prelu_channels_forward = FNN_K(prelu_channels_forward),
    .prelu_channels_backward = FNN_K(prelu_channels_backward),
    .exp = FNN_K(exp_map),
    .expm1 = FNN_K(expm1_map),
    .log = FNN_K(log_map),
    .erf = FNN_K(erf_map),
};
