/*
 * optim.c - fused optimizer updates: SGD, Adam / AdamW, RMSprop, Adagrad, Adamax,
 * RAdam, NAdam, Adadelta, ASGD, Rprop.
 *
 * Compiled once per ISA (see simd.h). Each kernel makes one step of
 * torch.optim's single-tensor update over n floats, in place, in one pass:
 * every element reads its parameter, gradient and state once and writes them
 * back once. The step's scalars come precomputed (kernels.h). Option flags
 * are loop-invariant branches. The ragged tail goes through the same vector
 * code with masked loads, so an element's result does not depend on where a
 * thread's range starts. The operation order follows torch's CPU kernels;
 * vf_fmadd fuses where torch's vectorised kernels do (add with alpha, lerp).
 * Dimension letter: n, the parameter's element count; every array is (n,).
 * The file ends with this ISA's fnn_optim_kernels (kernels.h).
 */
#include "simd.h"
#include "kernels.h"

/* grad (negated when maximize) plus weight_decay * p (only when weight_decay != 0,
 * as torch) */
FNN_INLINE vf decayed_grad(const float *grad, vf p, int64_t w, float weight_decay,
                           int maximize) {
    vf g = vf_load_w(grad, w, 0.0f);
    if (maximize) g = vf_neg(g);
    return weight_decay != 0.0f ? vf_fmadd(p, vf_set1(weight_decay), g) : g;
}

/* the running average of squares beta avg + (1 - beta) g^2 */
FNN_INLINE vf square_avg_update(vf avg, vf g, vf beta, vf one_minus_beta) {
    return vf_fmadd(vf_mul(g, g), one_minus_beta, vf_mul(avg, beta));
}

/* torch's lerp(a, b, t) = a + t (b - a), computed from the nearer end so that
 * t = 1 gives b exactly */
FNN_INLINE vf lerp(vf a, vf b, float t) {
    return t < 0.5f ? vf_fmadd(vf_sub(b, a), vf_set1(t), a)
                    : vf_fnmadd(vf_sub(b, a), vf_set1(1.0f - t), b);
}

/* ---- SGD with momentum, dampening and Nesterov ---------------------------
 * param, grad, momentum_buf (n,); momentum_buf NULL: no momentum.
 * g = (maximize ? -grad : grad) + wd param;  buf = first_step ? g : momentum buf + (1 - dampening) g;
 * g = nesterov ? g + momentum buf : buf;  param -= lr g */
static void FNN_K(sgd_step)(float *param, const float *grad, float *momentum_buf, int64_t n,
                            const fnn_sgd_coefs *c) {
    const vf neg_lr = vf_set1(c->neg_lr), mom = vf_set1(c->momentum);
    const vf keep = vf_set1(c->one_minus_dampening);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p = vf_load_w(param + i, w, 0.0f);
        vf g = decayed_grad(grad + i, p, w, c->weight_decay, c->maximize);
        if (momentum_buf) {
            vf buf = c->first_step ? g
                   : vf_fmadd(g, keep, vf_mul(vf_load_w(momentum_buf + i, w, 0.0f), mom));
            vf_store_w(momentum_buf + i, buf, w);
            g = c->nesterov ? vf_fmadd(buf, mom, g) : buf;
        }
        vf_store_w(param + i, vf_fmadd(g, neg_lr, p), w);
    }
}

/* Adam's, RAdam's and NAdam's shared start at element i (w lanes): param *= decay (decoupled
 * weight decay, 1 for none), g = (maximize ? -grad : grad) + wd param,
 * m = lerp(m, g, 1 - beta1), v = beta2 v + (1 - beta2) g^2; m and v are stored;
 * returns g (NAdam's update uses it) */
FNN_INLINE vf adam_moments(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                             int64_t w, float decay, float weight_decay, int maximize,
                             float one_minus_beta1, vf beta2, vf one_minus_beta2,
                             vf *p, vf *m, vf *v) {
    *p = vf_load_w(param, w, 0.0f);
    if (decay != 1.0f) *p = vf_mul(*p, vf_set1(decay));
    vf g = decayed_grad(grad, *p, w, weight_decay, maximize);
    *m = lerp(vf_load_w(exp_avg, w, 0.0f), g, one_minus_beta1);
    *v = square_avg_update(vf_load_w(exp_avg_sq, w, 0.0f), g, beta2, one_minus_beta2);
    vf_store_w(exp_avg, *m, w);
    vf_store_w(exp_avg_sq, *v, w);
    return g;
}

/* ---- Adam / AdamW, optionally AMSGrad -------------------------------------
 * param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq (n,); max_exp_avg_sq NULL:
 * no amsgrad. g = maximize ? -grad : grad; param *= decay (AdamW) or g += wd param (Adam);
 * m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v);
 * param -= step_size m / (sqrt(v or vmax) / sqrt(bc2) + eps).
 * The division by sqrt(bc2) is a multiply by its reciprocal, as torch's CPU
 * division by a scalar. */
static void FNN_K(adam_step)(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                             float *max_exp_avg_sq, int64_t n, const fnn_adam_coefs *c) {
    const vf eps = vf_set1(c->eps);
    const vf beta2 = vf_set1(c->beta2), one_minus_beta2 = vf_set1(c->one_minus_beta2);
    const vf inv_sqrt_bc2 = vf_set1(c->inv_sqrt_bc2), neg_step_size = vf_set1(c->neg_step_size);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p, m, v;
        adam_moments(param + i, grad + i, exp_avg + i, exp_avg_sq + i, w, c->decay,
                     c->weight_decay, c->maximize, c->one_minus_beta1, beta2, one_minus_beta2,
                     &p, &m, &v);
        if (max_exp_avg_sq) {
            v = vf_max(vf_load_w(max_exp_avg_sq + i, w, 0.0f), v); /* a NaN v passes */
            vf_store_w(max_exp_avg_sq + i, v, w);
        }
        vf denom = vf_fmadd(vf_sqrt(v), inv_sqrt_bc2, eps);
        vf_store_w(param + i, vf_fmadd(vf_div(m, denom), neg_step_size, p), w);
    }
}

/* ---- RMSprop, optionally centered, optionally with momentum ---------------
 * param, grad, square_avg, grad_avg, momentum_buf (n,); grad_avg NULL: not
 * centered; momentum_buf NULL: no momentum.
 * g = (maximize ? -grad : grad) + wd param;  s = alpha s + (1 - alpha) g^2;
 * centered: ga = lerp(ga, g, 1 - alpha), avg = sqrt(s - ga^2) + eps, else
 * avg = sqrt(s) + eps;  momentum: buf = momentum buf + g / avg, param -= lr buf,
 * else param -= lr g / avg */
static void FNN_K(rmsprop_step)(float *param, const float *grad, float *square_avg,
                                float *grad_avg, float *momentum_buf, int64_t n,
                                const fnn_rmsprop_coefs *c) {
    const vf neg_lr = vf_set1(c->neg_lr), eps = vf_set1(c->eps), mom = vf_set1(c->momentum);
    const vf alpha = vf_set1(c->alpha), one_minus_alpha = vf_set1(c->one_minus_alpha);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p = vf_load_w(param + i, w, 0.0f);
        vf g = decayed_grad(grad + i, p, w, c->weight_decay, c->maximize);
        vf s = square_avg_update(vf_load_w(square_avg + i, w, 0.0f), g, alpha, one_minus_alpha);
        vf_store_w(square_avg + i, s, w);
        if (grad_avg) {
            vf ga = lerp(vf_load_w(grad_avg + i, w, 0.0f), g, c->one_minus_alpha);
            vf_store_w(grad_avg + i, ga, w);
            s = vf_fnmadd(ga, ga, s);
        }
        vf step = vf_div(g, vf_add(vf_sqrt(s), eps));
        if (momentum_buf) {
            step = vf_fmadd(vf_load_w(momentum_buf + i, w, 0.0f), mom, step);
            vf_store_w(momentum_buf + i, step, w);
        }
        vf_store_w(param + i, vf_fmadd(step, neg_lr, p), w);
    }
}

/* ---- Adagrad ----------------------------------------------------------------
 * param, grad, sum (n,).
 * g = (maximize ? -grad : grad) + wd param;  sum += g^2;  param -= clr g / (sqrt(sum) + eps) */
static void FNN_K(adagrad_step)(float *param, const float *grad, float *sum, int64_t n,
                                const fnn_adagrad_coefs *c) {
    const vf neg_clr = vf_set1(c->neg_clr), eps = vf_set1(c->eps);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p = vf_load_w(param + i, w, 0.0f);
        vf g = decayed_grad(grad + i, p, w, c->weight_decay, c->maximize);
        vf s = vf_fmadd(g, g, vf_load_w(sum + i, w, 0.0f));
        vf_store_w(sum + i, s, w);
        vf_store_w(param + i, vf_fmadd(vf_div(g, vf_add(vf_sqrt(s), eps)), neg_clr, p), w);
    }
}

/* ---- Adamax ---------------------------------------------------------------------
 * param, grad, exp_avg, exp_inf (n,).
 * g = (maximize ? -grad : grad) + wd param;  m = lerp(m, g, 1 - beta1);
 * u = max(beta2 u, |g| + eps);  param -= lr / (1 - beta1^step) m / u */
static void FNN_K(adamax_step)(float *param, const float *grad, float *exp_avg, float *exp_inf,
                               int64_t n, const fnn_adamax_coefs *c) {
    const vf beta2 = vf_set1(c->beta2), eps = vf_set1(c->eps), neg_clr = vf_set1(c->neg_clr);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p = vf_load_w(param + i, w, 0.0f);
        vf g = decayed_grad(grad + i, p, w, c->weight_decay, c->maximize);
        vf m = lerp(vf_load_w(exp_avg + i, w, 0.0f), g, c->one_minus_beta1);
        vf u = vf_max(vf_mul(vf_load_w(exp_inf + i, w, 0.0f), beta2), vf_add(vf_abs(g), eps));
        vf_store_w(exp_avg + i, m, w);
        vf_store_w(exp_inf + i, u, w);
        vf_store_w(param + i, vf_fmadd(vf_div(m, u), neg_clr, p), w);
    }
}

/* ---- RAdam ----------------------------------------------------------------------
 * param, grad, exp_avg, exp_avg_sq (n,).
 * param *= decay (decoupled) or g = grad + wd param;  m = lerp(m, g, 1 - beta1);
 * v = beta2 v + (1 - beta2) g^2;  mhat = m / (1 - beta1^step);
 * rectified (rho_t > 5): param -= lr rect mhat sqrt(1 - beta2^step) / (sqrt(v) + eps),
 * else param -= lr mhat */
static void FNN_K(radam_step)(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                              int64_t n, const fnn_radam_coefs *c) {
    const vf eps = vf_set1(c->eps), inv_bc1 = vf_set1(c->inv_bc1);
    const vf beta2 = vf_set1(c->beta2), one_minus_beta2 = vf_set1(c->one_minus_beta2);
    const vf sqrt_bc2 = vf_set1(c->sqrt_bc2), neg_lr_rect = vf_set1(c->neg_lr_rect);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p, m, v;
        adam_moments(param + i, grad + i, exp_avg + i, exp_avg_sq + i, w, c->decay,
                     c->weight_decay, c->maximize, c->one_minus_beta1, beta2, one_minus_beta2,
                     &p, &m, &v);
        vf mhat = vf_mul(m, inv_bc1);
        if (c->rectified)
            mhat = vf_mul(mhat, vf_div(sqrt_bc2, vf_add(vf_sqrt(v), eps)));
        vf_store_w(param + i, vf_fmadd(mhat, neg_lr_rect, p), w);
    }
}

/* ---- NAdam -----------------------------------------------------------------------
 * param, grad, exp_avg, exp_avg_sq (n,).
 * param *= decay (decoupled) or g = grad + wd param;  m = lerp(m, g, 1 - beta1);
 * v = beta2 v + (1 - beta2) g^2;  denom = sqrt(v / bc2) + eps (the division a multiply
 * by the reciprocal, as torch's division by a scalar);
 * param += grad_coef g / denom, then param += avg_coef m / denom */
static void FNN_K(nadam_step)(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                              int64_t n, const fnn_nadam_coefs *c) {
    const vf eps = vf_set1(c->eps), inv_bc2 = vf_set1(c->inv_bc2);
    const vf beta2 = vf_set1(c->beta2), one_minus_beta2 = vf_set1(c->one_minus_beta2);
    const vf grad_coef = vf_set1(c->grad_coef), avg_coef = vf_set1(c->avg_coef);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p, m, v;
        vf g = adam_moments(param + i, grad + i, exp_avg + i, exp_avg_sq + i, w, c->decay,
                            c->weight_decay, c->maximize, c->one_minus_beta1, beta2,
                            one_minus_beta2, &p, &m, &v);
        vf denom = vf_add(vf_sqrt(vf_mul(v, inv_bc2)), eps);
        p = vf_fmadd(vf_div(g, denom), grad_coef, p);
        vf_store_w(param + i, vf_fmadd(vf_div(m, denom), avg_coef, p), w);
    }
}

/* ---- Adadelta --------------------------------------------------------------------
 * param, grad, square_avg, acc_delta (n,).
 * g = (maximize ? -grad : grad) + wd param;  s = rho s + (1 - rho) g^2;
 * delta = sqrt(acc_delta + eps) / sqrt(s + eps) g;  acc_delta = rho acc_delta + (1 - rho) delta^2;
 * param -= lr delta */
static void FNN_K(adadelta_step)(float *param, const float *grad, float *square_avg,
                                 float *acc_delta, int64_t n, const fnn_adadelta_coefs *c) {
    const vf neg_lr = vf_set1(c->neg_lr), eps = vf_set1(c->eps);
    const vf rho = vf_set1(c->rho), one_minus_rho = vf_set1(c->one_minus_rho);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p = vf_load_w(param + i, w, 0.0f);
        vf g = decayed_grad(grad + i, p, w, c->weight_decay, c->maximize);
        vf s = square_avg_update(vf_load_w(square_avg + i, w, 0.0f), g, rho, one_minus_rho);
        vf acc = vf_load_w(acc_delta + i, w, 0.0f);
        vf delta = vf_mul(vf_div(vf_sqrt(vf_add(acc, eps)), vf_sqrt(vf_add(s, eps))), g);
        vf_store_w(square_avg + i, s, w);
        vf_store_w(acc_delta + i, square_avg_update(acc, delta, rho, one_minus_rho), w);
        vf_store_w(param + i, vf_fmadd(delta, neg_lr, p), w);
    }
}

/* ---- ASGD ------------------------------------------------------------------------
 * param, grad, ax (n,).
 * g = (maximize ? -grad : grad) + wd param;  param *= 1 - lambd eta;  param -= eta g;
 * averaging (mu != 1): ax += (param - ax) mu, else ax = param */
static void FNN_K(asgd_step)(float *param, const float *grad, float *ax, int64_t n,
                             const fnn_asgd_coefs *c) {
    const vf decay = vf_set1(c->decay), neg_eta = vf_set1(c->neg_eta), mu = vf_set1(c->mu);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf p = vf_load_w(param + i, w, 0.0f);
        vf g = decayed_grad(grad + i, p, w, c->weight_decay, c->maximize);
        p = vf_fmadd(g, neg_eta, vf_mul(p, decay));
        vf_store_w(param + i, p, w);
        if (c->averaging) {
            vf a = vf_load_w(ax + i, w, 0.0f);
            p = vf_add(a, vf_mul(vf_sub(p, a), mu));
        }
        vf_store_w(ax + i, p, w);
    }
}

/* ---- Rprop -----------------------------------------------------------------------
 * param, grad, prev, step_size (n,).
 * g = maximize ? -grad : grad;  s = g prev;
 * factor = etaplus (s > 0), etaminus (s < 0), else 1 (s == 0 or NaN: torch's sign of NaN is 0);
 * step_size = clamp(step_size factor, step_size_min, step_size_max) (NaN passes);
 * g = 0 where s < 0;  param -= sign(g) step_size;  prev = g */
static void FNN_K(rprop_step)(float *param, const float *grad, float *prev, float *step_size,
                              int64_t n, const fnn_rprop_coefs *c) {
    const vf zero = vf_zero(), one = vf_set1(1.0f), minus_one = vf_set1(-1.0f);
    const vf etaminus = vf_set1(c->etaminus), etaplus = vf_set1(c->etaplus);
    const vf lo = vf_set1(c->step_size_min), hi = vf_set1(c->step_size_max);
    for (int64_t i = 0; i < n; i += FNN_VW) {
        int64_t w = vf_lanes(n - i);
        vf g = vf_load_w(grad + i, w, 0.0f);
        if (c->maximize) g = vf_neg(g);
        vf s = vf_mul(g, vf_load_w(prev + i, w, 0.0f));
        vm falling = vf_lt(s, zero);
        vf factor = vf_select(vf_gt(s, zero), etaplus, vf_select(falling, etaminus, one));
        vf size = vf_mul(vf_load_w(step_size + i, w, 0.0f), factor);
        size = vf_min(hi, vf_max(lo, size));
        g = vf_select(falling, zero, g);
        vf sign = vf_select(vf_gt(g, zero), one, vf_select(vf_lt(g, zero), minus_one, zero));
        vf_store_w(step_size + i, size, w);
        vf_store_w(prev + i, g, w);
        vf_store_w(param + i, vf_sub(vf_load_w(param + i, w, 0.0f), vf_mul(sign, size)), w);
    }
}

const fnn_optim_kernels FNN_K(fnn_optim_kernels) = {
    .sgd = FNN_K(sgd_step),
    .adam = FNN_K(adam_step),
    .rmsprop = FNN_K(rmsprop_step),
    .adagrad = FNN_K(adagrad_step),
    .adamax = FNN_K(adamax_step),
    .radam = FNN_K(radam_step),
    .nadam = FNN_K(nadam_step),
    .adadelta = FNN_K(adadelta_step),
    .asgd = FNN_K(asgd_step),
    .rprop = FNN_K(rprop_step),
};
