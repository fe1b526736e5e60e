/*
 * losses.c - fused loss and gradient, one pass over the input.
 *
 * Compiled once per ISA (see simd.h). Each kernel covers one block of rows or
 * elements: it writes each element's (or row's) loss to `losses` unless that
 * is NULL (reduction="none"), writes the gradient d loss_i / d input already
 * multiplied by grad_scale (1 / divisor for a mean, 1 otherwise), and returns
 * the block's summed loss. losses_api.c cuts the input into fixed blocks and
 * adds the block sums in order, so the loss is the same for any number of
 * threads. Dimension letters: rows (of a block), C (classes), D (features of a
 * row), n (elements).
 * The file ends with this ISA's fnn_loss_kernels (kernels.h).
 */
#include "vmath.h"
#include "kernels.h"

/* ---- cross entropy against class labels ----------------------------------
 * logits (rows, C), labels (rows,), weight (C,) or NULL (all 1), losses (rows,)
 * or NULL, dlogits (rows, C). The target is (1-eps) onehot(y) + eps / C, each
 * class c weighted by w_c (torch's label smoothing with class weights):
 *   loss = (1-eps) w_y (log s - d_y) + eps / C sum_c w_c (log s - d_c)
 * relative to the row's max m (d = x - m <= 0, s = sum exp d >= 1), a sum of
 * terms >= 0, so nothing cancels however large m is;
 * dlogits = softmax(x) ((1-eps) w_y + eps / C sum w) - (1-eps) w_y onehot(y)
 *           - eps / C w, times grad_scale;
 * rows labelled ignore_index: loss 0, zero gradient. */
static double FNN_K(cross_entropy)(float *losses, float *dlogits, const float *logits,
                                   const int64_t *labels, const float *weight, int64_t rows,
                                   int64_t C, float label_smoothing, int64_t ignore_index,
                                   float grad_scale) {
    double total = 0.0;
    const float eps = label_smoothing, eps_c = label_smoothing / (float)C;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * C;
        float *dx = dlogits + r * C;
        if (labels[r] == ignore_index) {
            for (int64_t i = 0; i < C; i += FNN_VW) vf_store_w(dx + i, vf_zero(), vf_lanes(C - i));
            if (losses) losses[r] = 0.0f;
            continue;
        }
        const int64_t y = labels[r];
        const float x_y = x[y]; /* read before dx is written: dlogits may alias logits */
        const float w_y = weight ? weight[y] : 1.0f;
        vf vmax = vf_set1(-INFINITY);
        for (int64_t i = 0; i < C; i += FNN_VW)
            vmax = vf_max(vmax, vf_load_w(x + i, vf_lanes(C - i), -INFINITY));
        float max = vf_reduce_max(vmax);
        vf mx = vf_set1(max), vsum = vf_zero(), vwd = vf_zero(), vw = vf_zero();
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf d = vf_sub(vf_load_w(x + i, w, max), mx); /* d = 0 in lanes past C */
            vf e = vf_exp(d);
            if (w < FNN_VW) e = vf_select(vm_first(w), e, vf_zero());
            vsum = vf_add(vsum, e);
            if (weight) {
                vf wc = vf_load_w(weight + i, w, 0.0f);
                vwd = vf_fmadd(wc, d, vwd);
                vw = vf_add(vw, wc);
            } else {
                vwd = vf_add(vwd, d);
            }
            vf_store_w(dx + i, e, w);
        }
        float sum = vf_reduce_add(vsum);
        float w_sum = weight ? vf_reduce_add(vw) : (float)C;
        double log_sum = log((double)sum);
        double loss = (1.0 - eps) * w_y * (log_sum - (double)(x_y - max));
        if (eps > 0.0f) /* 0 * inf */
            loss += eps_c * (w_sum * log_sum - (double)vf_reduce_add(vwd));
        total += loss;
        if (losses) losses[r] = (float)loss;

        vf p_scale = vf_set1(grad_scale * ((1.0f - eps) * w_y + eps_c * w_sum) / sum);
        vf smooth = vf_set1(grad_scale * eps_c);
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf wc = weight ? vf_load_w(weight + i, w, 0.0f) : vf_set1(1.0f);
            vf p = vf_mul(vf_load_w(dx + i, w, 0.0f), p_scale);
            vf_store_w(dx + i, vf_fnmadd(smooth, wc, p), w);
        }
        dx[y] -= grad_scale * (1.0f - eps) * w_y;
    }
    return total;
}

/* ---- cross entropy against class probabilities ---------------------------
 * logits, target, dlogits (rows, C), weight (C,) or NULL, losses (rows,) or
 * NULL. With t' = (1-eps) t + eps / C and u_c = w_c t'_c:
 *   loss = sum_c u_c (log s - d_c),  dlogits = (softmax(x) sum u - u) grad_scale. */
static double FNN_K(cross_entropy_probs)(float *losses, float *dlogits, const float *logits,
                                         const float *target, const float *weight, int64_t rows,
                                         int64_t C, float label_smoothing, float grad_scale) {
    double total = 0.0;
    vf keep = vf_set1(1.0f - label_smoothing), smooth = vf_set1(label_smoothing / (float)C);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * C, *t = target + r * C;
        float *dx = dlogits + r * C;
        vf vmax = vf_set1(-INFINITY);
        for (int64_t i = 0; i < C; i += FNN_VW)
            vmax = vf_max(vmax, vf_load_w(x + i, vf_lanes(C - i), -INFINITY));
        float max = vf_reduce_max(vmax);
        vf mx = vf_set1(max), vsum = vf_zero(), vu = vf_zero(), vud = vf_zero();
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf d = vf_sub(vf_load_w(x + i, w, max), mx);
            vf e = vf_exp(d);
            vf u = vf_fmadd(keep, vf_load_w(t + i, w, 0.0f), smooth);
            if (weight) u = vf_mul(u, vf_load_w(weight + i, w, 0.0f));
            if (w < FNN_VW) {
                e = vf_select(vm_first(w), e, vf_zero());
                u = vf_select(vm_first(w), u, vf_zero());
            }
            vsum = vf_add(vsum, e);
            vu = vf_add(vu, u);
            vud = vf_fmadd(u, d, vud);
            vf_store_w(dx + i, e, w);
        }
        float sum = vf_reduce_add(vsum), u_sum = vf_reduce_add(vu);
        double loss = (double)u_sum * log((double)sum) - (double)vf_reduce_add(vud);
        total += loss;
        if (losses) losses[r] = (float)loss;
        vf p_scale = vf_set1(grad_scale * u_sum / sum), scale = vf_set1(grad_scale);
        for (int64_t i = 0; i < C; i += FNN_VW) {
            int64_t w = vf_lanes(C - i);
            vf u = vf_fmadd(keep, vf_load_w(t + i, w, 0.0f), smooth);
            if (weight) u = vf_mul(u, vf_load_w(weight + i, w, 0.0f));
            vf p = vf_mul(vf_load_w(dx + i, w, 0.0f), p_scale);
            vf_store_w(dx + i, vf_fnmadd(u, scale, p), w);
        }
    }
    return total;
}

/* ---- negative log likelihood of log-probabilities -------------------------
 * logp, dlogp (rows, C), labels (rows,), weight (C,) or NULL, losses (rows,) or
 * NULL: loss = -w_y logp[y]; dlogp = -w_y grad_scale at y, 0 elsewhere;
 * rows labelled ignore_index: loss 0, zero gradient. */
static double FNN_K(nll)(float *losses, float *dlogp, const float *logp, const int64_t *labels,
                         const float *weight, int64_t rows, int64_t C, int64_t ignore_index,
                         float grad_scale) {
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t y = labels[r];
        const int counted = y != ignore_index;
        const float w_y = counted ? (weight ? weight[y] : 1.0f) : 0.0f;
        const float loss = counted ? -w_y * logp[r * C + y] : 0.0f; /* before dlogp is written */
        float *dx = dlogp + r * C;
        for (int64_t i = 0; i < C; i += FNN_VW) vf_store_w(dx + i, vf_zero(), vf_lanes(C - i));
        if (counted) dx[y] = -w_y * grad_scale;
        total += loss;
        if (losses) losses[r] = loss;
    }
    return total;
}

/* ---- cosine embedding ------------------------------------------------------
 * x1, x2, dx1, dx2 (rows, D), y (rows,), losses (rows,) or NULL. As torch, with
 * q_k = |x_k|^2 + 1e-12 and cos = x1.x2 / sqrt(q1 q2):
 *   loss = 1 - cos (y = 1), max(0, cos - margin) (y = -1), 0 otherwise;
 *   dcos/dx1 = x2 / sqrt(q1 q2) - cos x1 / q1 (and symmetrically for x2). */
static double FNN_K(cosine_embedding)(float *losses, float *dx1, float *dx2, const float *x1,
                                      const float *x2, const float *y, int64_t rows, int64_t D,
                                      float margin, float grad_scale) {
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *a = x1 + r * D, *b = x2 + r * D;
        vf vab = vf_zero(), vaa = vf_zero(), vbb = vf_zero();
        for (int64_t i = 0; i < D; i += FNN_VW) {
            int64_t w = vf_lanes(D - i);
            vf va = vf_load_w(a + i, w, 0.0f), vb = vf_load_w(b + i, w, 0.0f);
            vab = vf_fmadd(va, vb, vab);
            vaa = vf_fmadd(va, va, vaa);
            vbb = vf_fmadd(vb, vb, vbb);
        }
        float q1 = vf_reduce_add(vaa) + 1e-12f, q2 = vf_reduce_add(vbb) + 1e-12f;
        float denom = sqrtf(q1 * q2), cos = vf_reduce_add(vab) / denom;
        float loss = 0.0f, dcos = 0.0f; /* d loss / d cos */
        if (y[r] == 1.0f) {
            loss = 1.0f - cos;
            dcos = -1.0f;
        } else if (y[r] == -1.0f) {
            loss = cos - margin > 0.0f ? cos - margin : 0.0f;
            dcos = cos - margin >= 0.0f ? 1.0f : 0.0f; /* torch's clamp_min passes the tie */
        }
        total += loss;
        if (losses) losses[r] = loss;
        vf g_other = vf_set1(dcos * grad_scale / denom);
        vf g_self1 = vf_set1(-dcos * grad_scale * cos / q1), g_self2 = vf_set1(-dcos * grad_scale * cos / q2);
        for (int64_t i = 0; i < D; i += FNN_VW) {
            int64_t w = vf_lanes(D - i);
            vf va = vf_load_w(a + i, w, 0.0f), vb = vf_load_w(b + i, w, 0.0f);
            vf_store_w(dx1 + r * D + i, vf_fmadd(g_other, vb, vf_mul(g_self1, va)), w);
            vf_store_w(dx2 + r * D + i, vf_fmadd(g_other, va, vf_mul(g_self2, vb)), w);
        }
    }
    return total;
}

/* ---- Gaussian negative log likelihood ---------------------------------------
 * input, target, var, dinput, dvar (n,), losses (n,) or NULL. With v = max(var, eps)
 * and d = input - target: loss = (log v + d^2 / v) / 2 (+ log(2 pi) / 2 when full);
 * dinput = d / v, dvar = (1 / v - d^2 / v^2) / 2, both times grad_scale (torch clamps
 * var without recording it, so dvar is taken at the clamped v). */
static double FNN_K(gaussian_nll)(float *losses, float *dinput, float *dvar, const float *input,
                                  const float *target, const float *var, int64_t n, float eps,
                                  int full, float grad_scale) {
    vf acc = vf_zero(), half = vf_set1(0.5f), scale = vf_set1(grad_scale);
    vf constant = vf_set1(full ? 0.918938533f : 0.0f); /* log(2 pi) / 2 */
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf d = vf_sub(vf_load_w(input + i, w, 0.0f), vf_load_w(target + i, w, 0.0f));
        vf v = vf_max(vf_load_w(var + i, w, 1.0f), vf_set1(eps));
        vf d_v = vf_div(d, v), inv_v = vf_div(vf_set1(1.0f), v);
        vf loss = vf_fmadd(half, vf_fmadd(d, d_v, vf_log(v)), constant);
        if (w < FNN_VW) loss = vf_select(vm_first(w), loss, vf_zero());
        acc = vf_add(acc, loss);
        if (losses) vf_store_w(losses + i, loss, w);
        vf_store_w(dinput + i, vf_mul(d_v, scale), w);
        vf_store_w(dvar + i, vf_mul(vf_mul(half, vf_fnmadd(d_v, d_v, inv_v)), scale), w);
    }
    return (double)vf_reduce_add(acc);
}

/* ---- element-wise losses of pred x against target t ------------------------
 * POINTWISE_LOSS(name, ...) defines one: its body sets `loss` and `grad`
 * (d loss / d x) from x, t and the options o; the shared loop multiplies both
 * by o->weight, stores the losses, the gradient times gscale (grad_scale, which
 * a body may change to fold a constant factor in without overflowing first) and
 * sums the losses of the lanes inside n. pred, target, dpred, o->weight, o->pos_weight,
 * losses: (n,). */
#define POINTWISE_LOSS(name, ...)                                                            \
    static double FNN_K(name)(float *losses, float *dpred, const float *pred,                \
                              const float *target, int64_t n, const fnn_loss_options *o,     \
                              float grad_scale) {                                            \
        vf acc = vf_zero(), scale = vf_set1(grad_scale), one = vf_set1(1.0f);                \
        const vf param = vf_set1(o->param);                                                  \
        (void)one, (void)param;                                                              \
        for (int64_t i = 0; i < n; i += FNN_VW) {                                            \
            int64_t w = vf_lanes(n - i);                                                     \
            vf x = vf_load_w(pred + i, w, 0.0f), t = vf_load_w(target + i, w, 0.0f);         \
            vf loss, grad, gscale = scale;                                                   \
            __VA_ARGS__                                                                      \
            if (o->weight) {                                                                 \
                vf wt = vf_load_w(o->weight + i, w, 0.0f);                                   \
                loss = vf_mul(loss, wt);                                                     \
                grad = vf_mul(grad, wt);                                                     \
            }                                                                                \
            if (w < FNN_VW) loss = vf_select(vm_first(w), loss, vf_zero());                  \
            acc = vf_add(acc, loss);                                                         \
            if (losses) vf_store_w(losses + i, loss, w);                                     \
            vf_store_w(dpred + i, vf_mul(grad, gscale), w);                                  \
        }                                                                                    \
        return (double)vf_reduce_add(acc);                                                   \
    }

/* sign(d), 0 at 0 and at NaN (torch's l1 gradient) */
FNN_INLINE vf sign_of(vf d) {
    return vf_select(vf_gt(d, vf_zero()), vf_set1(1.0f),
                     vf_select(vf_lt(d, vf_zero()), vf_set1(-1.0f), vf_zero()));
}
/* log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), without overflow */
FNN_INLINE vf softplus_of(vf z) {
    return vf_add(vf_max(z, vf_zero()), vf_log1p_01(vf_exp(vf_neg(vf_abs(z)))));
}

/* mse: (x - t)^2, 2 (x - t): the 2 goes into the scale, so a mean's gradient of a
 * difference above FLT_MAX / 2 stays finite */
POINTWISE_LOSS(mse, vf d = vf_sub(x, t); loss = vf_mul(d, d); grad = d;
               gscale = vf_add(scale, scale);)

/* l1: |x - t|, sign(x - t) */
POINTWISE_LOSS(l1, vf d = vf_sub(x, t); loss = vf_abs(d); grad = sign_of(d);)

/* smooth_l1 (param = beta > 0): |d| < beta ? d^2 / (2 beta) : |d| - beta / 2;
 * gradient d / beta or sign(d), NaN at NaN as torch's (beta = 0 runs as l1) */
POINTWISE_LOSS(smooth_l1,
    vf d = vf_sub(x, t), a = vf_abs(d);
    vm small = vf_lt(a, param);
    vf d_beta = vf_div(d, param);
    loss = vf_select(small, vf_mul(vf_mul(vf_set1(0.5f), d), d_beta),
                     vf_fnmadd(vf_set1(0.5f), param, a));
    grad = vf_select(vf_isnan(d), d, vf_select(small, d_beta, sign_of(d)));)

/* huber (param = delta): |d| < delta ? d^2 / 2 : delta (|d| - delta / 2);
 * gradient d clamped to [-delta, delta] */
POINTWISE_LOSS(huber,
    vf d = vf_sub(x, t), a = vf_abs(d);
    loss = vf_select(vf_lt(a, param), vf_mul(vf_mul(vf_set1(0.5f), d), d),
                     vf_mul(param, vf_fnmadd(vf_set1(0.5f), param, a)));
    grad = vf_min(param, vf_max(vf_neg(param), d));)

/* bce on probabilities x in [0, 1]: -(t max(log x, -100) + (1 - t) max(log(1 - x), -100));
 * gradient (x - t) / max(x (1 - x), 1e-12), as torch */
POINTWISE_LOSS(bce,
    vf floor = vf_set1(-100.0f);
    vf log_x = vf_max(vf_log(x), floor), log_1mx = vf_max(vf_log1m(x), floor);
    loss = vf_neg(vf_fmadd(t, vf_sub(log_x, log_1mx), log_1mx));
    grad = vf_div(vf_sub(x, t), vf_max(vf_mul(x, vf_sub(one, x)), vf_set1(1e-12f)));)

/* bce on logits with pos_weight p (1 without o->pos_weight), l = 1 + (p - 1) t:
 * loss = (1 - t) x + l softplus(-x) = x (x > 0 ? 1 - t : -p t) + l log1p(exp(-|x|)),
 * one product per branch so that nothing cancels for t near 1;
 * gradient l sigmoid(x) - p t */
POINTWISE_LOSS(bce_with_logits,
    vf p = o->pos_weight ? vf_load_w(o->pos_weight + i, w, 1.0f) : one;
    vf l = vf_fmadd(vf_sub(p, one), t, one);
    vf e = vf_exp(vf_neg(vf_abs(x)));
    vf pt = vf_mul(p, t);
    vf linear = vf_mul(x, vf_select(vf_gt(x, vf_zero()), vf_sub(one, t), vf_neg(pt)));
    loss = vf_fmadd(l, vf_log1p_01(e), linear);
    grad = vf_sub(vf_mul(l, vf_sigmoid_given_exp(x, e)), pt);)

/* soft margin: log(1 + exp(-t x)), gradient -t sigmoid(-t x) */
POINTWISE_LOSS(soft_margin,
    vf z = vf_neg(vf_mul(t, x));
    loss = softplus_of(z);
    grad = vf_neg(vf_mul(t, vf_sigmoid(z)));)

/* kl_div of log-probabilities x against t: t log t - t x (0 log 0 = 0), gradient -t;
 * with log_target (o->log_space): exp(t) (t - x), gradient -exp(t) */
POINTWISE_LOSS(kl_div,
    if (o->log_space) {
        vf p = vf_exp(t);
        loss = vf_mul(p, vf_sub(t, x));
        grad = vf_neg(p);
    } else {
        vf t_log_t = vf_select(vf_gt(t, vf_zero()), vf_mul(t, vf_log(t)),
                               vf_select(vf_lt(t, vf_zero()), vf_set1(NAN), vf_zero()));
        loss = vf_fnmadd(t, x, t_log_t);
        grad = vf_neg(t);
    })

/* poisson_nll: with log_input (o->log_space) exp(x) - t x, gradient exp(x) - t;
 * else x - t log(x + eps), gradient 1 - t / (x + eps) (param = eps); with o->full
 * the Stirling term t log t - t + log(2 pi t) / 2 where t > 1 */
POINTWISE_LOSS(poisson_nll,
    if (o->log_space) {
        vf e = vf_exp(x);
        loss = vf_fnmadd(t, x, e);
        grad = vf_sub(e, t);
    } else {
        vf xe = vf_add(x, param);
        loss = vf_fnmadd(t, vf_log(xe), x);
        grad = vf_sub(one, vf_div(t, xe));
    }
    if (o->full) {
        vf log_t = vf_log(t);
        vf stirling = vf_fmadd(t, vf_sub(log_t, one),
                               vf_mul(vf_set1(0.5f), vf_add(log_t, vf_set1(1.83787707f))));
        loss = vf_add(loss, vf_select(vf_gt(t, one), stirling, vf_zero()));
    })

/* margin ranking on x = input1 - input2 (param = margin):
 * max(0, margin - t x), gradient -t where margin - t x >= 0 (torch's clamp_min) */
POINTWISE_LOSS(margin_ranking,
    vf m = vf_fnmadd(t, x, param);
    loss = vf_max(m, vf_zero());
    grad = vf_select(vf_lt(m, vf_zero()), vf_zero(), vf_neg(t));)

const fnn_loss_kernels FNN_K(fnn_loss_kernels) = {
    .cross_entropy = FNN_K(cross_entropy),
    .cross_entropy_probs = FNN_K(cross_entropy_probs),
    .nll = FNN_K(nll),
    .cosine_embedding = FNN_K(cosine_embedding),
    .gaussian_nll = FNN_K(gaussian_nll),
    .pointwise = {
        [FNN_LOSS_MSE] = FNN_K(mse),
        [FNN_LOSS_L1] = FNN_K(l1),
        [FNN_LOSS_SMOOTH_L1] = FNN_K(smooth_l1),
        [FNN_LOSS_HUBER] = FNN_K(huber),
        [FNN_LOSS_BCE] = FNN_K(bce),
        [FNN_LOSS_BCE_WITH_LOGITS] = FNN_K(bce_with_logits),
        [FNN_LOSS_SOFT_MARGIN] = FNN_K(soft_margin),
        [FNN_LOSS_KL_DIV] = FNN_K(kl_div),
        [FNN_LOSS_POISSON_NLL] = FNN_K(poisson_nll),
        [FNN_LOSS_MARGIN_RANKING] = FNN_K(margin_ranking),
    },
};
