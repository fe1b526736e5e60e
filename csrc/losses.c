/*
 * losses.c - fused loss and gradient, one pass over the input.
 *
 * Compiled once per ISA (see simd.h). Each kernel covers one block of rows or
 * elements, returns that block's summed loss (in double) and writes the
 * gradient already multiplied by grad_scale (1 / count for the mean).
 * losses_api.c cuts the input into fixed blocks and adds the block sums in
 * order, so the loss is the same for any number of threads.
 * Dimension letters: rows (of a block), C (classes), n (elements).
 * The file ends with this ISA's fnn_loss_kernels (kernels.h).
 */
#include "vmath.h"
#include "kernels.h"

/* ---- cross entropy with label smoothing eps ------------------------------
 * logits (rows, C), labels (rows,), dlogits (rows, C).
 * Everything is relative to the row's max m (d = x - m <= 0, s = sum exp d >= 1):
 *   loss = (1-eps) (log s - d[y]) + eps (log s - mean(d)),
 * a sum of terms >= 0, so nothing cancels however large m is (lse = m + log s
 * would lose log s against m from |m| ~ 1e8 on);
 * dlogits = softmax(x) - (1-eps) onehot(y) - eps / C, times grad_scale;
 * rows labelled ignore_index: no loss, zero gradient. */
static double FNN_K(cross_entropy)(float *dlogits, const float *logits,
                                   const int64_t *labels, int64_t rows, int64_t C, float label_smoothing,
                                int64_t ignore_index, float grad_scale) {
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * C;
        float *dx = dlogits + r * C;
        if (labels[r] == ignore_index) {
            for (int64_t i = 0; i < C; i += FNN_VW) vf_store_w(dx + i, vf_zero(), vf_lanes(C - i));
            continue;
        }
        const int64_t y = labels[r];
        const float x_y = x[y]; /* read before dx is written: dlogits may alias logits */
        vf vmax = vf_set1(-INFINITY);
        for (int64_t i = 0; i < C; i += FNN_VW)
            vmax = vf_max(vmax, vf_load_w(x + i, vf_lanes(C - i), -INFINITY));
        float max = vf_reduce_max(vmax);
        vf mx = vf_set1(max), vsum = vf_zero(), vd = vf_zero();
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf d = vf_sub(vf_load_w(x + i, w, max), mx); /* d = 0 in lanes past C */
            vf e = vf_exp(d);
            if (w < FNN_VW) e = vf_select(vm_first(w), e, vf_zero());
            vsum = vf_add(vsum, e);
            vd = vf_add(vd, d);
            vf_store_w(dx + i, e, w);
        }
        float sum = vf_reduce_add(vsum);
        double log_sum = log((double)sum);
        total += (1.0 - label_smoothing) * (log_sum - (double)(x_y - max));
        if (label_smoothing > 0.0f) { /* 0 * inf */
            double mean_d = (double)vf_reduce_add(vd) / (double)C;
            total += label_smoothing * (log_sum - mean_d);
        }

        vf p_scale = vf_set1(grad_scale / sum);
        vf smooth = vf_set1(grad_scale * label_smoothing / (float)C);
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf_store_w(dx + i, vf_sub(vf_mul(vf_load_w(dx + i, w, 0.0f), p_scale), smooth), w);
        }
        dx[y] -= grad_scale * (1.0f - label_smoothing);
    }
    return total;
}

/* ---- mean squared error ---------------------------------------------------
 * pred, target, dpred (n,): loss = sum (p - t)^2; dpred = 2 (p - t) grad_scale */
static double FNN_K(mse)(float *dpred, const float *pred, const float *target, int64_t n,
                         float grad_scale) {
    vf acc = vf_zero(), two_scale = vf_set1(2.0f * grad_scale);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf d = vf_sub(vf_load_w(pred + i, w, 0.0f), vf_load_w(target + i, w, 0.0f));
        acc = vf_fmadd(d, d, acc);
        vf_store_w(dpred + i, vf_mul(d, two_scale), w);
    }
    return (double)vf_reduce_add(acc);
}

/* ---- binary cross entropy on logits ---------------------------------------
 * x, t, dx (n,): loss = softplus(x) - x t = max(x, 0) - x t + log1p(exp(-|x|)),
 * without overflow, and max(x, 0) - x t taken as one product, x (1 - t) for
 * x > 0 and x (-t) otherwise: the difference of two large terms would cancel
 * for t near 1 (rounded unless the ISA fuses it); dx = (sigmoid(x) - t) grad_scale */
static double FNN_K(bce_with_logits)(float *dlogits, const float *logits, const float *target,
                                     int64_t n, float grad_scale) {
    vf acc = vf_zero(), scale = vf_set1(grad_scale), one = vf_set1(1.0f);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf x = vf_load_w(logits + i, w, 0.0f), t = vf_load_w(target + i, w, 0.0f);
        vf e = vf_exp(vf_neg(vf_abs(x)));
        vf linear = vf_mul(x, vf_select(vf_gt(x, vf_zero()), vf_sub(one, t), vf_neg(t)));
        vf loss = vf_add(linear, vf_log1p_01(e));
        /* masked lanes have x = t = 0, which would add log 2 */
        if (w < FNN_VW) loss = vf_select(vm_first(w), loss, vf_zero());
        acc = vf_add(acc, loss);
        vf_store_w(dlogits + i, vf_mul(vf_sub(vf_sigmoid_given_exp(x, e), t), scale), w);
    }
    return (double)vf_reduce_add(acc);
}

const fnn_loss_kernels FNN_K(fnn_loss_kernels) = {
    .cross_entropy = FNN_K(cross_entropy),
    .mse = FNN_K(mse),
    .bce_with_logits = FNN_K(bce_with_logits),
};
