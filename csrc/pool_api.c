/*
 * pool_api.c - the public pooling entry points of fastnn.h.
 *
 * Each checks the geometry and splits the P = N*C planes over threads with
 * fnn_parallel_for; a plane is computed whole by one thread, and the grain
 * depends only on the plane sizes, so the result does not depend on the thread
 * count. The loops are in pool.c. Compiled once. Dimension letters: P planes,
 * H, W input plane, OH, OW output plane.
 */
#include "fastnn.h"
#include "kernels.h"

typedef struct {
    const fnn_pool_kernels *k; /* read once per call */
    const fnn_pool_geom *g;
    float *out;
    int64_t *indices;
    const float *inp;
    const int64_t *cindices;
    int count_include_pad, adaptive;
    int64_t divisor;
} pool_job;

static void max_forward_range(void *ctx, int64_t begin, int64_t end) {
    pool_job *j = ctx;
    int64_t i = begin * j->g->H * j->g->W, o = begin * j->g->OH * j->g->OW;
    j->k->max_forward(j->out + o, j->indices + o, j->inp + i, end - begin, j->g, j->adaptive);
}

static void max_backward_range(void *ctx, int64_t begin, int64_t end) {
    pool_job *j = ctx;
    int64_t i = begin * j->g->H * j->g->W, o = begin * j->g->OH * j->g->OW;
    j->k->max_backward(j->out + i, j->inp + o, j->cindices + o, end - begin, j->g);
}

static void avg_forward_range(void *ctx, int64_t begin, int64_t end) {
    pool_job *j = ctx;
    int64_t i = begin * j->g->H * j->g->W, o = begin * j->g->OH * j->g->OW;
    j->k->avg_forward(j->out + o, j->inp + i, end - begin, j->g, j->count_include_pad,
                      j->divisor, j->adaptive);
}

static void avg_backward_range(void *ctx, int64_t begin, int64_t end) {
    pool_job *j = ctx;
    int64_t i = begin * j->g->H * j->g->W, o = begin * j->g->OH * j->g->OW;
    j->k->avg_backward(j->out + i, j->inp + o, end - begin, j->g, j->count_include_pad,
                       j->divisor, j->adaptive);
}

/* planes per chunk: about FNN_GRAIN_ELEMENTWISE input + output elements */
static int64_t planes_per_grain(const fnn_pool_geom *g) {
    int64_t plane = g->H * g->W + g->OH * g->OW;
    return plane >= FNN_GRAIN_ELEMENTWISE ? 1 : FNN_GRAIN_ELEMENTWISE / (plane > 0 ? plane : 1);
}

/* sizes common to every pooling op; *empty when there is nothing to do */
static fnn_status check_sizes(int64_t P, const fnn_pool_geom *g, int *empty) {
    if (!g || P < 0 || g->H < 0 || g->W < 0 || g->OH < 0 || g->OW < 0) return FNN_ERR_ARG;
    if (g->H > INT64_MAX / (g->W > 0 ? g->W : 1)) return FNN_ERR_ARG;
    *empty = P == 0 || g->OH == 0 || g->OW == 0 || g->H == 0 || g->W == 0;
    if ((g->H == 0 || g->W == 0) && P > 0 && g->OH > 0 && g->OW > 0) return FNN_ERR_ARG;
    return FNN_OK;
}

/* a fixed window: kernel, stride, dilation >= 1, padding in [0, kernel/2], and every
 * output's window starting inside the input or its left padding */
static fnn_status check_window(int64_t P, const fnn_pool_geom *g, int *empty) {
    fnn_status st = check_sizes(P, g, empty);
    if (st != FNN_OK) return st;
    if (g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1 ||
        g->ph < 0 || g->pw < 0 || g->ph > g->kh / 2 || g->pw > g->kw / 2)
        return FNN_ERR_ARG;
    if (g->OH > 0 && (g->OH - 1) * g->sh >= g->H + g->ph) return FNN_ERR_ARG;
    if (g->OW > 0 && (g->OW - 1) * g->sw >= g->W + g->pw) return FNN_ERR_ARG;
    return FNN_OK;
}

/* an adaptive bin layout: OH, OW >= 1 unless the input is empty */
static fnn_status check_adaptive(int64_t P, const fnn_pool_geom *g, int *empty) {
    fnn_status st = check_sizes(P, g, empty);
    if (st != FNN_OK) return st;
    if (P > 0 && (g->OH == 0 || g->OW == 0) && g->H > 0 && g->W > 0) return FNN_ERR_ARG;
    return FNN_OK;
}

static fnn_status run_max(float *out, int64_t *indices, const float *inp, int64_t P,
                          const fnn_pool_geom *g, int adaptive) {
    int empty = 0;
    fnn_status st = adaptive ? check_adaptive(P, g, &empty) : check_window(P, g, &empty);
    if (st != FNN_OK || empty) return st;
    pool_job j = {.k = fnn_active_pool(), .g = g, .out = out, .indices = indices, .inp = inp,
                  .adaptive = adaptive};
    fnn_parallel_for(P, planes_per_grain(g), 1, &j, max_forward_range);
    return FNN_OK;
}

fnn_status fnn_max_pool2d_forward(float *out, int64_t *indices, const float *inp, int64_t P,
                                  const fnn_pool_geom *g) {
    return run_max(out, indices, inp, P, g, 0);
}

fnn_status fnn_adaptive_max_pool2d_forward(float *out, int64_t *indices, const float *inp,
                                           int64_t P, const fnn_pool_geom *g) {
    return run_max(out, indices, inp, P, g, 1);
}

fnn_status fnn_max_pool2d_backward(float *dinp, const float *dout, const int64_t *indices,
                                   int64_t P, const fnn_pool_geom *g) {
    int empty = 0;
    fnn_status st = check_sizes(P, g, &empty);
    if (st != FNN_OK) return st;
    int64_t HW = g->H * g->W, n = P * g->OH * g->OW;
    if (P > 0 && HW > 0 && g->OH * g->OW == 0) { /* nothing to scatter */
        for (int64_t i = 0; i < P * HW; i++) dinp[i] = 0.0f;
        return FNN_OK;
    }
    if (empty) return FNN_OK;
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= HW) return FNN_ERR_ARG;
    pool_job j = {.k = fnn_active_pool(), .g = g, .out = dinp, .inp = dout, .cindices = indices};
    fnn_parallel_for(P, planes_per_grain(g), 1, &j, max_backward_range);
    return FNN_OK;
}

static fnn_status run_avg(float *out, const float *inp, int64_t P, const fnn_pool_geom *g,
                          int count_include_pad, int64_t divisor, int adaptive, int backward) {
    int empty = 0;
    fnn_status st = adaptive ? check_adaptive(P, g, &empty) : check_window(P, g, &empty);
    if (st != FNN_OK || empty) return st;
    if (divisor < 0) return FNN_ERR_ARG;
    pool_job j = {.k = fnn_active_pool(), .g = g, .out = out, .inp = inp,
                  .count_include_pad = count_include_pad != 0, .divisor = divisor,
                  .adaptive = adaptive};
    fnn_parallel_for(P, planes_per_grain(g), 1, &j,
                     backward ? avg_backward_range : avg_forward_range);
    return FNN_OK;
}

fnn_status fnn_avg_pool2d_forward(float *out, const float *inp, int64_t P, const fnn_pool_geom *g,
                                  int count_include_pad, int64_t divisor_override) {
    return run_avg(out, inp, P, g, count_include_pad, divisor_override, 0, 0);
}

fnn_status fnn_avg_pool2d_backward(float *dinp, const float *dout, int64_t P,
                                   const fnn_pool_geom *g, int count_include_pad,
                                   int64_t divisor_override) {
    return run_avg(dinp, dout, P, g, count_include_pad, divisor_override, 0, 1);
}

fnn_status fnn_adaptive_avg_pool2d_forward(float *out, const float *inp, int64_t P,
                                           const fnn_pool_geom *g) {
    return run_avg(out, inp, P, g, 0, 0, 1, 0);
}

fnn_status fnn_adaptive_avg_pool2d_backward(float *dinp, const float *dout, int64_t P,
                                            const fnn_pool_geom *g) {
    return run_avg(dinp, dout, P, g, 0, 0, 1, 1);
}
