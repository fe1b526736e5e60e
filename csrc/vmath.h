/*
 * vmath.h - float32 vector math on simd.h: exp, expm1, log1p, tanh, sigmoid, erf and
 * the standard normal CDF/PDF that GELU needs.
 *
 * Every function is defined for the whole float32 range: no overflow inside
 * (inputs are clamped where the result has already saturated), +-inf give the
 * limits, NaN propagates. The polynomial coefficients are our own fits,
 * derived and checked by tools/fit_vmath.py; the measured worst-case errors
 * over all float32 inputs are in docs/accuracy.md (tools/measure_accuracy.py).
 */
#ifndef FNN_VMATH_H
#define FNN_VMATH_H

#include "simd.h"

/* ---- exp ----------------------------------------------------------------
 * x = n*ln2 + r with |r| <= ln2/2; exp(r) = 1 + r + r^2 P(r), then scaled
 * by 2^n with one rounding (vf_ldexp), so subnormal results and overflow to
 * +inf come out right. */
#define FNN_LOG2E 1.44269502f
#define FNN_LN2_HI 0.693145752f  /* ln2 to 15 bits: n*LN2_HI is exact for |n| <= 256 */
#define FNN_LN2_LO 1.42860677e-06f
/* P, highest degree first (tools/fit_vmath.py): 0.84 ulp on |r| <= ln2/2 */
#define FNN_EXP_P4 0.00138198247f
#define FNN_EXP_P3 0.00836868677f
#define FNN_EXP_P2 0.0416682772f
#define FNN_EXP_P1 0.166665211f
#define FNN_EXP_P0 0.49999994f
/* x = n*ln2 + r: n, and exp(r) - 1 = r + r^2 P(r) */
typedef struct {
    vf n, expm1_r;
} fnn_exp_parts;
FNN_INLINE fnn_exp_parts vf_exp_parts(vf x) {
    fnn_exp_parts e;
    vf xc = vf_min(vf_set1(89.0f), vf_max(vf_set1(-104.0f), x)); /* NaN passes */
    e.n = vf_round(vf_mul(xc, vf_set1(FNN_LOG2E)));
    vf r = vf_fnmadd(e.n, vf_set1(FNN_LN2_HI), xc);
    r = vf_fnmadd(e.n, vf_set1(FNN_LN2_LO), r);
    vf p = vf_set1(FNN_EXP_P4);
    p = vf_fmadd(p, r, vf_set1(FNN_EXP_P3));
    p = vf_fmadd(p, r, vf_set1(FNN_EXP_P2));
    p = vf_fmadd(p, r, vf_set1(FNN_EXP_P1));
    p = vf_fmadd(p, r, vf_set1(FNN_EXP_P0));
    e.expm1_r = vf_fmadd(vf_mul(r, r), p, r);
    return e;
}
FNN_INLINE vf vf_exp(vf x) {
    fnn_exp_parts e = vf_exp_parts(x);
    return vf_ldexp(vf_add(vf_set1(1.0f), e.expm1_r), e.n);
}

/* ---- expm1 ----------------------------------------------------------------
 * exp(x) - 1 = 2^n (exp(r) - 1) + (2^n - 1): exp(r) - 1 keeps its relative
 * precision near 0 (n = 0), and 2^n - 1 is exact for the n where the two
 * terms could cancel; below x = -104 it is -1, above 89 +inf. */
FNN_INLINE vf vf_expm1(vf x) {
    fnn_exp_parts e = vf_exp_parts(x);
    vf pow2n_minus_1 = vf_sub(vf_ldexp(vf_set1(1.0f), e.n), vf_set1(1.0f));
    return vf_add(vf_ldexp(e.expm1_r, e.n), pow2n_minus_1);
}

/* ---- log of a reduced argument ------------------------------------------
 * log m for m in [sqrt(1/2), sqrt(2)]: log m = 2 atanh(s), s = (m-1)/(m+1),
 * |s| <= 0.172, by its Taylor series to s^11 (truncation < 2e-9). */
FNN_INLINE vf vf_log_reduced(vf m) {
    vf s = vf_div(vf_sub(m, vf_set1(1.0f)), vf_add(m, vf_set1(1.0f)));
    vf s2 = vf_mul(s, s);
    vf p = vf_set1(1.0f / 11.0f);
    p = vf_fmadd(p, s2, vf_set1(1.0f / 9.0f));
    p = vf_fmadd(p, s2, vf_set1(1.0f / 7.0f));
    p = vf_fmadd(p, s2, vf_set1(1.0f / 5.0f));
    p = vf_fmadd(p, s2, vf_set1(1.0f / 3.0f));
    return vf_fmadd(vf_mul(vf_add(s, s), s2), p, vf_add(s, s));
}
/* k ln2 + log_m, ln2 in two parts */
FNN_INLINE vf vf_add_k_ln2(vf k, vf log_m) {
    return vf_fmadd(k, vf_set1(FNN_LN2_HI), vf_fmadd(k, vf_set1(FNN_LN2_LO), log_m));
}

/* ---- log1p on [0, 1] (all that softplus needs) ------------------------
 * u = 1 + x = 2^k m with k in {0, 1} and m in [sqrt(1/2), sqrt(2)]. The
 * factor x / (u - 1) undoes the rounding of 1 + x, so tiny x keep full
 * relative precision. */
FNN_INLINE vf vf_log1p_01(vf x) {
    vf u = vf_add(vf_set1(1.0f), x);
    vm big = vf_gt(u, vf_set1(1.41421356f));
    vf m = vf_select(big, vf_mul(u, vf_set1(0.5f)), u);
    vf k = vf_select(big, vf_set1(1.0f), vf_zero());
    vf log_u = vf_add_k_ln2(k, vf_log_reduced(m));
    vf du = vf_sub(u, vf_set1(1.0f));
    vf corrected = vf_mul(log_u, vf_div(x, du));
    return vf_select(vf_gt(du, vf_zero()), corrected, x);
}

/* ---- log ------------------------------------------------------------------
 * x = 2^k m with m in [sqrt(1/2), sqrt(2)) (a subnormal x is scaled by 2^24
 * first), log x = k ln2 + log m. 0 gives -inf, +inf gives +inf, x < 0 and NaN
 * give NaN. */
#define FNN_FLT_MIN 1.17549435e-38f
FNN_INLINE vf vf_log(vf x) {
    vm tiny = vf_lt(x, vf_set1(FNN_FLT_MIN));
    vf xs = vf_select(tiny, vf_mul(x, vf_set1(16777216.0f)), x);
    vf k = vf_sub(vf_exponent(xs), vf_select(tiny, vf_set1(24.0f), vf_zero()));
    /* the mantissa bits with the exponent of 1: m in [1, 2) */
    vf m = vf_or(vf_and(xs, vf_set1(0x1.fffffcp-127f) /* bits 0x007fffff */), vf_set1(1.0f));
    vm big = vf_gt(m, vf_set1(1.41421356f));
    m = vf_select(big, vf_mul(m, vf_set1(0.5f)), m);
    k = vf_add(k, vf_select(big, vf_set1(1.0f), vf_zero()));
    vf r = vf_add_k_ln2(k, vf_log_reduced(m));
    r = vf_select(vf_gt(x, vf_set1(0x1.fffffep127f)), vf_set1(INFINITY), r);
    vf zero_or_less = vf_select(vf_lt(x, vf_zero()), vf_set1(NAN), vf_set1(-INFINITY));
    r = vf_select(vf_gt(x, vf_zero()), r, zero_or_less);
    return vf_select(vf_isnan(x), x, r);
}

/* ---- log(1 - p) for p in [0, 1] --------------------------------------------
 * log(u) (-p) / (u - 1) with u = 1 - p: the factor undoes the rounding of
 * 1 - p, so small p keep full relative precision; -p itself where u rounds
 * to 1; p = 1 gives -inf. */
FNN_INLINE vf vf_log1m(vf p) {
    vf u = vf_sub(vf_set1(1.0f), p);
    vf du = vf_sub(u, vf_set1(1.0f));
    vf corrected = vf_mul(vf_log(u), vf_div(vf_neg(p), du));
    return vf_select(vf_lt(du, vf_zero()), corrected, vf_neg(p));
}

/* ---- tanh ---------------------------------------------------------------
 * One branch-free rational form (no exp, one division): with a = min(|x|,
 * X_MAX) and s = a^2, tanh(a) = a P(s) / Q(s), P of degree 6 and Q of degree
 * 3 in s (5 ulp, tools/fit_vmath.py). From X_MAX on, float32 tanh is 1. The
 * result is capped at 1 (the rational overshoots by an ulp near X_MAX) and
 * takes the sign of x. */
#define FNN_TANH_X_MAX 9.01091385f
static const float FNN_TANH_P[7] = {-8.61667169e-14f, 5.32275508e-11f, -2.03069348e-08f,
                                    1.11718955e-05f, 0.00310548232f, 0.130853355f, 1.0f};
static const float FNN_TANH_Q[4] = {0.000254845945f, 0.0245011207f, 0.464186639f, 1.0f};
FNN_INLINE vf vf_tanh(vf x) {
    vf ax = vf_abs(x);
    vf a = vf_min(vf_set1(FNN_TANH_X_MAX), ax); /* NaN passes */
    vf s = vf_mul(a, a);
    vf p = vf_set1(FNN_TANH_P[0]);
    for (int i = 1; i < 7; i++) p = vf_fmadd(p, s, vf_set1(FNN_TANH_P[i]));
    vf q = vf_set1(FNN_TANH_Q[0]);
    for (int i = 1; i < 4; i++) q = vf_fmadd(q, s, vf_set1(FNN_TANH_Q[i]));
    vf t = vf_min(vf_set1(1.0f), vf_div(vf_mul(a, p), q));
    /* ax >= X_MAX (written as > its predecessor, so NaN keeps t) */
    t = vf_select(vf_gt(ax, vf_set1(9.01091290f)), vf_set1(1.0f), t);
    return vf_or(t, vf_and(x, vf_sign_bit()));
}

/* ---- sigmoid ------------------------------------------------------------
 * e = exp(-|x|); 1/(1+e) for x >= 0 and e/(1+e) for x < 0: no cancellation. */
FNN_INLINE vf vf_sigmoid_given_exp(vf x, vf e) {
    vf r = vf_div(vf_set1(1.0f), vf_add(vf_set1(1.0f), e));
    return vf_select(vf_lt(x, vf_zero()), vf_mul(e, r), r);
}
FNN_INLINE vf vf_sigmoid(vf x) { return vf_sigmoid_given_exp(x, vf_exp(vf_neg(vf_abs(x)))); }

/* ---- erf, erfc ----------------------------------------------------------
 * |z| < FNN_ERF_SPLIT: erf(z) = z + z P(z^2) (0.93 ulp; keeping the leading
 * 1 out of P avoids rounding 2/sqrt(pi)).
 * z >= FNN_ERF_SPLIT: erfc(z) = exp(-z^2) G(u), u = 1 / (1 + z), G of degree
 * 9 (4.5 ulp). z^2 is carried as hi + lo (lo exact by FMA) so that
 * exp(-z^2) = exp(-hi) (1 - lo) keeps full relative precision up to z = 9.
 * Coefficients are highest degree first (tools/fit_vmath.py). */
#define FNN_ERF_SPLIT 0.875f
static const float FNN_ERF_P[6] = {-0.000603366003f, 0.00500137592f, -0.0267720427f,
                                   0.112819605f, -0.376125067f, 0.128379151f};
static const float FNN_ERFC_G[10] = {1.03927124f, -2.08631659f, 0.577358186f, 1.76476717f,
                                     -1.57810998f, -0.0648439527f, 0.249400482f,
                                     0.567153454f, 0.56404084f, 3.16737624e-06f};

FNN_INLINE vf vf_erf_small(vf z) {
    vf z2 = vf_mul(z, z);
    vf p = vf_set1(FNN_ERF_P[0]);
    for (int i = 1; i < 6; i++) p = vf_fmadd(p, z2, vf_set1(FNN_ERF_P[i]));
    return vf_fmadd(z, p, z);
}

/* G(u), u = 1 / (1 + a): erfc(a) = exp(-a^2) G for a >= FNN_ERF_SPLIT */
FNN_INLINE vf vf_erfc_g(vf a) {
    vf u = vf_div(vf_set1(1.0f), vf_add(a, vf_set1(1.0f)));
    vf g = vf_set1(FNN_ERFC_G[0]);
    for (int i = 1; i < 10; i++) g = vf_fmadd(g, u, vf_set1(FNN_ERFC_G[i]));
    return g;
}

/* erfc(a) for FNN_ERF_SPLIT <= a <= 10 given a^2 = a2_hi + a2_lo */
FNN_INLINE vf vf_erfc_tail(vf a, vf a2_hi, vf a2_lo) {
    vf e = vf_exp(vf_neg(a2_hi));
    return vf_mul(vf_fnmadd(e, a2_lo, e), vf_erfc_g(a));
}

FNN_INLINE vf vf_erf(vf x) {
    vf a = vf_min(vf_set1(10.0f), vf_abs(x));
    vf hi = vf_mul(a, a);
    vf lo = vf_fma_exact(a, a, vf_neg(hi));
    vf big = vf_sub(vf_set1(1.0f), vf_erfc_tail(a, hi, lo));
    big = vf_or(big, vf_and(x, vf_sign_bit()));
    return vf_select(vf_lt(a, vf_set1(FNN_ERF_SPLIT)), vf_erf_small(x), big);
}

/* ---- the standard normal CDF Phi and PDF phi, for GELU --------------------
 * Phi(x) = erfc(-x / sqrt 2) / 2. Near 0 (|x| / sqrt 2 < FNN_ERF_SPLIT) it is
 * 1/2 + erf/2; in the tails it is e G / 2 (x < 0) or 1 - e G / 2 (x >= 0) with
 * e = exp(-x^2/2) (x^2/2 carried as hi + lo) and G from vf_erfc_tail's fit,
 * so both tails keep their relative precision. phi(x) = e / sqrt(2 pi). */
#define FNN_SQRT1_2 0.707106781f
#define FNN_INV_SQRT_2PI 0.398942280f
typedef struct {
    vf e;       /* exp(-x^2 / 2) */
    vf half_g;  /* G(u) / 2: Phi = e * half_g in the lower tail */
    vf core;    /* 1/2 + erf(x / sqrt 2) / 2, right near 0 */
    vm is_core; /* lanes where core applies */
} fnn_normal_parts;

FNN_INLINE fnn_normal_parts vf_normal_parts(vf x) {
    fnn_normal_parts r;
    vf xa = vf_min(vf_set1(20.0f), vf_abs(x)); /* Phi(-20) and phi(20) round to 0 */
    vf a = vf_mul(xa, vf_set1(FNN_SQRT1_2));
    vf sq = vf_mul(xa, xa);
    vf hi = vf_mul(sq, vf_set1(0.5f));
    vf lo = vf_mul(vf_fma_exact(xa, xa, vf_neg(sq)), vf_set1(0.5f));
    vf e = vf_exp(vf_neg(hi));
    r.e = vf_fnmadd(e, lo, e);
    r.is_core = vf_lt(a, vf_set1(FNN_ERF_SPLIT));
    /* the tail's G (a division and 10 terms) only when some lane needs it */
    r.half_g = vm_all(r.is_core) ? vf_zero() : vf_mul(vf_erfc_g(a), vf_set1(0.5f));
    r.core = vf_fmadd(vf_erf_small(vf_mul(x, vf_set1(FNN_SQRT1_2))), vf_set1(0.5f), vf_set1(0.5f));
    return r;
}

FNN_INLINE vf vf_normal_cdf(fnn_normal_parts p, vf x) {
    vf lower = vf_mul(p.e, p.half_g);
    vf tail = vf_select(vf_lt(x, vf_zero()), lower, vf_sub(vf_set1(1.0f), lower));
    return vf_select(p.is_core, p.core, tail);
}

FNN_INLINE vf vf_normal_pdf(fnn_normal_parts p) { return vf_mul(p.e, vf_set1(FNN_INV_SQRT_2PI)); }

/* x Phi(x); in the lower tail as (x G/2) e, so that Phi's subnormal range
 * (x < -13) is never formed on the way to a normal result */
FNN_INLINE vf vf_gelu_erf(vf x) {
    vf a = vf_mul(vf_abs(x), vf_set1(FNN_SQRT1_2));
    if (vm_all(vf_lt(a, vf_set1(FNN_ERF_SPLIT)))) /* every lane near 0: the core alone */
        return vf_mul(x, vf_fmadd(vf_erf_small(vf_mul(x, vf_set1(FNN_SQRT1_2))), vf_set1(0.5f),
                                  vf_set1(0.5f)));
    fnn_normal_parts p = vf_normal_parts(x);
    vf lower = vf_mul(vf_mul(x, p.half_g), p.e);
    vf upper = vf_mul(x, vf_fnmadd(p.e, p.half_g, vf_set1(1.0f)));
    vf tail = vf_select(vf_lt(x, vf_zero()), lower, upper);
    return vf_select(p.is_core, vf_mul(x, p.core), tail);
}

/* gelu, tanh form: x (1 + tanh(u)) / 2 = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
 * Beyond |x| = 20, sigmoid(2u) is exactly 0 or 1 and x^3 could overflow: the
 * clamp (NaN passes) is applied to the argument of sigmoid only. */
#define FNN_GELU_K0 0.797884561f /* sqrt(2/pi) */
#define FNN_GELU_K1 0.044715f
FNN_INLINE vf vf_gelu_tanh_clamp(vf x) {
    return vf_min(vf_set1(20.0f), vf_max(vf_set1(-20.0f), x));
}
/* sigmoid(2u) of an already clamped x */
FNN_INLINE vf vf_gelu_tanh_s(vf x) {
    vf x2 = vf_mul(x, x);
    vf u = vf_mul(vf_set1(2.0f * FNN_GELU_K0), vf_fmadd(vf_mul(x2, vf_set1(FNN_GELU_K1)), x, x));
    return vf_sigmoid(u);
}
FNN_INLINE vf vf_gelu_tanh(vf x) { return vf_mul(x, vf_gelu_tanh_s(vf_gelu_tanh_clamp(x))); }

#endif /* FNN_VMATH_H */
