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
 * Sums are float64, into fixed lanes by element position (32 in moments, 16 in
 * the backward's two sums) and
 * added in a fixed tree, with GCC vector extensions of 8 doubles (the same
 * lane-wise operations, so the same bits, on every ISA). Two passes: the mean, then
 * the squared deviations from it, so a channel of equal values has variance 0
 * and xhat exactly 0. The element-wise passes use simd.h.
 * The file ends with this ISA's fnn_norm_kernels (kernels.h).
 */
#include "simd.h"
#include "kernels.h"
#include "dsum.h"

#define LANES 16 /* of dot_plane: two vectors of 8 doubles per sum */
#define COLS 64               /* columns summed together in the cols layout (stack accumulators) */

/* ---- statistics ------------------------------------------------------------ */

/* *mean = the mean of x, *m2 = sum of (x - mean)^2; x is N blocks of S, `stride` apart.
 * 32 lanes: four independent chains of vector adds per pass. */
static void FNN_K(moments_plane)(double *mean, double *m2, const float *x, int64_t N, int64_t S,
                                 int64_t stride) {
    d8 acc[4];
    double t[32] = {0};
    for (int i = 0; i < 4; i++) acc[i] = D8_SET1(0.0);
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * stride;
        int64_t s = 0;
        for (; s + 32 <= S; s += 32)
            for (int i = 0; i < 4; i++) acc[i] += LOAD_D8(p + s + 8 * i);
        for (int l = 0; s < S; s++, l++) t[l] += (double)p[s];
    }
    double mu = lane_total(acc, 4, t) / (double)(N * S);
    d8 vmu = D8_SET1(mu);
    for (int i = 0; i < 4; i++) acc[i] = D8_SET1(0.0);
    for (int l = 0; l < 32; l++) t[l] = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * stride;
        int64_t s = 0;
        for (; s + 32 <= S; s += 32)
            for (int i = 0; i < 4; i++) {
                d8 d = LOAD_D8(p + s + 8 * i) - vmu;
                acc[i] += d * d;
            }
        for (int l = 0; s < S; s++, l++) {
            double d = (double)p[s] - mu;
            t[l] += d * d;
        }
    }
    *mean = mu;
    *m2 = lane_total(acc, 4, t);
}

/* mean[j], m2[j] (W,) of column j of x (N, ld) */
static void FNN_K(moments_cols)(double *mean, double *m2, const float *x, int64_t N, int64_t W,
                                int64_t ld) {
    for (int64_t j0 = 0; j0 < W; j0 += COLS) {
        int64_t w = W - j0 < COLS ? W - j0 : COLS, wv = w / 8 * 8;
        d8 acc[COLS / 8], mu[COLS / 8];
        double tacc[8] = {0}, tmu[8];
        for (int v = 0; v < COLS / 8; v++) acc[v] = D8_SET1(0.0);
        for (int64_t n = 0; n < N; n++) {
            const float *p = x + n * ld + j0;
            for (int64_t j = 0; j < wv; j += 8) acc[j / 8] += LOAD_D8(p + j);
            for (int64_t j = wv; j < w; j++) tacc[j - wv] += (double)p[j];
        }
        for (int64_t j = 0; j < wv; j += 8) {
            mu[j / 8] = acc[j / 8] / D8_SET1((double)N);
            acc[j / 8] = D8_SET1(0.0);
        }
        for (int64_t j = wv; j < w; j++) {
            tmu[j - wv] = tacc[j - wv] / (double)N;
            tacc[j - wv] = 0.0;
        }
        for (int64_t n = 0; n < N; n++) {
            const float *p = x + n * ld + j0;
            for (int64_t j = 0; j < wv; j += 8) {
                d8 d = LOAD_D8(p + j) - mu[j / 8];
                acc[j / 8] += d * d;
            }
            for (int64_t j = wv; j < w; j++) {
                double d = (double)p[j] - tmu[j - wv];
                tacc[j - wv] += d * d;
            }
        }
        for (int64_t j = 0; j < w; j++) {
            mean[j0 + j] = j < wv ? mu[j / 8][j % 8] : tmu[j - wv];
            m2[j0 + j] = j < wv ? acc[j / 8][j % 8] : tacc[j - wv];
        }
    }
}

/* ---- forward: out = (x - mean) * scale + shift ------------------------------
 * (scale = invstd * weight, shift = bias), so x == mean gives exactly bias */

/* max(0, r) when relu (a ReLU fused after the normalization), else r */
FNN_INLINE vf relu_if(vf r, int relu) { return relu ? vf_max(vf_zero(), r) : r; }

/* out, x: N blocks of S, `stride` apart */
static void FNN_K(affine_plane)(float *out, const float *x, int64_t N, int64_t S, int64_t stride,
                                float mean, float scale, float shift, int relu) {
    vf m = vf_set1(mean), a = vf_set1(scale), b = vf_set1(shift);
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * stride;
        float *q = out + n * stride;
        for (int64_t s = 0; s < S; s += FNN_VW) {
            int64_t w = vf_lanes(S - s);
            vf r = vf_fmadd(vf_sub(vf_load_w(p + s, w, 0.0f), m), a, b);
            vf_store_w(q + s, relu_if(r, relu), w);
        }
    }
}

/* out, x (N, ld), columns [0, W); mean, scale, shift (W,) */
static void FNN_K(affine_cols)(float *out, const float *x, int64_t N, int64_t W, int64_t ld,
                               const float *mean, const float *scale, const float *shift,
                               int relu) {
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * ld;
        float *q = out + n * ld;
        for (int64_t j = 0; j < W; j += FNN_VW) {
            int64_t w = vf_lanes(W - j);
            vf d = vf_sub(vf_load_w(p + j, w, 0.0f), vf_load_w(mean + j, w, 0.0f));
            vf r = vf_fmadd(d, vf_load_w(scale + j, w, 0.0f), vf_load_w(shift + j, w, 0.0f));
            vf_store_w(q + j, relu_if(r, relu), w);
        }
    }
}

/* ---- backward ---------------------------------------------------------------
 * forward: y = (x - mean) * invstd * weight + bias
 * the reduction: *sdy = sum dy, *sdyx = sum dy * (x - mean)            (float64)
 * the element pass: dx (+)= a * dy + b * (x - mean) + c, the caller's a, b, c
 * being torch's dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
 * With relu_out (the output of a ReLU fused after the normalization) dy is read
 * as 0 wherever relu_out is not > 0: the ReLU's backward, in the same passes. */

/* dy where relu_out > 0, else 0: the gradient through a ReLU fused after the
 * normalization, given its output (8 lanes; the scalar form for the tails) */
typedef int i8 __attribute__((vector_size(32)));
#define MASK_F8(gf, yf) ((f8)((i8)(gf) & ((yf) > (f8){0, 0, 0, 0, 0, 0, 0, 0})))
#define LOAD_G8(g, y) \
    ((y) ? __builtin_convertvector(MASK_F8(*(const f8 *)(g), *(const f8 *)(y)), d8) : LOAD_D8(g))
#define G1(g, y, s) ((y) && !((y)[s] > 0.0f) ? 0.0 : (double)(g)[s])

/* dy, x (and relu_out, or NULL): N blocks of S, `stride` apart */
FNN_INLINE void dot_plane_run(double *sdy, double *sdyx, const float *dy, const float *x,
                              const float *relu_out, int64_t N, int64_t S, int64_t stride,
                              float mean) {
    d8 gs[2] = {D8_SET1(0.0), D8_SET1(0.0)}, xs[2] = {D8_SET1(0.0), D8_SET1(0.0)};
    double t1[LANES] = {0}, t2[LANES] = {0};
    double mu = (double)mean;
    d8 vmu = D8_SET1(mu);
    for (int64_t n = 0; n < N; n++) {
        const float *g = dy + n * stride, *p = x + n * stride;
        const float *y = relu_out ? relu_out + n * stride : NULL;
        int64_t s = 0;
        for (; s + LANES <= S; s += LANES) {
            d8 ga = LOAD_G8(g + s, y ? y + s : NULL), gb = LOAD_G8(g + s + 8, y ? y + s + 8 : NULL);
            gs[0] += ga;
            gs[1] += gb;
            xs[0] += ga * (LOAD_D8(p + s) - vmu);
            xs[1] += gb * (LOAD_D8(p + s + 8) - vmu);
        }
        for (int l = 0; s < S; s++, l++) {
            double gd = G1(g, y, s);
            t1[l] += gd;
            t2[l] += gd * ((double)p[s] - mu);
        }
    }
    *sdy = lane_total(gs, 2, t1);
    *sdyx = lane_total(xs, 2, t2);
}

static void FNN_K(dot_plane)(double *sdy, double *sdyx, const float *dy, const float *x,
                             const float *relu_out, int64_t N, int64_t S, int64_t stride,
                             float mean) {
    if (relu_out) dot_plane_run(sdy, sdyx, dy, x, relu_out, N, S, stride, mean);
    else dot_plane_run(sdy, sdyx, dy, x, NULL, N, S, stride, mean);
}

/* sdy[j], sdyx[j] (W,) over column j of dy, x (and relu_out, or NULL) (N, ld); mean (W,) */
FNN_INLINE void dot_cols_run(double *sdy, double *sdyx, const float *dy, const float *x,
                             const float *relu_out, int64_t N, int64_t W, int64_t ld,
                             const float *mean) {
    for (int64_t j0 = 0; j0 < W; j0 += COLS) {
        int64_t w = W - j0 < COLS ? W - j0 : COLS, wv = w / 8 * 8;
        d8 a1[COLS / 8], a2[COLS / 8], mu[COLS / 8];
        double t1[8] = {0}, t2[8] = {0}, tmu[8];
        for (int64_t j = 0; j < wv; j += 8) {
            a1[j / 8] = a2[j / 8] = D8_SET1(0.0);
            mu[j / 8] = LOAD_D8(mean + j0 + j);
        }
        for (int64_t j = wv; j < w; j++) tmu[j - wv] = (double)mean[j0 + j];
        for (int64_t n = 0; n < N; n++) {
            const float *g = dy + n * ld + j0, *p = x + n * ld + j0;
            const float *y = relu_out ? relu_out + n * ld + j0 : NULL;
            for (int64_t j = 0; j < wv; j += 8) {
                d8 gd = LOAD_G8(g + j, y ? y + j : NULL);
                a1[j / 8] += gd;
                a2[j / 8] += gd * (LOAD_D8(p + j) - mu[j / 8]);
            }
            for (int64_t j = wv; j < w; j++) {
                double gd = G1(g, y, j);
                t1[j - wv] += gd;
                t2[j - wv] += gd * ((double)p[j] - tmu[j - wv]);
            }
        }
        for (int64_t j = 0; j < w; j++) {
            sdy[j0 + j] = j < wv ? a1[j / 8][j % 8] : t1[j - wv];
            sdyx[j0 + j] = j < wv ? a2[j / 8][j % 8] : t2[j - wv];
        }
    }
}

static void FNN_K(dot_cols)(double *sdy, double *sdyx, const float *dy, const float *x,
                            const float *relu_out, int64_t N, int64_t W, int64_t ld,
                            const float *mean) {
    if (relu_out) dot_cols_run(sdy, sdyx, dy, x, relu_out, N, W, ld, mean);
    else dot_cols_run(sdy, sdyx, dy, x, NULL, N, W, ld, mean);
}

FNN_INLINE void put_w(float *p, vf a, int64_t w, int accumulate) {
    if (accumulate) a = vf_add(vf_load_w(p, w, 0.0f), a);
    vf_store_w(p, a, w);
}

/* w lanes of dy at p, zero where relu_out (or NULL) at p is not > 0 */
FNN_INLINE vf load_g(const float *dy, const float *relu_out, int64_t p, int64_t w) {
    vf g = vf_load_w(dy + p, w, 0.0f);
    if (!relu_out) return g;
    return vf_select(vf_gt(vf_load_w(relu_out + p, w, 0.0f), vf_zero()), g, vf_zero());
}

/* dx, dy, x (and relu_out, or NULL): N blocks of S, `stride` apart */
static void FNN_K(dx_plane)(float *dx, const float *dy, const float *x, const float *relu_out,
                            int64_t N, int64_t S, int64_t stride, float mean, float a, float b,
                            float c, int accumulate) {
    vf m = vf_set1(mean), va = vf_set1(a), vb = vf_set1(b), vc = vf_set1(c);
    for (int64_t n = 0; n < N; n++) {
        int64_t off = n * stride;
        for (int64_t s = 0; s < S; s += FNN_VW) {
            int64_t w = vf_lanes(S - s);
            vf d = vf_sub(vf_load_w(x + off + s, w, 0.0f), m);
            vf r = vf_fmadd(va, load_g(dy, relu_out, off + s, w), vf_fmadd(vb, d, vc));
            put_w(dx + off + s, r, w, accumulate);
        }
    }
}

/* dx, dy, x (and relu_out, or NULL) (N, ld), columns [0, W); mean, a, b, c (W,) */
static void FNN_K(dx_cols)(float *dx, const float *dy, const float *x, const float *relu_out,
                           int64_t N, int64_t W, int64_t ld, const float *mean, const float *a,
                           const float *b, const float *c, int accumulate) {
    for (int64_t n = 0; n < N; n++) {
        int64_t off = n * ld;
        for (int64_t j = 0; j < W; j += FNN_VW) {
            int64_t w = vf_lanes(W - j);
            vf d = vf_sub(vf_load_w(x + off + j, w, 0.0f), vf_load_w(mean + j, w, 0.0f));
            vf r = vf_fmadd(vf_load_w(a + j, w, 0.0f), load_g(dy, relu_out, off + j, w),
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
