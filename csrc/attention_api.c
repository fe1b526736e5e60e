/*
 * attention_api.c - the public scaled dot-product attention entry points of fastnn.h.
 *
 * Compiled once. Per head (b, h), materialised in cache: the scores of one tile of
 * query rows at a time (forward) or of the whole head (backward), the products on
 * the SGEMM micro-kernel reading q, k, v, dout in place (only k and v are
 * transposed, into a small buffer), and the row passes of attention.c between them.
 * Dimension letters as fastnn.h; MR is the micro-tile's row count.
 *
 * Causal skipping: a tile of query rows [r0, r0 + MR) computes only the key columns
 * [0, te), te = min(S, r0 + MR), and each row zeroes its columns past its diagonal
 * up to te. The backward's products over keys ([j0, j0 + MR) of dv and dk, summing
 * over query rows i >= j0) then read only zeros or valid entries, because both
 * tilings start at multiples of MR: every row i >= j0 has te(i) >= min(S, j0 + MR).
 *
 * Threads: the forward's work items are whole heads, or blocks of QUERY_BLOCK query
 * rows when there are fewer than 4 heads per thread; the backward's are whole heads
 * (dk and dv sum over every query row). Blocks start at multiples of MR, so a row
 * meets the same tiles either way, and each item runs on one thread in a fixed
 * order: results do not depend on the thread count.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "fastnn.h"
#include "kernels.h"

#define QUERY_BLOCK 64 /* query rows per forward item, rounded up to a multiple of MR */

typedef struct {
    const fnn_attention_shape *s;
    const fnn_attention_kernels *ak; /* read once per call */
    const fnn_gemm_kernels *gk;
    float *out, *lse, *probs;          /* forward's outputs */
    float *dq, *dk, *dv;               /* backward's outputs */
    const float *q, *k, *v, *mask, *drop;
    const float *dout, *saved_out, *saved_lse, *saved_probs;
    int64_t qblock, blocks;            /* forward: rows per item, items per head */
    _Atomic int status;                /* the first failure, or FNN_OK */
} attn_job;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* C (M, N) = alpha op(A) B on the micro-kernel, unpacked: op(A) (M, K) is A with row
 * stride lda, or A^T when trans_a (A (K, M)); B (K, N) row stride ldb; C row stride ldc */
static void product(const fnn_gemm_kernels *gk, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, int trans_a, const float *B, int64_t ldb,
                    float *C, int64_t ldc) {
    const int64_t MR = gk->blocking->mr, NR = gk->blocking->nr;
    fnn_gemm_epilogue ep = {.alpha = alpha, .beta = 0.0f, .bias_mode = FNN_BIAS_NONE,
                            .act = FNN_ACT_NONE, .first = 1, .last = 1};
    for (int64_t i = 0; i < M; i += MR) {
        const float *a = A + (trans_a ? i : i * lda);
        for (int64_t j = 0; j < N; j += NR)
            gk->ukernel_direct(K, a, lda, trans_a, B + j, ldb, C + i * ldc + j, ldc,
                               min64(MR, M - i), min64(NR, N - j), i, j, &ep);
    }
}

/* head (b, h) of an operand */
static int64_t head_offset(const fnn_attention_strides *st, int64_t b, int64_t h) {
    return b * st->b + h * st->h;
}

/* keys query row i sees, and the key columns [0, te) the row tile [r0, r0 + MR) computes:
 * te = tile_columns(s, r0 + MR), the nominal end even for a short last tile */
static int64_t visible(const fnn_attention_shape *s, int64_t i) {
    return s->causal ? min64(i + 1, s->S) : s->S;
}
static int64_t tile_columns(const fnn_attention_shape *s, int64_t tile_end) {
    return s->causal ? min64(tile_end, s->S) : s->S;
}

static void fail(attn_job *j, fnn_status st) {
    int ok = FNN_OK;
    atomic_compare_exchange_strong(&j->status, &ok, (int)st);
}

/* ---- forward: blocks of query rows ----------------------------------------------- */

static void forward_items(void *ctx, int64_t begin, int64_t end) {
    attn_job *j = ctx;
    const fnn_attention_shape *s = j->s;
    const int64_t MR = j->gk->blocking->mr, L = s->L, S = s->S;
    for (int64_t item = begin; item < end; item++) {
        int64_t bh = item / j->blocks, b = bh / s->H, h = bh % s->H;
        int64_t i0 = item % j->blocks * j->qblock, i1 = min64(L, i0 + j->qblock);
        int64_t keys = tile_columns(s, i1); /* the block's last tile sees the most */
        /* k^T (E, keys); a tile of probabilities when not stored, of dropped ones with drop */
        float *buf = malloc(sizeof(float) * (size_t)(s->E * keys + 2 * MR * S));
        if (!buf) {
            fail(j, FNN_ERR_NOMEM);
            continue;
        }
        float *kt = buf, *tile_p = kt + s->E * keys, *tile_drop = tile_p + MR * S;
        const float *qh = j->q + head_offset(&s->q, b, h), *vh = j->v + head_offset(&s->v, b, h);
        const float *mh = j->mask ? j->mask + head_offset(&s->mask, b, h) : NULL;
        float *oh = j->out + head_offset(&s->out, b, h);
        j->gk->transpose(kt, keys, j->k + head_offset(&s->k, b, h), s->k.row, keys, s->E);
        for (int64_t r0 = i0; r0 < i1; r0 += MR) {
            int64_t m = min64(MR, i1 - r0), te = tile_columns(s, r0 + MR);
            float *p = j->probs ? j->probs + (bh * L + r0) * S : tile_p;
            product(j->gk, m, te, s->E, s->scale, qh + r0 * s->q.row, s->q.row, 0, kt, keys, p, S);
            for (int64_t i = r0; i < r0 + m; i++)
                j->lse[bh * L + i] = j->ak->softmax_row(
                    p + (i - r0) * S, p + (i - r0) * S, mh ? mh + i * s->mask.row : NULL,
                    visible(s, i), j->probs ? S : te);
            const float *used = p;
            if (j->drop) {
                for (int64_t i = r0; i < r0 + m; i++)
                    j->ak->mul_row(tile_drop + (i - r0) * S, p + (i - r0) * S,
                                   j->drop + (bh * L + i) * S, te);
                used = tile_drop;
            }
            product(j->gk, m, s->Ev, te, 1.0f, used, S, 0, vh, s->v.row, oh + r0 * s->out.row,
                    s->out.row);
        }
        free(buf);
    }
}

static fnn_status check_shape(const fnn_attention_shape *s) {
    if (!s || s->B < 0 || s->H < 0 || s->L < 0 || s->S < 1 || s->E < 1 || s->Ev < 1 ||
        !isfinite(s->scale))
        return FNN_ERR_ARG;
    return FNN_OK;
}

fnn_status fnn_attention_forward(float *out, float *lse, float *probs, const float *q,
                                 const float *k, const float *v, const float *mask,
                                 const float *drop, const fnn_attention_shape *s) {
    fnn_status st = check_shape(s);
    if (st != FNN_OK || s->B * s->H * s->L == 0) return st;
    attn_job j = {.s = s, .ak = fnn_active_attention(), .gk = fnn_active_gemm(), .out = out,
                  .lse = lse, .probs = probs, .q = q, .k = k, .v = v, .mask = mask,
                  .drop = drop, .status = FNN_OK};
    int64_t MR = j.gk->blocking->mr;
    j.qblock = s->B * s->H >= 4 * (int64_t)fnn_get_num_threads()
                   ? (s->L + MR - 1) / MR * MR
                   : (QUERY_BLOCK + MR - 1) / MR * MR;
    j.blocks = (s->L + j.qblock - 1) / j.qblock;
    fnn_parallel_for(s->B * s->H * j.blocks, 1, 1, &j, forward_items);
    return (fnn_status)atomic_load(&j.status);
}

/* ---- backward: whole heads ------------------------------------------------------- */

/* head bh's probabilities into p (L, S) from q k^T, the mask and the saved lse */
static void recompute_probs(attn_job *j, float *p, float *kt, int64_t b, int64_t h) {
    const fnn_attention_shape *s = j->s;
    const int64_t MR = j->gk->blocking->mr, L = s->L, S = s->S, bh = b * s->H + h;
    const float *qh = j->q + head_offset(&s->q, b, h);
    const float *mh = j->mask ? j->mask + head_offset(&s->mask, b, h) : NULL;
    j->gk->transpose(kt, S, j->k + head_offset(&s->k, b, h), s->k.row, S, s->E);
    for (int64_t r0 = 0; r0 < L; r0 += MR) {
        int64_t m = min64(MR, L - r0), te = tile_columns(s, r0 + MR);
        product(j->gk, m, te, s->E, s->scale, qh + r0 * s->q.row, s->q.row, 0, kt, S,
                p + r0 * S, S);
        for (int64_t i = r0; i < r0 + m; i++)
            j->ak->exp_row(p + i * S, p + i * S, mh ? mh + i * s->mask.row : NULL,
                           j->saved_lse[bh * L + i], visible(s, i), te);
    }
}

static void backward_heads(void *ctx, int64_t begin, int64_t end) {
    attn_job *j = ctx;
    const fnn_attention_shape *s = j->s;
    const int64_t MR = j->gk->blocking->mr, L = s->L, S = s->S, E = s->E, Ev = s->Ev;
    const int recompute = j->saved_probs == NULL;
    for (int64_t bh = begin; bh < end; bh++) {
        int64_t b = bh / s->H, h = bh % s->H;
        /* dS (L, S), v^T (Ev, S), D (L,); P (L, S) and k^T (E, S) when recomputed; P drop */
        size_t floats = (size_t)(L * S + Ev * S + L) +
                        (recompute ? (size_t)(L * S + E * S) : 0) + (j->drop ? (size_t)(L * S) : 0);
        float *buf = malloc(sizeof(float) * floats);
        if (!buf) {
            fail(j, FNN_ERR_NOMEM);
            continue;
        }
        float *ds = buf, *vt = ds + L * S, *dsum = vt + Ev * S, *next = dsum + L;
        const float *p = j->saved_probs ? j->saved_probs + bh * L * S : next;
        if (recompute) {
            recompute_probs(j, next, next + L * S, b, h);
            next += L * S + E * S;
        }
        const float *used = p;
        if (j->drop) {
            for (int64_t i = 0; i < L; i++)
                j->ak->mul_row(next + i * S, p + i * S, j->drop + (bh * L + i) * S,
                               tile_columns(s, (i / MR + 1) * MR));
            used = next;
        }
        const float *qh = j->q + head_offset(&s->q, b, h), *kh = j->k + head_offset(&s->k, b, h);
        const float *doh = j->dout + head_offset(&s->dout, b, h);
        const float *oh = j->saved_out + head_offset(&s->out, b, h);
        float *dqh = j->dq + head_offset(&s->dq, b, h), *dkh = j->dk + head_offset(&s->dk, b, h);
        float *dvh = j->dv + head_offset(&s->dv, b, h);
        /* dv = (P drop)^T dout over the query rows that see each key */
        for (int64_t j0 = 0; j0 < S; j0 += MR) {
            int64_t m = min64(MR, S - j0), i0 = s->causal ? min64(j0, L) : 0;
            product(j->gk, m, Ev, L - i0, 1.0f, used + i0 * S + j0, S, 1,
                    doh + i0 * s->dout.row, s->dout.row, dvh + j0 * s->dv.row, s->dv.row);
        }
        /* dS = P (dout v^T drop - D), D = rowsum(dout * out) */
        j->gk->transpose(vt, S, j->v + head_offset(&s->v, b, h), s->v.row, S, Ev);
        for (int64_t i = 0; i < L; i++)
            dsum[i] = j->ak->dot_row(doh + i * s->dout.row, oh + i * s->out.row, Ev);
        for (int64_t r0 = 0; r0 < L; r0 += MR) {
            int64_t m = min64(MR, L - r0), te = tile_columns(s, r0 + MR);
            product(j->gk, m, te, Ev, 1.0f, doh + r0 * s->dout.row, s->dout.row, 0, vt, S,
                    ds + r0 * S, S);
            for (int64_t i = r0; i < r0 + m; i++)
                j->ak->softmax_grad_row(ds + i * S, ds + i * S, p + i * S,
                                        j->drop ? j->drop + (bh * L + i) * S : NULL, dsum[i],
                                        visible(s, i), te);
            /* dq = scale dS k */
            product(j->gk, m, E, te, s->scale, ds + r0 * S, S, 0, kh, s->k.row,
                    dqh + r0 * s->dq.row, s->dq.row);
        }
        /* dk = scale dS^T q */
        for (int64_t j0 = 0; j0 < S; j0 += MR) {
            int64_t m = min64(MR, S - j0), i0 = s->causal ? min64(j0, L) : 0;
            product(j->gk, m, E, L - i0, s->scale, ds + i0 * S + j0, S, 1, qh + i0 * s->q.row,
                    s->q.row, dkh + j0 * s->dk.row, s->dk.row);
        }
        free(buf);
    }
}

fnn_status fnn_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                  const float *out, const float *lse, const float *probs,
                                  const float *q, const float *k, const float *v,
                                  const float *mask, const float *drop,
                                  const fnn_attention_shape *s) {
    fnn_status st = check_shape(s);
    if (st != FNN_OK || s->B * s->H == 0) return st;
    attn_job j = {.s = s, .ak = fnn_active_attention(), .gk = fnn_active_gemm(), .dq = dq,
                  .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .mask = mask, .drop = drop,
                  .dout = dout, .saved_out = out, .saved_lse = lse, .saved_probs = probs,
                  .status = FNN_OK};
    fnn_parallel_for(s->B * s->H, 1, 1, &j, backward_heads);
    return (fnn_status)atomic_load(&j.status);
}
