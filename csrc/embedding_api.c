/*
 * embedding_api.c - the embedding lookup's entry points of fastnn.h: a row gather
 * forward and a scatter-add backward.
 *
 * Compiled once. Indices are checked before anything is written. Forward threads
 * split the lookups; backward splits the E columns, each range running every lookup
 * in index order (rows that repeat an index add in that order), so results do not
 * depend on the thread count. Dimension letters: V table rows, E embedding size,
 * L lookups.
 */
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "kernels.h"

static fnn_status check_indices(const int64_t *indices, int64_t L, int64_t V) {
    for (int64_t l = 0; l < L; l++)
        if (indices[l] < 0 || indices[l] >= V) return FNN_ERR_LABEL;
    return FNN_OK;
}

typedef struct {
    float *out;
    const float *weight;
    const int64_t *indices;
    int64_t E;
} gather_job;

static void gather_range(void *ctx, int64_t begin, int64_t end) {
    const gather_job *g = ctx;
    for (int64_t l = begin; l < end; l++)
        memcpy(g->out + l * g->E, g->weight + g->indices[l] * g->E, (size_t)g->E * sizeof(float));
}

/* out (L, E) = weight (V, E)[indices (L,)] */
fnn_status fnn_embedding_forward(float *out, const float *weight, const int64_t *indices,
                                 int64_t L, int64_t V, int64_t E) {
    if (L < 0 || V < 0 || E < 0) return FNN_ERR_ARG;
    if (L == 0 || E == 0) return FNN_OK;
    if (!out || !weight || !indices) return FNN_ERR_ARG;
    fnn_status st = check_indices(indices, L, V);
    if (st != FNN_OK) return st;
    gather_job g = {.out = out, .weight = weight, .indices = indices, .E = E};
    int64_t grain = FNN_GRAIN_ELEMENTWISE / E > 0 ? FNN_GRAIN_ELEMENTWISE / E : 1;
    fnn_parallel_for(L, grain, 1, &g, gather_range);
    return FNN_OK;
}

typedef struct {
    const fnn_embedding_kernels *k;
    float *dweight;
    const float *dout;
    const int64_t *indices;
    const float *scale; /* (V,) or NULL */
    int64_t L, E, padding_idx;
} scatter_job;

static void scatter_columns(void *ctx, int64_t c0, int64_t c1) {
    const scatter_job *s = ctx;
    for (int64_t l = 0; l < s->L; l++) {
        const int64_t v = s->indices[l];
        if (v == s->padding_idx) continue;
        s->k->add_scaled_row(s->dweight + v * s->E + c0, s->dout + l * s->E + c0, c1 - c0,
                             s->scale ? s->scale[v] : 1.0f);
    }
}

/* dweight (V, E) += dout (L, E) scattered to indices (L,) */
fnn_status fnn_embedding_backward(float *dweight, const float *dout, const int64_t *indices,
                                  int64_t L, int64_t V, int64_t E, int64_t padding_idx,
                                  int scale_grad_by_freq) {
    if (L < 0 || V < 0 || E < 0 || padding_idx < -1 || padding_idx >= (V > 0 ? V : 1))
        return FNN_ERR_ARG;
    if (L == 0 || E == 0) return FNN_OK;
    if (!dweight || !dout || !indices) return FNN_ERR_ARG;
    fnn_status st = check_indices(indices, L, V);
    if (st != FNN_OK) return st;
    float *scale = NULL;
    if (scale_grad_by_freq) {
        int64_t *count = calloc((size_t)V, sizeof(int64_t));
        scale = malloc((size_t)V * sizeof(float));
        if (!count || !scale) {
            free(count);
            free(scale);
            return FNN_ERR_NOMEM;
        }
        for (int64_t l = 0; l < L; l++) count[indices[l]]++;
        for (int64_t v = 0; v < V; v++) scale[v] = count[v] ? 1.0f / (float)count[v] : 0.0f;
        free(count);
    }
    scatter_job s = {.k = fnn_active_embedding(), .dweight = dweight, .dout = dout,
                     .indices = indices, .scale = scale, .L = L, .E = E,
                     .padding_idx = padding_idx};
    int64_t grain = FNN_GRAIN_ELEMENTWISE / L > 0 ? FNN_GRAIN_ELEMENTWISE / L : 1;
    fnn_parallel_for(E, grain, FNN_ALIGN_FLOATS, &s, scatter_columns);
    free(scale);
    return FNN_OK;
}
