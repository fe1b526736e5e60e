/*
 * layer_norm.c - the row loops of LayerNorm and RMSNorm, forward and backward.
 *
 * Compiled once per ISA (see simd.h). Dimension letters: R rows in this call's
 * block, D the normalized size (the product of normalized_shape). Every array
 * of rows is (R, D) C-contiguous; weight, bias (D,) or NULL (1 and 0).
 * Statistics are float64 sums in 16 fixed lanes (dsum.h), the same bits on every
 * ISA; LayerNorm takes two passes (the mean, then squared deviations), so a row
 * of equal values normalises to exactly 0. The element-wise passes use simd.h.
 * layer_norm_api.c cuts the rows into blocks for the threads.
 */
#include "simd.h"
#include "kernels.h"
#include "dsum.h"

/* sum of x (D,) (about = 0) or of (x - about)^2 (squares) */
static double row_sum(const float *x, int64_t D, double about, int squares) {
    d8 acc[2] = {D8_SET1(0.0), D8_SET1(0.0)}, vc = D8_SET1(about);
    double t[16] = {0};
    int64_t s = 0;
    for (; s + 16 <= D; s += 16)
        for (int i = 0; i < 2; i++) {
            d8 d = LOAD_D8(x + s + 8 * i) - vc;
            acc[i] += squares ? d * d : d;
        }
    for (int l = 0; s < D; s++, l++) {
        double d = (double)x[s] - about;
        t[l] += squares ? d * d : d;
    }
    return lane_total(acc, 2, t);
}

/* *sg = sum g, *sgx = sum g * (x - mean) with g = dy * weight (weight NULL: 1) */
static void row_dots(double *sg, double *sgx, const float *dy, const float *x,
                     const float *weight, int64_t D, double mean) {
    d8 a[2] = {D8_SET1(0.0), D8_SET1(0.0)}, b[2] = {D8_SET1(0.0), D8_SET1(0.0)};
    d8 vm = D8_SET1(mean);
    double ta[16] = {0}, tb[16] = {0};
    int64_t s = 0;
    for (; s + 16 <= D; s += 16)
        for (int i = 0; i < 2; i++) {
            d8 g = LOAD_D8(dy + s + 8 * i);
            if (weight) g *= LOAD_D8(weight + s + 8 * i);
            a[i] += g;
            b[i] += g * (LOAD_D8(x + s + 8 * i) - vm);
        }
    for (int l = 0; s < D; s++, l++) {
        double g = (double)dy[s] * (weight ? (double)weight[s] : 1.0);
        ta[l] += g;
        tb[l] += g * ((double)x[s] - mean);
    }
    *sg = lane_total(a, 2, ta);
    *sgx = lane_total(b, 2, tb);
}

/* ---- forward ------------------------------------------------------------------
 * per row: x = inp (+ residual, stored to sum when given); LayerNorm: mean and
 * rstd = 1 / sqrt(biased variance + eps); RMSNorm (rms): mean 0 (not stored),
 * rstd = 1 / sqrt(mean(x^2) + eps); out = (x - mean) * rstd * weight + bias. */
static void FNN_K(forward_rows)(float *out, float *mean, float *rstd, float *sum,
                                const float *inp, const float *residual, const float *weight,
                                const float *bias, int64_t R, int64_t D, float eps, int rms) {
    for (int64_t r = 0; r < R; r++) {
        const float *x = inp + r * D;
        float *y = out + r * D;
        if (residual) {
            float *z = sum + r * D;
            const float *e = residual + r * D;
            for (int64_t s = 0; s < D; s += FNN_VW) {
                int64_t w = vf_lanes(D - s);
                vf_store_w(z + s, vf_add(vf_load_w(x + s, w, 0.0f), vf_load_w(e + s, w, 0.0f)), w);
            }
            x = z;
        }
        double mu = rms ? 0.0 : row_sum(x, D, 0.0, 0) / (double)D;
        double inv = 1.0 / sqrt(row_sum(x, D, mu, 1) / (double)D + (double)eps);
        if (mean) mean[r] = (float)mu;
        rstd[r] = (float)inv;
        vf vmu = vf_set1((float)mu), vinv = vf_set1((float)inv);
        for (int64_t s = 0; s < D; s += FNN_VW) {
            int64_t w = vf_lanes(D - s);
            vf n = vf_mul(vf_sub(vf_load_w(x + s, w, 0.0f), vmu), vinv);
            if (weight) n = vf_mul(n, vf_load_w(weight + s, w, 0.0f));
            if (bias) n = vf_add(n, vf_load_w(bias + s, w, 0.0f));
            vf_store_w(y + s, n, w);
        }
    }
}

/* ---- backward -----------------------------------------------------------------
 * xhat = (x - mean) * rstd, g = dy * weight:
 *   dinp (+)= rstd * (g - mean(g) - xhat * mean(g * xhat))    (RMSNorm: no mean(g))
 *   dweight_part += dy * xhat, dbias_part += dy, row by row in order (each NULL: skipped).
 * mean NULL for RMSNorm. */
static void FNN_K(backward_rows)(float *dinp, float *dweight_part, float *dbias_part,
                                 const float *dout, const float *inp, const float *mean,
                                 const float *rstd, const float *weight, int64_t R, int64_t D,
                                 int accumulate) {
    for (int64_t r = 0; r < R; r++) {
        const float *x = inp + r * D, *dy = dout + r * D;
        float mf = mean ? mean[r] : 0.0f;
        double inv = (double)rstd[r];
        vf vmu = vf_set1(mf), vinv = vf_set1(rstd[r]);
        if (dinp) {
            double sg, sgx;
            row_dots(&sg, &sgx, dy, x, weight, D, (double)mf);
            /* dx = inv * (g - mean(g)) + b * (x - mean): g - mean(g) first, so a
             * row of one value gets exactly 0 */
            vf va = vf_set1((float)inv);
            vf vb = vf_set1((float)(-inv * inv * inv * sgx / (double)D));
            vf vmg = vf_set1(mean ? (float)(sg / (double)D) : 0.0f);
            float *dx = dinp + r * D;
            for (int64_t s = 0; s < D; s += FNN_VW) {
                int64_t w = vf_lanes(D - s);
                vf g = vf_load_w(dy + s, w, 0.0f);
                if (weight) g = vf_mul(g, vf_load_w(weight + s, w, 0.0f));
                vf d = vf_sub(vf_load_w(x + s, w, 0.0f), vmu);
                vf v = vf_fmadd(va, vf_sub(g, vmg), vf_mul(vb, d));
                if (accumulate) v = vf_add(vf_load_w(dx + s, w, 0.0f), v);
                vf_store_w(dx + s, v, w);
            }
        }
        for (int64_t s = 0; s < D && (dweight_part || dbias_part); s += FNN_VW) {
            int64_t w = vf_lanes(D - s);
            vf g = vf_load_w(dy + s, w, 0.0f);
            if (dweight_part) {
                vf xhat = vf_mul(vf_sub(vf_load_w(x + s, w, 0.0f), vmu), vinv);
                vf_store_w(dweight_part + s,
                           vf_fmadd(g, xhat, vf_load_w(dweight_part + s, w, 0.0f)), w);
            }
            if (dbias_part)
                vf_store_w(dbias_part + s, vf_add(vf_load_w(dbias_part + s, w, 0.0f), g), w);
        }
    }
}

const fnn_layer_norm_kernels FNN_K(fnn_layer_norm_kernels) = {
    .forward_rows = FNN_K(forward_rows),
    .backward_rows = FNN_K(backward_rows),
};
