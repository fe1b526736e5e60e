/*
 * softmax.c - softmax and log_softmax along one axis, forward and backward.
 *
 * Compiled once per ISA (see simd.h). Arrays are (rows, C, D) and the softmax
 * runs along C. With D == 1 (the last axis) each row is contiguous and takes
 * three passes that stay in L1. With D > 1 the vectors run across D: each
 * lane is its own softmax over a strided fibre.
 * Ragged ends are masked loads filled with -inf (max, exp) or 0 (sums).
 * A row of all -inf, or with a NaN or +inf, gives NaN, as in PyTorch.
 * Dimension letters: rows (blocks), C (the softmax axis), D (the axes after it).
 * The file ends with this ISA's fnn_softmax_kernels (kernels.h).
 */
#include "vmath.h"
#include "kernels.h"

/* (+)= for backward kernels */
FNN_INLINE void put_w(float *p, vf a, int64_t w, int accumulate) {
    if (accumulate) a = vf_add(vf_load_w(p, w, 0.0f), a);
    vf_store_w(p, a, w);
}

/* ---- D == 1: one contiguous row of C ------------------------------------ */

/* out (C,) = softmax(inp (C,)), or log_softmax when `log` */
static void FNN_K(row_forward)(float *out, const float *inp, int64_t C, int log) {
    vf vmax = vf_set1(-INFINITY);
    for (int64_t i = 0; i < C; i += FNN_VW)
        vmax = vf_max(vmax, vf_load_w(inp + i, vf_lanes(C - i), -INFINITY));
    vf mx = vf_set1(vf_reduce_max(vmax));
    vf vsum = vf_zero();
    for (int64_t i = 0; i < C; i += FNN_VW) {
        int64_t w = vf_lanes(C - i);
        vf e = vf_exp(vf_sub(vf_load_w(inp + i, w, -INFINITY), mx));
        vsum = vf_add(vsum, e);
        if (!log) vf_store_w(out + i, e, w);
    }
    float sum = vf_reduce_add(vsum);
    if (log) {
        /* (x - max) - log(sum): the first difference is exact near the max, so
         * log-probabilities near 0 keep full precision */
        vf log_sum = vf_set1(logf(sum));
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf_store_w(out + i, vf_sub(vf_sub(vf_load_w(inp + i, w, 0.0f), mx), log_sum), w);
        }
    } else {
        vf scale = vf_set1(1.0f / sum);
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf_store_w(out + i, vf_mul(vf_load_w(out + i, w, 0.0f), scale), w);
        }
    }
}

/* softmax:     dinp (+)= y * (dout - sum(dout * y))
 * log_softmax: dinp (+)= dout - exp(y) * sum(dout)        all (C,) */
static void FNN_K(row_backward)(float *dinp, const float *dout, const float *y, int64_t C,
                                int log, int accumulate) {
    vf vsum = vf_zero();
    for (int64_t i = 0; i < C; i += FNN_VW) {
        int64_t w = vf_lanes(C - i);
        vf g = vf_load_w(dout + i, w, 0.0f);
        vsum = log ? vf_add(vsum, g) : vf_fmadd(g, vf_load_w(y + i, w, 0.0f), vsum);
    }
    vf s = vf_set1(vf_reduce_add(vsum));
    for (int64_t i = 0; i < C; i += FNN_VW) {
        int64_t w = vf_lanes(C - i);
        vf g = vf_load_w(dout + i, w, 0.0f), yi = vf_load_w(y + i, w, 0.0f);
        vf d = log ? vf_fnmadd(vf_exp(yi), s, g) : vf_mul(yi, vf_sub(g, s));
        put_w(dinp + i, d, w, accumulate);
    }
}

/* ---- D > 1: lanes across D, loop along C with stride D ------------------- */

/* one lane-wise log, by libm: called once per fibre chunk, not per element */
FNN_INLINE vf log_lanes(vf a) {
    float tmp[FNN_VW];
    vf_store(tmp, a);
    for (int l = 0; l < FNN_VW; l++) tmp[l] = logf(tmp[l]);
    return vf_load(tmp);
}

/* out, inp are (C, D); softmax along C for the w fibres starting at column d */
static void FNN_K(fibre_forward)(float *out, const float *inp, int64_t C, int64_t D,
                                 int64_t w, int log) {
    vf mx = vf_set1(-INFINITY), sum = vf_zero();
    for (int64_t c = 0; c < C; c++) mx = vf_max(mx, vf_load_w(inp + c * D, w, -INFINITY));
    for (int64_t c = 0; c < C; c++) {
        vf e = vf_exp(vf_sub(vf_load_w(inp + c * D, w, -INFINITY), mx));
        sum = vf_add(sum, e);
        if (!log) vf_store_w(out + c * D, e, w);
    }
    if (log) {
        vf log_sum = log_lanes(sum);
        for (int64_t c = 0; c < C; c++)
            vf_store_w(out + c * D, vf_sub(vf_sub(vf_load_w(inp + c * D, w, 0.0f), mx), log_sum), w);
    } else {
        vf scale = vf_div(vf_set1(1.0f), sum);
        for (int64_t c = 0; c < C; c++)
            vf_store_w(out + c * D, vf_mul(vf_load_w(out + c * D, w, 0.0f), scale), w);
    }
}

static void FNN_K(fibre_backward)(float *dinp, const float *dout, const float *y, int64_t C,
                                  int64_t D, int64_t w, int log, int accumulate) {
    vf s = vf_zero();
    for (int64_t c = 0; c < C; c++) {
        vf g = vf_load_w(dout + c * D, w, 0.0f);
        s = log ? vf_add(s, g) : vf_fmadd(g, vf_load_w(y + c * D, w, 0.0f), s);
    }
    for (int64_t c = 0; c < C; c++) {
        vf g = vf_load_w(dout + c * D, w, 0.0f), yi = vf_load_w(y + c * D, w, 0.0f);
        vf d = log ? vf_fnmadd(vf_exp(yi), s, g) : vf_mul(yi, vf_sub(g, s));
        put_w(dinp + c * D, d, w, accumulate);
    }
}

/* ---- the sub-table's entries: `rows` blocks of (C, D) -------------------- */

/* out, inp (rows, C, D) */
static void FNN_K(softmax_forward)(float *out, const float *inp, int64_t rows, int64_t C,
                                   int64_t D, int log) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = inp + r * C * D;
        float *y = out + r * C * D;
        if (D == 1) {
            FNN_K(row_forward)(y, x, C, log);
        } else {
            for (int64_t d = 0; d < D; d += FNN_VW)
                FNN_K(fibre_forward)(y + d, x + d, C, D, vf_lanes(D - d), log);
        }
    }
}

/* dinp, dout, out (rows, C, D) */
static void FNN_K(softmax_backward)(float *dinp, const float *dout, const float *out,
                                    int64_t rows, int64_t C, int64_t D, int log, int accumulate) {
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = r * C * D;
        if (D == 1) {
            FNN_K(row_backward)(dinp + off, dout + off, out + off, C, log, accumulate);
        } else {
            for (int64_t d = 0; d < D; d += FNN_VW)
                FNN_K(fibre_backward)(dinp + off + d, dout + off + d, out + off + d, C, D,
                                      vf_lanes(D - d), log, accumulate);
        }
    }
}

const fnn_softmax_kernels FNN_K(fnn_softmax_kernels) = {
    .forward = FNN_K(softmax_forward),
    .backward = FNN_K(softmax_backward),
};
