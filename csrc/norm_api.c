/*
 * norm_api.c - the public batch norm and group norm entry points of fastnn.h.
 *
 * Compiled once. Dimension letters: N batch, C channels, S spatial size,
 * G groups, CG = C / G channels per group; arrays are (N, C, S).
 * Batch norm: threads split channels. With S > 1 each channel is a plane of N
 * runs of S floats (norm.c's plane loops); with S == 1 the channels are the
 * columns of an (N, C) matrix and a thread takes runs of columns (cols loops),
 * in blocks of NORM_BLOCK columns with their per-column scalars on the stack.
 * Group norm: threads split the N * G (n, group) blocks; the weight and bias
 * gradients are then summed over n in order, per channel, on one thread.
 * Every statistic is summed whole by one thread in a fixed order, so results
 * do not depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>

#include "fastnn.h"
#include "kernels.h"

#define NORM_BLOCK 64 /* columns per block in the S == 1 layout */

static int bad_real(float v, float lo, float hi) { return !(v >= lo && v <= hi); }

/* ---- batch norm forward ----------------------------------------------------- */

typedef struct {
    const fnn_norm_kernels *k; /* read once per call */
    float *out, *mean, *invstd, *running_mean, *running_var;
    const float *inp, *weight, *bias;
    int64_t N, C, S;
    double eps, momentum;
    int training, relu;
} bn_forward_job;

/* channel c's mean and invstd from its moments (training) or the running stats,
 * updating the running stats; returns scale = invstd * weight in *scale, shift in *shift */
static void bn_channel_stats(bn_forward_job *j, int64_t c, double mu, double m2, float *scale,
                             float *shift) {
    double M = (double)(j->N * j->S), m, inv;
    if (j->training) {
        double var = m2 / M;
        m = mu;
        inv = 1.0 / sqrt(var + j->eps);
        if (j->running_mean) {
            double f = j->momentum, unbiased = M > 1.0 ? m2 / (M - 1.0) : NAN;
            j->running_mean[c] = (float)((1.0 - f) * (double)j->running_mean[c] + f * mu);
            j->running_var[c] = (float)((1.0 - f) * (double)j->running_var[c] + f * unbiased);
        }
    } else {
        m = (double)j->running_mean[c];
        inv = 1.0 / sqrt((double)j->running_var[c] + j->eps);
    }
    j->mean[c] = (float)m;
    j->invstd[c] = (float)inv;
    *scale = (float)(inv * (j->weight ? (double)j->weight[c] : 1.0));
    *shift = j->bias ? j->bias[c] : 0.0f;
}

static void bn_forward_planes(void *ctx, int64_t begin, int64_t end) {
    bn_forward_job *j = ctx;
    int64_t N = j->N, C = j->C, S = j->S;
    for (int64_t c = begin; c < end; c++) {
        double mu = 0.0, m2 = 0.0;
        if (j->training) j->k->moments_plane(&mu, &m2, j->inp + c * S, N, S, C * S);
        float scale, shift;
        bn_channel_stats(j, c, mu, m2, &scale, &shift);
        j->k->affine_plane(j->out + c * S, j->inp + c * S, N, S, C * S, j->mean[c], scale, shift,
                           j->relu);
    }
}

static void bn_forward_cols(void *ctx, int64_t begin, int64_t end) {
    bn_forward_job *j = ctx;
    for (int64_t c0 = begin; c0 < end; c0 += NORM_BLOCK) {
        int64_t w = end - c0 < NORM_BLOCK ? end - c0 : NORM_BLOCK;
        double mu[NORM_BLOCK] = {0}, m2[NORM_BLOCK] = {0};
        float scale[NORM_BLOCK], shift[NORM_BLOCK];
        if (j->training) j->k->moments_cols(mu, m2, j->inp + c0, j->N, w, j->C);
        for (int64_t i = 0; i < w; i++) bn_channel_stats(j, c0 + i, mu[i], m2[i], &scale[i], &shift[i]);
        j->k->affine_cols(j->out + c0, j->inp + c0, j->N, w, j->C, j->mean + c0, scale, shift,
                          j->relu);
    }
}

/* the C channels over threads in chunks of about FNN_GRAIN_ELEMENTWISE elements:
 * S == 1, whole column blocks to `cols`; else single channels to `planes` */
static void split_channels(int64_t N, int64_t C, int64_t S, void *job, fnn_range_body cols,
                           fnn_range_body planes) {
    int64_t per = N * S > 0 ? N * S : 1;
    int64_t g = FNN_GRAIN_ELEMENTWISE / per;
    if (S == 1) {
        g = g < NORM_BLOCK ? NORM_BLOCK : (g + NORM_BLOCK - 1) / NORM_BLOCK * NORM_BLOCK;
        fnn_parallel_for(C, g, NORM_BLOCK, job, cols);
    } else {
        fnn_parallel_for(C, g < 1 ? 1 : g, 1, job, planes);
    }
}

fnn_status fnn_batch_norm_forward(float *out, float *mean, float *invstd, float *running_mean,
                                  float *running_var, const float *inp, const float *weight,
                                  const float *bias, int64_t N, int64_t C, int64_t S, float eps,
                                  float momentum, int training, fnn_activation act) {
    if (N < 0 || C < 0 || S < 0 || bad_real(eps, 0.0f, INFINITY) || eps == INFINITY ||
        bad_real(momentum, 0.0f, 1.0f) || (act != FNN_ACT_NONE && act != FNN_ACT_RELU))
        return FNN_ERR_ARG;
    if (!running_mean != !running_var) return FNN_ERR_ARG;
    if (!training && !running_mean) return FNN_ERR_ARG;
    if (C == 0) return FNN_OK;
    if (N * S == 0) { /* no values: eval still reports the statistics it would use */
        if (training) return FNN_ERR_ARG;
        for (int64_t c = 0; c < C; c++) {
            mean[c] = running_mean[c];
            invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
        }
        return FNN_OK;
    }
    bn_forward_job j = {.k = fnn_active_norm(), .out = out, .mean = mean, .invstd = invstd,
                        .running_mean = running_mean, .running_var = running_var, .inp = inp,
                        .weight = weight, .bias = bias, .N = N, .C = C, .S = S, .eps = eps,
                        .momentum = momentum, .training = training != 0,
                        .relu = act == FNN_ACT_RELU};
    split_channels(N, C, S, &j, bn_forward_cols, bn_forward_planes);
    return FNN_OK;
}

/* ---- batch norm backward ---------------------------------------------------- */

typedef struct {
    const fnn_norm_kernels *k;
    float *dinp, *dweight, *dbias;
    const float *dout, *mean, *invstd, *inp, *relu_out, *weight;
    int64_t N, C, S;
    int training, accumulate;
} bn_backward_job;

/* channel c's parameter gradients from its sums, and the coefficients of
 * dinp = a * dout + b * (inp - mean) + cc */
static void bn_channel_grad(bn_backward_job *j, int64_t c, double sdy, double sdyx, float *a,
                            float *b, float *cc) {
    double inv = (double)j->invstd[c], M = (double)(j->N * j->S);
    if (j->dweight) j->dweight[c] = (float)((double)j->dweight[c] + sdyx * inv);
    if (j->dbias) j->dbias[c] = (float)((double)j->dbias[c] + sdy);
    double wi = inv * (j->weight ? (double)j->weight[c] : 1.0);
    *a = (float)wi;
    *b = j->training ? (float)(-wi * inv * inv * sdyx / M) : 0.0f;
    *cc = j->training ? (float)(-wi * sdy / M) : 0.0f;
}

/* whether the reduction pass is needed at all */
static int bn_needs_sums(const bn_backward_job *j) {
    return j->dweight || j->dbias || (j->dinp && j->training);
}

static void bn_backward_planes(void *ctx, int64_t begin, int64_t end) {
    bn_backward_job *j = ctx;
    int64_t N = j->N, C = j->C, S = j->S;
    for (int64_t c = begin; c < end; c++) {
        double sdy = 0.0, sdyx = 0.0;
        int64_t off = c * S;
        if (bn_needs_sums(j))
            j->k->dot_plane(&sdy, &sdyx, j->dout + off, j->inp + off,
                            j->relu_out ? j->relu_out + off : NULL, N, S, C * S, j->mean[c]);
        float a, b, cc;
        bn_channel_grad(j, c, sdy, sdyx, &a, &b, &cc);
        if (j->dinp)
            j->k->dx_plane(j->dinp + off, j->dout + off, j->inp + off,
                           j->relu_out ? j->relu_out + off : NULL, N, S, C * S, j->mean[c], a, b,
                           cc, j->accumulate);
    }
}

static void bn_backward_cols(void *ctx, int64_t begin, int64_t end) {
    bn_backward_job *j = ctx;
    for (int64_t c0 = begin; c0 < end; c0 += NORM_BLOCK) {
        int64_t w = end - c0 < NORM_BLOCK ? end - c0 : NORM_BLOCK;
        double sdy[NORM_BLOCK] = {0}, sdyx[NORM_BLOCK] = {0};
        float a[NORM_BLOCK], b[NORM_BLOCK], cc[NORM_BLOCK];
        if (bn_needs_sums(j))
            j->k->dot_cols(sdy, sdyx, j->dout + c0, j->inp + c0,
                           j->relu_out ? j->relu_out + c0 : NULL, j->N, w, j->C, j->mean + c0);
        for (int64_t i = 0; i < w; i++) bn_channel_grad(j, c0 + i, sdy[i], sdyx[i], &a[i], &b[i], &cc[i]);
        if (j->dinp)
            j->k->dx_cols(j->dinp + c0, j->dout + c0, j->inp + c0,
                          j->relu_out ? j->relu_out + c0 : NULL, j->N, w, j->C, j->mean + c0,
                          a, b, cc, j->accumulate);
    }
}

fnn_status fnn_batch_norm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *mean, const float *invstd, const float *inp,
                                   const float *relu_out, const float *weight, int64_t N,
                                   int64_t C, int64_t S, int training, int accumulate) {
    if (N < 0 || C < 0 || S < 0) return FNN_ERR_ARG;
    if (C == 0 || N * S == 0) return FNN_OK; /* sums of nothing: the gradients stay */
    bn_backward_job j = {.k = fnn_active_norm(), .dinp = dinp,
                         .dweight = dweight, .dbias = dbias, .dout = dout, .mean = mean,
                         .invstd = invstd, .inp = inp, .relu_out = relu_out, .weight = weight,
                         .N = N, .C = C, .S = S,
                         .training = training != 0, .accumulate = accumulate != 0};
    split_channels(N, C, S, &j, bn_backward_cols, bn_backward_planes);
    return FNN_OK;
}

/* ---- group norm --------------------------------------------------------------- */

typedef struct {
    const fnn_norm_kernels *k;
    float *out, *dinp;
    double *sdy, *sdyx; /* (N, C) scratch of the backward */
    const float *mean, *invstd, *inp, *dout, *weight, *bias;
    float *mean_out, *invstd_out;
    int64_t C, S, G;
    double eps;
    int accumulate;
} gn_job;

static int64_t block_grain(int64_t per) {
    int64_t g = FNN_GRAIN_ELEMENTWISE / (per > 0 ? per : 1);
    return g < 1 ? 1 : g;
}

/* blocks [begin, end) of the N * G (n, group) blocks */
static void gn_forward_range(void *ctx, int64_t begin, int64_t end) {
    gn_job *j = ctx;
    int64_t CG = j->C / j->G, S = j->S;
    for (int64_t ng = begin; ng < end; ng++) {
        int64_t n = ng / j->G, c0 = (ng % j->G) * CG, off = (n * j->C + c0) * S;
        double mu, m2;
        j->k->moments_plane(&mu, &m2, j->inp + off, 1, CG * S, CG * S);
        double inv = 1.0 / sqrt(m2 / (double)(CG * S) + j->eps);
        float mf = (float)mu;
        j->mean_out[ng] = mf;
        j->invstd_out[ng] = (float)inv;
        if (!j->weight && !j->bias) {
            j->k->affine_plane(j->out + off, j->inp + off, 1, CG * S, CG * S, mf, (float)inv, 0.0f, 0);
            continue;
        }
        for (int64_t c = c0; c < c0 + CG; c++) {
            float scale = (float)(inv * (j->weight ? (double)j->weight[c] : 1.0));
            float shift = j->bias ? j->bias[c] : 0.0f;
            int64_t o = (n * j->C + c) * S;
            j->k->affine_plane(j->out + o, j->inp + o, 1, S, S, mf, scale, shift, 0);
        }
    }
}

fnn_status fnn_group_norm_forward(float *out, float *mean, float *invstd, const float *inp,
                                  const float *weight, const float *bias, int64_t N, int64_t C,
                                  int64_t S, int64_t G, float eps) {
    if (N < 0 || C < 0 || S < 0 || G < 1 || C % G != 0 || bad_real(eps, 0.0f, INFINITY) ||
        eps == INFINITY)
        return FNN_ERR_ARG;
    if (N == 0 || C == 0) return FNN_OK;
    if (S == 0) return FNN_ERR_ARG; /* a group of no values */
    gn_job j = {.k = fnn_active_norm(), .out = out, .mean_out = mean, .invstd_out = invstd,
                .inp = inp, .weight = weight, .bias = bias, .C = C, .S = S, .G = G, .eps = eps};
    fnn_parallel_for(N * G, block_grain(C / G * S), 1, &j, gn_forward_range);
    return FNN_OK;
}

static void gn_backward_range(void *ctx, int64_t begin, int64_t end) {
    gn_job *j = ctx;
    int64_t CG = j->C / j->G, S = j->S;
    double M = (double)(CG * S);
    for (int64_t ng = begin; ng < end; ng++) {
        int64_t n = ng / j->G, c0 = (ng % j->G) * CG;
        float mf = j->mean[ng];
        double inv = (double)j->invstd[ng], A = 0.0, B = 0.0;
        for (int64_t c = c0; c < c0 + CG; c++) {
            int64_t o = (n * j->C + c) * S;
            double *p1 = j->sdy + n * j->C + c, *p2 = j->sdyx + n * j->C + c;
            j->k->dot_plane(p1, p2, j->dout + o, j->inp + o, NULL, 1, S, S, mf);
            double w = j->weight ? (double)j->weight[c] : 1.0;
            A += w * *p1;
            B += w * *p2;
        }
        if (!j->dinp) continue;
        float b = (float)(-inv * inv * inv * B / M), cc = (float)(-inv * A / M);
        for (int64_t c = c0; c < c0 + CG; c++) {
            int64_t o = (n * j->C + c) * S;
            float a = (float)(inv * (j->weight ? (double)j->weight[c] : 1.0));
            j->k->dx_plane(j->dinp + o, j->dout + o, j->inp + o, NULL, 1, S, S, mf, a, b, cc,
                           j->accumulate);
        }
    }
}

fnn_status fnn_group_norm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *mean, const float *invstd, const float *inp,
                                   const float *weight, int64_t N, int64_t C, int64_t S,
                                   int64_t G, int accumulate) {
    if (N < 0 || C < 0 || S < 0 || G < 1 || C % G != 0) return FNN_ERR_ARG;
    if (N == 0 || C == 0 || S == 0) return FNN_OK;
    double *scratch = malloc(sizeof(double) * 2 * (size_t)N * (size_t)C);
    if (!scratch) return FNN_ERR_NOMEM;
    gn_job j = {.k = fnn_active_norm(), .dinp = dinp, .sdy = scratch, .sdyx = scratch + N * C,
                .mean = mean, .invstd = invstd, .inp = inp, .dout = dout, .weight = weight,
                .C = C, .S = S, .G = G, .accumulate = accumulate != 0};
    fnn_parallel_for(N * G, block_grain(C / G * S), 1, &j, gn_backward_range);
    int64_t CG = C / G;
    for (int64_t c = 0; c < C; c++) {
        double gw = 0.0, gb = 0.0;
        for (int64_t n = 0; n < N; n++) {
            gw += j.sdyx[n * C + c] * (double)invstd[n * G + c / CG];
            gb += j.sdy[n * C + c];
        }
        if (dweight) dweight[c] = (float)((double)dweight[c] + gw);
        if (dbias) dbias[c] = (float)((double)dbias[c] + gb);
    }
    free(scratch);
    return FNN_OK;
}
