/*
 * optim_api.c - the public optimizer-update entry points declared in fastnn.h.
 *
 * Each checks its arguments, derives the step's scalars once (the bias
 * corrections in double) and splits the n elements over threads as the
 * element-wise kernels do; the kernels are in optim.c. Compiled once.
 * Dimension letter: n, the parameter's element count; every array is (n,).
 */
#include <math.h>
#include <stddef.h>

#include "fastnn.h"
#include "kernels.h"

/* Adam and RMSprop spend a square root and a division per element (about 2
 * cycles), so a thread pays off on far fewer elements than in a memory-bound
 * pass; measured: a 50K-element Adam step takes 37 us on 1 thread, 25 us on 2 */
#define FNN_GRAIN_SQRT_DIV (FNN_GRAIN_ELEMENTWISE / 8)

/* finite and >= 0 (NaN fails) */
static int nonneg(float x) { return isfinite(x) && x >= 0.0f; }
/* in [0, 1) */
static int below_one(float x) { return x >= 0.0f && x < 1.0f; }
/* p + i for an optional buffer */
static float *at(float *p, int64_t i) { return p ? p + i : NULL; }

typedef struct {
    const fnn_optim_kernels *k; /* read once per call */
    float *param, *a, *b, *c; /* the state buffers, in the kernel's order */
    const float *grad;
    union {
        fnn_sgd_coefs sgd;
        fnn_adam_coefs adam;
        fnn_rmsprop_coefs rmsprop;
        fnn_adagrad_coefs adagrad;
        fnn_adamax_coefs adamax;
        fnn_radam_coefs radam;
        fnn_nadam_coefs nadam;
        fnn_adadelta_coefs adadelta;
        fnn_asgd_coefs asgd;
        fnn_rprop_coefs rprop;
    } coefs;
} optim_job;

static void sgd_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->sgd(j->param + begin, j->grad + begin, at(j->a, begin), end - begin, &j->coefs.sgd);
}

static void adam_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->adam(j->param + begin, j->grad + begin, j->a + begin, j->b + begin, at(j->c, begin),
            end - begin, &j->coefs.adam);
}

static void rmsprop_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->rmsprop(j->param + begin, j->grad + begin, j->a + begin, at(j->b, begin), at(j->c, begin),
               end - begin, &j->coefs.rmsprop);
}

static void adagrad_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->adagrad(j->param + begin, j->grad + begin, j->a + begin, end - begin,
                  &j->coefs.adagrad);
}

static void adamax_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->adamax(j->param + begin, j->grad + begin, j->a + begin, j->b + begin, end - begin,
                 &j->coefs.adamax);
}

static void radam_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->radam(j->param + begin, j->grad + begin, j->a + begin, j->b + begin, end - begin,
                &j->coefs.radam);
}

static void nadam_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->nadam(j->param + begin, j->grad + begin, j->a + begin, j->b + begin, end - begin,
                &j->coefs.nadam);
}

static void adadelta_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->adadelta(j->param + begin, j->grad + begin, j->a + begin, j->b + begin, end - begin,
                   &j->coefs.adadelta);
}

static void asgd_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->asgd(j->param + begin, j->grad + begin, j->a + begin, end - begin, &j->coefs.asgd);
}

static void rprop_range(void *ctx, int64_t begin, int64_t end) {
    optim_job *j = ctx;
    j->k->rprop(j->param + begin, j->grad + begin, j->a + begin, j->b + begin, end - begin,
                &j->coefs.rprop);
}

fnn_status fnn_sgd_step(float *param, const float *grad, float *momentum_buf, int64_t n,
                        float lr, float momentum, float dampening, int nesterov,
                        float weight_decay, int first_step, int maximize) {
    if (n < 0 || !nonneg(lr) || !nonneg(momentum) || !isfinite(dampening) ||
        !nonneg(weight_decay) || (nesterov && (momentum == 0.0f || dampening != 0.0f)))
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || (momentum != 0.0f && !momentum_buf))) return FNN_ERR_ARG;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = momentum != 0.0f ? momentum_buf : NULL,
                   .coefs.sgd = {.neg_lr = -lr, .weight_decay = weight_decay,
                                 .momentum = momentum,
                                 .one_minus_dampening = (float)(1.0 - (double)dampening),
                                 .nesterov = nesterov != 0, .first_step = first_step != 0,
                                 .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, sgd_range);
    return FNN_OK;
}

fnn_status fnn_adam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                         float *max_exp_avg_sq, int64_t n, float lr, float beta1, float beta2,
                         float eps, float weight_decay, int decoupled, int64_t step,
                         int maximize) {
    if (n < 0 || !nonneg(lr) || !below_one(beta1) || !below_one(beta2) || !nonneg(eps) ||
        !nonneg(weight_decay) || step < 1)
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !exp_avg || !exp_avg_sq)) return FNN_ERR_ARG;
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = exp_avg, .b = exp_avg_sq,
                   .c = max_exp_avg_sq,
                   .coefs.adam = {
                       .weight_decay = decoupled ? 0.0f : weight_decay,
                       .decay = decoupled ? (float)(1.0 - (double)lr * weight_decay) : 1.0f,
                       .one_minus_beta1 = (float)(1.0 - (double)beta1),
                       .beta2 = beta2,
                       .one_minus_beta2 = (float)(1.0 - (double)beta2),
                       .eps = eps,
                       .inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2)),
                       .neg_step_size = (float)(-(double)lr / bc1),
                       .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_SQRT_DIV, FNN_ALIGN_FLOATS, &j, adam_range);
    return FNN_OK;
}

fnn_status fnn_rmsprop_step(float *param, const float *grad, float *square_avg, float *grad_avg,
                            float *momentum_buf, int64_t n, float lr, float alpha, float eps,
                            float weight_decay, float momentum, int maximize) {
    if (n < 0 || !nonneg(lr) || !(alpha >= 0.0f && alpha <= 1.0f) || !nonneg(eps) ||
        !nonneg(weight_decay) || !nonneg(momentum))
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !square_avg || (momentum > 0.0f && !momentum_buf)))
        return FNN_ERR_ARG;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = square_avg, .b = grad_avg,
                   .c = momentum > 0.0f ? momentum_buf : NULL,
                   .coefs.rmsprop = {.neg_lr = -lr, .weight_decay = weight_decay,
                                     .alpha = alpha,
                                     .one_minus_alpha = (float)(1.0 - (double)alpha),
                                     .eps = eps, .momentum = momentum,
                                     .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_SQRT_DIV, FNN_ALIGN_FLOATS, &j, rmsprop_range);
    return FNN_OK;
}

fnn_status fnn_adagrad_step(float *param, const float *grad, float *sum, int64_t n, float lr,
                            float lr_decay, float weight_decay, float eps, int64_t step,
                            int maximize) {
    if (n < 0 || !nonneg(lr) || !nonneg(lr_decay) || !nonneg(weight_decay) || !nonneg(eps) ||
        step < 1)
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !sum)) return FNN_ERR_ARG;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = sum,
                   .coefs.adagrad = {
                       .neg_clr = (float)(-(double)lr / (1.0 + (double)(step - 1) * lr_decay)),
                       .weight_decay = weight_decay, .eps = eps, .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_SQRT_DIV, FNN_ALIGN_FLOATS, &j, adagrad_range);
    return FNN_OK;
}

fnn_status fnn_adamax_step(float *param, const float *grad, float *exp_avg, float *exp_inf,
                           int64_t n, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int64_t step, int maximize) {
    if (n < 0 || !nonneg(lr) || !below_one(beta1) || !below_one(beta2) || !nonneg(eps) ||
        !nonneg(weight_decay) || step < 1)
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !exp_avg || !exp_inf)) return FNN_ERR_ARG;
    double bc1 = 1.0 - pow(beta1, (double)step);
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = exp_avg,
                   .b = exp_inf,
                   .coefs.adamax = {.weight_decay = weight_decay,
                                    .one_minus_beta1 = (float)(1.0 - (double)beta1),
                                    .beta2 = beta2, .eps = eps,
                                    .neg_clr = (float)(-(double)lr / bc1),
                                    .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_SQRT_DIV, FNN_ALIGN_FLOATS, &j, adamax_range);
    return FNN_OK;
}

fnn_status fnn_radam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                          int64_t n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, int decoupled, int64_t step, int maximize) {
    if (n < 0 || !nonneg(lr) || !below_one(beta1) || !below_one(beta2) || !nonneg(eps) ||
        !nonneg(weight_decay) || step < 1)
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !exp_avg || !exp_avg_sq)) return FNN_ERR_ARG;
    double b2t = pow(beta2, (double)step);
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - b2t;
    double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    double rho = rho_inf - 2.0 * (double)step * b2t / bc2;
    int rectified = rho > 5.0;
    double rect = rectified ? sqrt((rho - 4.0) * (rho - 2.0) * rho_inf /
                                   ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)) : 1.0;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = exp_avg,
                   .b = exp_avg_sq,
                   .coefs.radam = {
                       .weight_decay = decoupled ? 0.0f : weight_decay,
                       .decay = decoupled ? (float)(1.0 - (double)lr * weight_decay) : 1.0f,
                       .one_minus_beta1 = (float)(1.0 - (double)beta1),
                       .beta2 = beta2, .one_minus_beta2 = (float)(1.0 - (double)beta2),
                       .eps = eps, .inv_bc1 = (float)(1.0 / bc1),
                       .sqrt_bc2 = (float)sqrt(bc2),
                       .neg_lr_rect = (float)(-(double)lr * rect),
                       .rectified = rectified, .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_SQRT_DIV, FNN_ALIGN_FLOATS, &j, radam_range);
    return FNN_OK;
}

/* NAdam's momentum cache at a step: beta1 (1 - 0.5 * 0.96^(step momentum_decay)) */
static double nadam_mu(float beta1, float momentum_decay, int64_t step) {
    return beta1 * (1.0 - 0.5 * pow(0.96, (double)step * momentum_decay));
}

fnn_status fnn_nadam_step(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                          float *mu_product, int64_t n, float lr, float beta1, float beta2,
                          float eps, float weight_decay, float momentum_decay, int decoupled,
                          int64_t step, int maximize) {
    if (n < 0 || !nonneg(lr) || !below_one(beta1) || !below_one(beta2) || !nonneg(eps) ||
        !nonneg(weight_decay) || !nonneg(momentum_decay) || step < 1 || !mu_product)
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !exp_avg || !exp_avg_sq)) return FNN_ERR_ARG;
    double mu = nadam_mu(beta1, momentum_decay, step);
    double mu_next = nadam_mu(beta1, momentum_decay, step + 1);
    *mu_product = *mu_product * (float)mu; /* in float, as torch's 0-d tensor *= mu */
    double product = *mu_product;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = exp_avg,
                   .b = exp_avg_sq,
                   .coefs.nadam = {
                       .weight_decay = decoupled ? 0.0f : weight_decay,
                       .decay = decoupled ? (float)(1.0 - (double)lr * weight_decay) : 1.0f,
                       .one_minus_beta1 = (float)(1.0 - (double)beta1),
                       .beta2 = beta2, .one_minus_beta2 = (float)(1.0 - (double)beta2),
                       .eps = eps, .inv_bc2 = (float)(1.0 / (1.0 - pow(beta2, (double)step))),
                       .grad_coef = (float)(-(double)lr * (1.0 - mu) / (1.0 - product)),
                       .avg_coef = (float)(-(double)lr * mu_next / (1.0 - product * mu_next)),
                       .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_SQRT_DIV, FNN_ALIGN_FLOATS, &j, nadam_range);
    return FNN_OK;
}

fnn_status fnn_adadelta_step(float *param, const float *grad, float *square_avg,
                             float *acc_delta, int64_t n, float lr, float rho, float eps,
                             float weight_decay, int maximize) {
    if (n < 0 || !nonneg(lr) || !(rho >= 0.0f && rho <= 1.0f) || !nonneg(eps) ||
        !nonneg(weight_decay))
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !square_avg || !acc_delta)) return FNN_ERR_ARG;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = square_avg,
                   .b = acc_delta,
                   .coefs.adadelta = {.neg_lr = -lr, .weight_decay = weight_decay, .rho = rho,
                                      .one_minus_rho = (float)(1.0 - (double)rho), .eps = eps,
                                      .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_SQRT_DIV, FNN_ALIGN_FLOATS, &j, adadelta_range);
    return FNN_OK;
}

fnn_status fnn_asgd_step(float *param, const float *grad, float *ax, float *eta, float *mu,
                         int64_t n, float lr, float lambd, float alpha, float t0,
                         float weight_decay, int64_t step, int maximize) {
    if (n < 0 || !nonneg(lr) || !isfinite(lambd) || !isfinite(alpha) || !isfinite(t0) ||
        !nonneg(weight_decay) || step < 1 || !eta || !mu)
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !ax)) return FNN_ERR_ARG;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = ax,
                   .coefs.asgd = {.weight_decay = weight_decay,
                                  .decay = (float)(1.0 - (double)lambd * *eta),
                                  .neg_eta = -*eta, .mu = *mu, .averaging = *mu != 1.0f,
                                  .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, asgd_range);
    *eta = (float)(lr / pow(1.0 + (double)lambd * lr * (double)step, alpha));
    *mu = (float)(1.0 / fmax(1.0, (double)step - t0));
    return FNN_OK;
}

fnn_status fnn_rprop_step(float *param, const float *grad, float *prev, float *step_size,
                          int64_t n, float etaminus, float etaplus, float step_size_min,
                          float step_size_max, int maximize) {
    if (n < 0 || !(etaminus > 0.0f && etaminus < 1.0f && etaplus > 1.0f && isfinite(etaplus)) ||
        !nonneg(step_size_min) || !nonneg(step_size_max) || step_size_min > step_size_max)
        return FNN_ERR_ARG;
    if (n > 0 && (!param || !grad || !prev || !step_size)) return FNN_ERR_ARG;
    optim_job j = {.k = fnn_active_optim(), .param = param, .grad = grad, .a = prev,
                   .b = step_size,
                   .coefs.rprop = {.etaminus = etaminus, .etaplus = etaplus,
                                   .step_size_min = step_size_min,
                                   .step_size_max = step_size_max, .maximize = maximize != 0}};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, rprop_range);
    return FNN_OK;
}
