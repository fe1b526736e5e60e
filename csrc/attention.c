/*
 * attention.c - the row passes of scaled dot-product attention, forward and backward.
 *
 * Compiled once per ISA (see simd.h). One call handles one row of a head's score
 * matrix: n valid columns (the keys this query may see), then zeros up to n_zero
 * (the columns the next product reads: a causal row's tile end, or the whole row
 * of a stored probability matrix). attention_api.c runs the products around them
 * on the SGEMM micro-kernel. Sums run in fixed vector lanes along the row, so a
 * row's result does not depend on which thread or tile it falls in.
 */
#include <math.h>

#include "vmath.h"
#include "kernels.h"

FNN_INLINE vf load_plus(const float *s, const float *mask, int64_t j, int64_t w) {
    vf x = vf_load_w(s + j, w, -INFINITY);
    return mask ? vf_add(x, vf_load_w(mask + j, w, 0.0f)) : x;
}

static void zero_tail(float *p, int64_t n, int64_t n_zero) {
    for (int64_t j = n; j < n_zero; j++) p[j] = 0.0f;
}

/* p[j] = softmax(s + mask)[j] for j < n (mask NULL: none), 0 for n <= j < n_zero;
 * returns the row's logsumexp. A row with no finite score (every key masked) gets
 * p = 0 and -inf. p may alias s. */
static float FNN_K(softmax_row)(float *p, const float *s, const float *mask, int64_t n,
                                int64_t n_zero) {
    vf vmax = vf_set1(-INFINITY);
    for (int64_t j = 0; j < n; j += FNN_VW)
        vmax = vf_max(vmax, load_plus(s, mask, j, vf_lanes(n - j)));
    float mx = vf_reduce_max(vmax);
    if (mx == -INFINITY) {
        zero_tail(p, 0, n_zero);
        return -INFINITY;
    }
    vf m = vf_set1(mx), sum = vf_zero();
    for (int64_t j = 0; j < n; j += FNN_VW) {
        int64_t w = vf_lanes(n - j);
        vf e = vf_exp(vf_sub(load_plus(s, mask, j, w), m)); /* -inf gives exactly 0 */
        sum = vf_add(sum, vf_select(vm_first(w), e, vf_zero()));
        vf_store_w(p + j, e, w);
    }
    float total = vf_reduce_add(sum);
    vf inv = vf_set1(1.0f / total);
    for (int64_t j = 0; j < n; j += FNN_VW) {
        int64_t w = vf_lanes(n - j);
        vf_store_w(p + j, vf_mul(vf_load_w(p + j, w, 0.0f), inv), w);
    }
    zero_tail(p, n, n_zero);
    return mx + logf(total);
}

/* the backward's recomputation: p[j] = exp(s[j] + mask[j] - lse) for j < n, 0 up to
 * n_zero (lse -inf: a row with every key masked, all 0). p may alias s. */
static void FNN_K(exp_row)(float *p, const float *s, const float *mask, float lse, int64_t n,
                           int64_t n_zero) {
    if (lse == -INFINITY) {
        zero_tail(p, 0, n_zero);
        return;
    }
    vf l = vf_set1(lse);
    for (int64_t j = 0; j < n; j += FNN_VW) {
        int64_t w = vf_lanes(n - j);
        vf_store_w(p + j, vf_exp(vf_sub(load_plus(s, mask, j, w), l)), w);
    }
    zero_tail(p, n, n_zero);
}

/* ds[j] = p[j] * (dp[j] * drop[j] - d) for j < n (drop NULL: 1), 0 up to n_zero:
 * the softmax's backward with d = rowsum(dout * out). ds may alias dp. */
static void FNN_K(softmax_grad_row)(float *ds, const float *dp, const float *p,
                                    const float *drop, float d, int64_t n, int64_t n_zero) {
    vf vd = vf_set1(d);
    for (int64_t j = 0; j < n; j += FNN_VW) {
        int64_t w = vf_lanes(n - j);
        vf g = vf_load_w(dp + j, w, 0.0f);
        if (drop) g = vf_mul(g, vf_load_w(drop + j, w, 0.0f));
        vf_store_w(ds + j, vf_mul(vf_load_w(p + j, w, 0.0f), vf_sub(g, vd)), w);
    }
    zero_tail(ds, n, n_zero);
}

/* out[j] = a[j] * b[j], j < n: dropout's kept-and-rescaled probabilities */
static void FNN_K(mul_row)(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t j = 0; j < n; j += FNN_VW) {
        int64_t w = vf_lanes(n - j);
        vf_store_w(out + j, vf_mul(vf_load_w(a + j, w, 0.0f), vf_load_w(b + j, w, 0.0f)), w);
    }
}

/* sum of a[j] * b[j], j < n */
static float FNN_K(dot_row)(const float *a, const float *b, int64_t n) {
    vf acc = vf_zero();
    for (int64_t j = 0; j < n; j += FNN_VW) {
        int64_t w = vf_lanes(n - j);
        acc = vf_fmadd(vf_load_w(a + j, w, 0.0f), vf_load_w(b + j, w, 0.0f), acc);
    }
    return vf_reduce_add(acc);
}

const fnn_attention_kernels FNN_K(fnn_attention_kernels) = {
    .softmax_row = FNN_K(softmax_row),
    .exp_row = FNN_K(exp_row),
    .softmax_grad_row = FNN_K(softmax_grad_row),
    .mul_row = FNN_K(mul_row),
    .dot_row = FNN_K(dot_row),
};
