/*
 * pool.c - max and average pooling (fixed windows and adaptive bins), forward
 * and backward side by side.
 *
 * Compiled once per ISA (see simd.h); the loops are scalar C the compiler
 * vectorizes where it can, each plane computed whole and in the same order on
 * every ISA, so every path gives the same bits. Dimension letters: P planes
 * (N*C), H, W the input plane, OH, OW the output plane, K kernel (kh, kw),
 * S stride, D dilation. The file ends with this ISA's fnn_pool_kernels.
 */
#include <math.h>

#include "simd.h"
#include "kernels.h"

/* ---- windows ---------------------------------------------------------------
 * [*lo, *hi): the input range of output o along an axis of size n; for a fixed
 * window, the start before clipping is o*s - p and the taps step by d. */
static inline void adaptive_bin(int64_t o, int64_t n, int64_t on, int64_t *lo, int64_t *hi) {
    *lo = (o * n) / on;
    *hi = ((o + 1) * n + on - 1) / on;
}

/* ---- max pooling ------------------------------------------------------------ */

/* one output of a plane x (H, W): the max over taps (ih, iw), ih = ih0, ih0 + dh, ... < ihend,
 * iw likewise; a NaN wins (the last one), ties keep the first (as PyTorch) */
static inline float window_max(const float *x, int64_t W, int64_t ih0, int64_t ihend,
                               int64_t dh, int64_t iw0, int64_t iwend, int64_t dw,
                               int64_t *index) {
    float m = -INFINITY;
    /* an all -inf window answers its first tap; ihend, iwend >= 1 always, so the
     * clamp only keeps a (geometrically impossible) empty window inside the plane */
    int64_t mi = (ih0 < ihend ? ih0 : ihend - 1) * W + (iw0 < iwend ? iw0 : iwend - 1);
    for (int64_t ih = ih0; ih < ihend; ih += dh) {
        for (int64_t iw = iw0; iw < iwend; iw += dw) {
            float v = x[ih * W + iw];
            if (v > m || isnan(v)) {
                m = v;
                mi = ih * W + iw;
            }
        }
    }
    *index = mi;
    return m;
}

/* first tap >= 0 of a dilated window starting at s (s may be negative) */
static inline int64_t first_tap(int64_t s, int64_t d) {
    return s >= 0 ? s : s + ((-s + d - 1) / d) * d;
}

/* [*lo, *hi) along an axis of size n for output o: its adaptive bin, or, for a window of
 * k taps (stride s, padding p, dilation d), its first tap inside the input and its end
 * clipped to n */
static inline void max_taps(int64_t o, int64_t n, int64_t on, int64_t k, int64_t s, int64_t p,
                            int64_t d, int adaptive, int64_t *lo, int64_t *hi) {
    if (adaptive) {
        adaptive_bin(o, n, on, lo, hi);
        return;
    }
    int64_t start = o * s - p;
    *lo = first_tap(start, d);
    *hi = start + (k - 1) * d + 1 < n ? start + (k - 1) * d + 1 : n;
}

/* out, indices (P, OH, OW); inp (P, H, W) */
static void FNN_K(max_forward)(float *out, int64_t *indices, const float *inp, int64_t P,
                               const fnn_pool_geom *g, int adaptive) {
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    for (int64_t p = 0; p < P; p++) {
        const float *x = inp + p * H * W;
        float *y = out + p * OH * OW;
        int64_t *ix = indices + p * OH * OW;
        if (!adaptive && g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 &&
            g->pw == 0 && g->dh == 1 && g->dw == 1 && 2 * OH <= H && 2 * OW <= W) {
            /* the common 2x2/2 window fully inside: four taps, same order as below */
            for (int64_t oh = 0; oh < OH; oh++) {
                const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t b = 2 * oh * W + 2 * ow;
                    float m = r0[2 * ow];
                    int64_t mi = b;
                    float v = r0[2 * ow + 1];
                    if (v > m || isnan(v)) { m = v; mi = b + 1; }
                    v = r1[2 * ow];
                    if (v > m || isnan(v)) { m = v; mi = b + W; }
                    v = r1[2 * ow + 1];
                    if (v > m || isnan(v)) { m = v; mi = b + W + 1; }
                    y[oh * OW + ow] = m;
                    ix[oh * OW + ow] = mi;
                }
            }
            continue;
        }
        const int64_t dh = adaptive ? 1 : g->dh, dw = adaptive ? 1 : g->dw;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            max_taps(oh, H, OH, g->kh, g->sh, g->ph, dh, adaptive, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                max_taps(ow, W, OW, g->kw, g->sw, g->pw, dw, adaptive, &w0, &w1);
                y[oh * OW + ow] = window_max(x, W, h0, h1, dh, w0, w1, dw, &ix[oh * OW + ow]);
            }
        }
    }
}

/* dinp (P, H, W) = dout (P, OH, OW) scattered at indices (P, OH, OW), outputs in order */
static void FNN_K(max_backward)(float *dinp, const float *dout, const int64_t *indices,
                                int64_t P, const fnn_pool_geom *g) {
    const int64_t HW = g->H * g->W, O = g->OH * g->OW;
    for (int64_t p = 0; p < P; p++) {
        float *dx = dinp + p * HW;
        const float *dy = dout + p * O;
        const int64_t *ix = indices + p * O;
        for (int64_t i = 0; i < HW; i++) dx[i] = 0.0f;
        for (int64_t o = 0; o < O; o++) dx[ix[o]] += dy[o];
    }
}

/* ---- average pooling ---------------------------------------------------------
 * The window of output (oh, ow): rows [h0, h1), columns [w0, w1) clipped to the
 * input, and its divisor. */
typedef struct {
    int64_t h0, h1, w0, w1;
    float dh, dw; /* the value is divided by dh then dw (dw = 1 for fixed windows) */
} avg_window;

static inline avg_window avg_window_at(const fnn_pool_geom *g, int64_t oh, int64_t ow,
                                       int count_include_pad, int64_t divisor, int adaptive) {
    avg_window a;
    if (adaptive) { /* PyTorch: sum / kh / kw */
        adaptive_bin(oh, g->H, g->OH, &a.h0, &a.h1);
        adaptive_bin(ow, g->W, g->OW, &a.w0, &a.w1);
        a.dh = (float)(a.h1 - a.h0);
        a.dw = (float)(a.w1 - a.w0);
        return a;
    }
    int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int64_t he = hs + g->kh, we = ws + g->kw;
    if (he > g->H + g->ph) he = g->H + g->ph;
    if (we > g->W + g->pw) we = g->W + g->pw;
    int64_t padded = (he - hs) * (we - ws);
    a.h0 = hs < 0 ? 0 : hs;
    a.w0 = ws < 0 ? 0 : ws;
    a.h1 = he > g->H ? g->H : he;
    a.w1 = we > g->W ? g->W : we;
    if (a.h1 <= a.h0 || a.w1 <= a.w0) { /* a window wholly in the padding: 0 */
        a.h1 = a.h0;
        a.w1 = a.w0;
    }
    int64_t inside = (a.h1 - a.h0) * (a.w1 - a.w0);
    a.dh = (float)(divisor > 0 ? divisor : count_include_pad ? padded : inside);
    a.dw = 1.0f;
    return a;
}

/* out (P, OH, OW) = means of inp (P, H, W): the window summed row by row in float,
 * then divided (as PyTorch) */
static void FNN_K(avg_forward)(float *out, const float *inp, int64_t P, const fnn_pool_geom *g,
                               int count_include_pad, int64_t divisor, int adaptive) {
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    for (int64_t p = 0; p < P; p++) {
        const float *x = inp + p * H * W;
        float *y = out + p * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            for (int64_t ow = 0; ow < OW; ow++) {
                avg_window a = avg_window_at(g, oh, ow, count_include_pad, divisor, adaptive);
                if (a.h1 == a.h0) {
                    y[oh * OW + ow] = 0.0f;
                    continue;
                }
                float s = 0.0f;
                for (int64_t ih = a.h0; ih < a.h1; ih++)
                    for (int64_t iw = a.w0; iw < a.w1; iw++) s += x[ih * W + iw];
                y[oh * OW + ow] = s / a.dh / a.dw;
            }
        }
    }
}

/* dinp (P, H, W) = each dout (P, OH, OW) / count added over its window, outputs in order */
static void FNN_K(avg_backward)(float *dinp, const float *dout, int64_t P,
                                const fnn_pool_geom *g, int count_include_pad, int64_t divisor,
                                int adaptive) {
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    for (int64_t p = 0; p < P; p++) {
        float *dx = dinp + p * H * W;
        const float *dy = dout + p * OH * OW;
        for (int64_t i = 0; i < H * W; i++) dx[i] = 0.0f;
        for (int64_t oh = 0; oh < OH; oh++) {
            for (int64_t ow = 0; ow < OW; ow++) {
                avg_window a = avg_window_at(g, oh, ow, count_include_pad, divisor, adaptive);
                float d = dy[oh * OW + ow] / a.dh / a.dw;
                for (int64_t ih = a.h0; ih < a.h1; ih++)
                    for (int64_t iw = a.w0; iw < a.w1; iw++) dx[ih * W + iw] += d;
            }
        }
    }
}

const fnn_pool_kernels FNN_K(fnn_pool_kernels) = {
    .max_forward = FNN_K(max_forward),
    .max_backward = FNN_K(max_backward),
    .avg_forward = FNN_K(avg_forward),
    .avg_backward = FNN_K(avg_backward),
};
