/*
 * norm.c - the loops of batch norm and group norm, forward and backward.
 *
 * Compiled once per ISA (see simd.h). Dimension letters: N batch, C channels,
 * S spatial size (1 for (N, C), L for (N, C, L), H*W for (N, C, H, W)),
 * W a run of channels processed together (S == 1 layout). norm_api.c splits
 * channels (batch norm) or (n, group) blocks (group norm) over threads.
 *
 * Two layouts of the elements one statistic covers:
 *   plane: N blocks of S contiguous floats, `stride` floats apart (channel c of
 *          (N, C, S) starts at c * S with stride C * S; a group of group norm is
 *          one block of C/G * S floats);
 *   cols:  W columns of an (N, ld) matrix, S == 1: lanes run across channels.
 * Sums are float64, into FNN_NORM_LANES fixed lanes per element position and
 * added in a fixed tree, in portable C (the compiler vectorises it; without
 * -ffp-contract it gives the same bits on every ISA). Two passes: the mean, then
 * the squared deviations from it, so a channel of equal values has variance 0
 * and xhat exactly 0. The element-wise passes use simd.h.
 * The file ends with this ISA's fnn_norm_kernels (kernels.h).
 */
#include "simd.h"
#include "kernels.h"

#define LANES FNN_NORM_LANES
#define COLS 64 /* columns summed together in the cols layout (stack accumulators) */

static double lane_total(const double *acc) {
    double t[LANES];
    for (int l = 0; l < LANES; l++) t[l] = acc[l];
    for (int h = LANES / 2; h > 0; h /= 2)
        for (int l = 0; l < h; l++) t[l] += t[l + h];
    return t[0];
}

/* ---- statistics ------------------------------------------------------------ */

/* *mean = the mean of x, *m2 = sum of (x - mean)^2; x is N blocks of S, `stride` apart */
static void FNN_K(moments_plane)(double *mean, double *m2, const float *x, int64_t N, int64_t S,
                                 int64_t stride) {
    double acc[LANES] = {0};
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * stride;
        int64_t s = 0;
        for (; s + LANES <= S; s += LANES)
            for (int l = 0; l < LANES; l++) acc[l] += (double)p[s + l];
        for (int l = 0; s < S; s++, l++) acc[l] += (double)p[s];
    }
    double mu = lane_total(acc) / (double)(N * S);
    for (int l = 0; l < LANES; l++) acc[l] = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * stride;
        int64_t s = 0;
        for (; s + LANES <= S; s += LANES)
            for (int l = 0; l < LANES; l++) {
                double d = (double)p[s + l] - mu;
                acc[l] += d * d;
            }
        for (int l = 0; s < S; s++, l++) {
            double d = (double)p[s] - mu;
            acc[l] += d * d;
        }
    }
    *mean = mu;
    *m2 = lane_total(acc);
}

/* mean[j], m2[j] (W,) of column j of x (N, ld) */
static void FNN_K(moments_cols)(double *mean, double *m2, const float *x, int64_t N, int64_t W,
                                int64_t ld) {
    for (int64_t j0 = 0; j0 < W; j0 += COLS) {
        int64_t w = W - j0 < COLS ? W - j0 : COLS;
        double acc[COLS] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *p = x + n * ld + j0;
            for (int64_t j = 0; j < w; j++) acc[j] += (double)p[j];
        }
        double mu[COLS];
        for (int64_t j = 0; j < w; j++) {
            mu[j] = acc[j] / (double)N;
            acc[j] = 0.0;
        }
        for (int64_t n = 0; n < N; n++) {
            const float *p = x + n * ld + j0;
            for (int64_t j = 0; j < w; j++) {
                double d = (double)p[j] - mu[j];
                acc[j] += d * d;
            }
        }
        for (int64_t j = 0; j < w; j++) {
            mean[j0 + j] = mu[j];
            m2[j0 + j] = acc[j];
        }
    }
}

/* ---- forward: out = (x - mean) * scale + shift ------------------------------
 * (scale = invstd * weight, shift = bias), so x == mean gives exactly bias */

/* out, x: N blocks of S, `stride` apart */
static void FNN_K(affine_plane)(float *out, const float *x, int64_t N, int64_t S, int64_t stride,
                                float mean, float scale, float shift) {
    vf m = vf_set1(mean), a = vf_set1(scale), b = vf_set1(shift);
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * stride;
        float *q = out + n * stride;
        for (int64_t s = 0; s < S; s += FNN_VW) {
            int64_t w = vf_lanes(S - s);
            vf_store_w(q + s, vf_fmadd(vf_sub(vf_load_w(p + s, w, 0.0f), m), a, b), w);
        }
    }
}

/* out, x (N, ld), columns [0, W); mean, scale, shift (W,) */
static void FNN_K(affine_cols)(float *out, const float *x, int64_t N, int64_t W, int64_t ld,
                               const float *mean, const float *scale, const float *shift) {
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * ld;
        float *q = out + n * ld;
        for (int64_t j = 0; j < W; j += FNN_VW) {
            int64_t w = vf_lanes(W - j);
            vf d = vf_sub(vf_load_w(p + j, w, 0.0f), vf_load_w(mean + j, w, 0.0f));
            vf_store_w(q + j, vf_fmadd(d, vf_load_w(scale + j, w, 0.0f),
                                       vf_load_w(shift + j, w, 0.0f)), w);
        }
    }
}

/* ---- backward ---------------------------------------------------------------
 * forward: y = (x - mean) * invstd * weight + bias
 * the reduction: *sdy = sum dy, *sdyx = sum dy * (x - mean)            (float64)
 * the element pass: dx (+)= a * dy + b * (x - mean) + c, the caller's a, b, c
 * being torch's dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)). */

/* dy, x: N blocks of S, `stride` apart */
static void FNN_K(dot_plane)(double *sdy, double *sdyx, const float *dy, const float *x,
                             int64_t N, int64_t S, int64_t stride, float mean) {
    double a1[LANES] = {0}, a2[LANES] = {0};
    double mu = (double)mean;
    for (int64_t n = 0; n < N; n++) {
        const float *g = dy + n * stride, *p = x + n * stride;
        int64_t s = 0;
        for (; s + LANES <= S; s += LANES)
            for (int l = 0; l < LANES; l++) {
                double gd = (double)g[s + l];
                a1[l] += gd;
                a2[l] += gd * ((double)p[s + l] - mu);
            }
        for (int l = 0; s < S; s++, l++) {
            double gd = (double)g[s];
            a1[l] += gd;
            a2[l] += gd * ((double)p[s] - mu);
        }
    }
    *sdy = lane_total(a1);
    *sdyx = lane_total(a2);
}

/* sdy[j], sdyx[j] (W,) over column j of dy, x (N, ld); mean (W,) */
static void FNN_K(dot_cols)(double *sdy, double *sdyx, const float *dy, const float *x,
                            int64_t N, int64_t W, int64_t ld, const float *mean) {
    for (int64_t j0 = 0; j0 < W; j0 += COLS) {
        int64_t w = W - j0 < COLS ? W - j0 : COLS;
        double a1[COLS] = {0}, a2[COLS] = {0}, mu[COLS];
        for (int64_t j = 0; j < w; j++) mu[j] = (double)mean[j0 + j];
        for (int64_t n = 0; n < N; n++) {
            const float *g = dy + n * ld + j0, *p = x + n * ld + j0;
            for (int64_t j = 0; j < w; j++) {
                double gd = (double)g[j];
                a1[j] += gd;
                a2[j] += gd * ((double)p[j] - mu[j]);
            }
        }
        for (int64_t j = 0; j < w; j++) {
            sdy[j0 + j] = a1[j];
            sdyx[j0 + j] = a2[j];
        }
    }
}

FNN_INLINE void put_w(float *p, vf a, int64_t w, int accumulate) {
    if (accumulate) a = vf_add(vf_load_w(p, w, 0.0f), a);
    vf_store_w(p, a, w);
}

/* dx, dy, x: N blocks of S, `stride` apart */
static void FNN_K(dx_plane)(float *dx, const float *dy, const float *x, int64_t N, int64_t S,
                            int64_t stride, float mean, float a, float b, float c,
                            int accumulate) {
    vf m = vf_set1(mean), va = vf_set1(a), vb = vf_set1(b), vc = vf_set1(c);
    for (int64_t n = 0; n < N; n++) {
        int64_t off = n * stride;
        for (int64_t s = 0; s < S; s += FNN_VW) {
            int64_t w = vf_lanes(S - s);
            vf d = vf_sub(vf_load_w(x + off + s, w, 0.0f), m);
            vf r = vf_fmadd(va, vf_load_w(dy + off + s, w, 0.0f), vf_fmadd(vb, d, vc));
            put_w(dx + off + s, r, w, accumulate);
        }
    }
}

/* dx, dy, x (N, ld), columns [0, W); mean, a, b, c (W,) */
static void FNN_K(dx_cols)(float *dx, const float *dy, const float *x, int64_t N, int64_t W,
                           int64_t ld, const float *mean, const float *a, const float *b,
                           const float *c, int accumulate) {
    for (int64_t n = 0; n < N; n++) {
        int64_t off = n * ld;
        for (int64_t j = 0; j < W; j += FNN_VW) {
            int64_t w = vf_lanes(W - j);
            vf d = vf_sub(vf_load_w(x + off + j, w, 0.0f), vf_load_w(mean + j, w, 0.0f));
            vf r = vf_fmadd(vf_load_w(a + j, w, 0.0f), vf_load_w(dy + off + j, w, 0.0f),
                            vf_fmadd(vf_load_w(b + j, w, 0.0f), d, vf_load_w(c + j, w, 0.0f)));
            put_w(dx + off + j, r, w, accumulate);
        }
    }
}

const fnn_norm_kernels FNN_K(fnn_norm_kernels) = {
    .moments_plane = FNN_K(moments_plane),
    .moments_cols = FNN_K(moments_cols),
    .affine_plane = FNN_K(affine_plane),
    .affine_cols = FNN_K(affine_cols),
    .dot_plane = FNN_K(dot_plane),
    .dot_cols = FNN_K(dot_cols),
    .dx_plane = FNN_K(dx_plane),
    .dx_cols = FNN_K(dx_cols),
};
