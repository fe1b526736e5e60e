/*
 * gemm/gemm_api.c - SGEMM entry points: argument checks, the thread split and
 * the BLIS loop nest (the driver) around the active ISA's micro-kernel (gemm.h).
 * Compiled once. Dimension letters: C (M, N) = op(A) (M, K) op(B) (K, N).
 *
 *   for jc in N by NC:                 packed B block (KC x NC) lives in L2
 *     for pc in K by KC:               pack op(B)[pc:+KC, jc:+NC]
 *       for ic in M by MC:             pack op(A)[ic:+MC, pc:+KC] (a row-major A
 *                                      with short rows is read in place instead)
 *         for ir in MC by MR:          one A panel (MR x KC) stays in L1
 *           for jr in NC by NR:        B panels stream from L2
 *             micro-kernel; the epilogue (beta, bias, act) runs on the first
 *             and last K block while the tile is in registers
 *
 * Threads claim tiles of C (rectangles on MR / NR multiples, each with its own
 * 64-byte aligned packing buffers) whose size depends on the problem, never
 * on the thread count; K is never split, so every element is summed in the
 * same order for any number of threads. Each call reads the active ISA's
 * kernel table once (gemm_problem.k), so switching the ISA from another
 * thread never mixes two paths in one product.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "../kernels.h"
#include "gemm.h"

/* a tile holds at least this many multiply-adds (below, one tile: the calling
 * thread), a product has at most FNN_GEMM_MAX_TILES tiles, and repacking A and
 * B per tile adds at most 1 / FNN_GEMM_REPACK_RATIO floats per multiply-add:
 * tiles short enough that a thread descheduled mid-tile delays little, few
 * enough that they cost little */
#define FNN_GEMM_TILE_WORK (40 * 40 * 40)
#define FNN_GEMM_MAX_TILES 8
#define FNN_GEMM_REPACK_RATIO 128
#define FNN_GEMM_PREPACK_MAX (1 << 20) /* floats of an operand packed once for all tiles */
/* Row-major A with a row stride up to this is read in place by the micro-kernel, not
 * packed. Measured on Zen 4, 2 threads: +10% for (2048, K <= 512) x (K, 128..512), the
 * transformer's and a narrow layer's shapes; longer rows lose (a 1024^3 product 40%):
 * their MR row streams collide in the L1 sets and TLB. */
#define FNN_GEMM_IN_PLACE_LDA 512
/* B not transposed, K <= KC, and either the whole product is small, or B stays
 * in L2 while A is small or read at most twice (an im2col weight, a layer's
 * dX = dY W or dW = dY^T X): then packing costs more than it saves and the
 * micro-kernel reads A and B in place */
#define FNN_GEMM_DIRECT_MAX (64 * 64 * 64)
#define FNN_GEMM_DIRECT_B_MAX (256 * 1024)  /* floats of B read in place from L2 */
#define FNN_GEMM_DIRECT_A_MAX (64 * 1024)   /* floats of A re-read once per NR columns */

typedef struct {
    const fnn_gemm_kernels *k; /* the ISA's kernels, read once per call */
    int trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
    const float *bias;
    fnn_bias_mode bias_mode;
    fnn_activation act;
    float *preact;      /* (M, N), row stride ld_preact, or NULL */
    int64_t ld_preact;
    /* op(A) / op(B) packed once for all tiles (pack_whole), or NULL: each tile packs */
    const float *A_packed, *B_packed;
    int64_t M_pad, N_pad; /* their lanes, rounded up to MR / NR */
} gemm_problem;

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

static void *aligned_buffer(int64_t floats) {
    size_t bytes = (size_t)round_up(floats > 0 ? floats : 1, 16) * sizeof(float);
    return aligned_alloc(64, bytes);
}

/* C[i0:i1, j0:j1] of problem p on the calling thread */
static fnn_status gemm_rect(const gemm_problem *p, int64_t i0, int64_t i1, int64_t j0,
                            int64_t j1) {
    const fnn_gemm_blocking *bs = p->k->blocking;
    const fnn_gemm_ukernel_fn ukernel = p->k->ukernel;
    const int64_t MR = bs->mr, NR = bs->nr, KC = bs->kc;
    const int64_t mc_max = i1 - i0 < bs->mc ? round_up(i1 - i0, MR) : bs->mc;
    const int64_t nc_max = j1 - j0 < bs->nc ? round_up(j1 - j0, NR) : bs->nc;
    const int64_t kc_max = p->K < KC ? p->K : KC;
    /* op(A) = A with short rows: the micro-kernel reads A's MR rows in place (they lie
     * within MR * FNN_GEMM_IN_PLACE_LDA floats) instead of packing them; only B is packed */
    const int a_in_place = !p->trans_a && !p->A_packed && p->lda <= FNN_GEMM_IN_PLACE_LDA;
    float *Ap = p->A_packed || a_in_place ? NULL : aligned_buffer(mc_max * kc_max);
    float *Bp = p->B_packed ? NULL : aligned_buffer(kc_max * nc_max);
    if ((!p->A_packed && !a_in_place && !Ap) || (!p->B_packed && !Bp)) {
        free(Ap);
        free(Bp);
        return FNN_ERR_NOMEM;
    }
    const int64_t nk = p->K > 0 ? (p->K + KC - 1) / KC : 1;
    fnn_gemm_epilogue ep = {.alpha = p->alpha, .beta = p->beta, .bias = p->bias,
                            .bias_mode = p->bias_mode, .act = p->act, .preact = p->preact,
                            .ld_preact = p->ld_preact};
    for (int64_t jc = j0; jc < j1; jc += bs->nc) {
        int64_t nc = j1 - jc < bs->nc ? j1 - jc : bs->nc;
        for (int64_t kb = 0; kb < nk; kb++) {
            int64_t pc = kb * KC, kc = p->K - pc < KC ? p->K - pc : KC;
            const float *b_panels = p->B_packed ? p->B_packed + pc * p->N_pad + jc * kc : Bp;
            if (kc > 0 && !p->B_packed) p->k->pack(Bp, p->B, p->ldb, !p->trans_b, jc, pc, nc, kc, NR);
            ep.first = kb == 0;
            ep.last = kb == nk - 1;
            for (int64_t ic = i0; ic < i1; ic += bs->mc) {
                int64_t mc = i1 - ic < bs->mc ? i1 - ic : bs->mc;
                if (a_in_place) {
                    for (int64_t ir = 0; ir < mc; ir += MR)
                        for (int64_t jr = 0; jr < nc; jr += NR)
                            p->k->ukernel_direct(kc, p->A + (ic + ir) * p->lda + pc, p->lda, 0,
                                                 b_panels + jr * kc, NR,
                                                 p->C + (ic + ir) * p->ldc + jc + jr, p->ldc,
                                                 mc - ir < MR ? mc - ir : MR,
                                                 nc - jr < NR ? nc - jr : NR, ic + ir, jc + jr,
                                                 &ep);
                    continue;
                }
                const float *a_panels = p->A_packed ? p->A_packed + pc * p->M_pad + ic * kc : Ap;
                if (kc > 0 && !p->A_packed) p->k->pack(Ap, p->A, p->lda, p->trans_a, ic, pc, mc, kc, MR);
                for (int64_t ir = 0; ir < mc; ir += MR) {
                    for (int64_t jr = 0; jr < nc; jr += NR) {
                        ukernel(kc, a_panels + ir * kc, b_panels + jr * kc, p->C + (ic + ir) * p->ldc + jc + jr,
                                p->ldc, mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR,
                                ic + ir, jc + jr, &ep);
                    }
                }
            }
        }
    }
    free(Ap);
    free(Bp);
    return FNN_OK;
}

/* small products: micro-tiles straight from A and B, no buffers */
static int gemm_is_small(const gemm_problem *p) {
    return !p->trans_b && p->K <= p->k->blocking->kc &&
           (p->M * p->N * p->K <= FNN_GEMM_DIRECT_MAX ||
            (p->K * p->N <= FNN_GEMM_DIRECT_B_MAX &&
             (p->M * p->K <= FNN_GEMM_DIRECT_A_MAX ||
              p->N <= 2 * p->k->blocking->nr)));
}

/* C[i0:i1, j0:j1] without packing */
static fnn_status gemm_direct(const gemm_problem *p, int64_t i0, int64_t i1, int64_t j0,
                              int64_t j1) {
    const fnn_gemm_blocking *bs = p->k->blocking;
    fnn_gemm_epilogue ep = {.alpha = p->alpha, .beta = p->beta, .bias = p->bias,
                            .bias_mode = p->bias_mode, .act = p->act, .preact = p->preact,
                            .ld_preact = p->ld_preact, .first = 1, .last = 1};
    for (int64_t i = i0; i < i1; i += bs->mr) {
        const float *a = p->A + (p->trans_a ? i : i * p->lda);
        for (int64_t j = j0; j < j1; j += bs->nr) {
            p->k->ukernel_direct(
                p->K, a, p->lda, p->trans_a, p->B + j, p->ldb, p->C + i * p->ldc + j, p->ldc,
                i1 - i < bs->mr ? i1 - i : bs->mr, j1 - j < bs->nr ? j1 - j : bs->nr, i, j, &ep);
        }
    }
    return FNN_OK;
}

/* C[i0:i1, j0:j1] on the calling thread, packed or not by the problem's size */
static fnn_status gemm_part(const gemm_problem *p, int64_t i0, int64_t i1, int64_t j0,
                            int64_t j1) {
    return gemm_is_small(p) ? gemm_direct(p, i0, i1, j0, j1) : gemm_rect(p, i0, i1, j0, j1);
}

/* ---- threads: a grid of tiles, sized by the problem ---------------------------- */

typedef struct {
    const gemm_problem *p;
    int64_t tiles_n, step_m, step_n;
    _Atomic int status; /* the first failure, or FNN_OK */
} gemm_grid;

static void gemm_tiles(void *ctx, int64_t begin, int64_t end) {
    gemm_grid *g = ctx;
    for (int64_t t = begin; t < end; t++) {
        int64_t i0 = (t / g->tiles_n) * g->step_m, j0 = (t % g->tiles_n) * g->step_n;
        int64_t i1 = i0 + g->step_m < g->p->M ? i0 + g->step_m : g->p->M;
        int64_t j1 = j0 + g->step_n < g->p->N ? j0 + g->step_n : g->p->N;
        fnn_status st = gemm_part(g->p, i0, i1, j0, j1);
        int ok = FNN_OK;
        if (st != FNN_OK) atomic_compare_exchange_strong(&g->status, &ok, (int)st);
    }
}

/* op(A) (is_a) or op(B) with every K block packed once, as gemm_rect would
 * pack each: block pc starts at pc * lanes_pad floats, lane l of it at l * kc.
 * The K blocks and runs of FNN_PACK_PANELS panels are packed by the threads. */
#define FNN_PACK_PANELS 16
typedef struct {
    const gemm_problem *p;
    float *dst;
    int is_a;
    int64_t lanes, lanes_pad, width, runs; /* runs of panels per K block */
} pack_job;

static void pack_runs(void *ctx, int64_t begin, int64_t end) {
    const pack_job *j = ctx;
    const gemm_problem *p = j->p;
    const int64_t KC = p->k->blocking->kc, run = FNN_PACK_PANELS * j->width;
    for (int64_t r = begin; r < end; r++) {
        const int64_t pc = r / j->runs * KC, kc = p->K - pc < KC ? p->K - pc : KC;
        const int64_t l0 = r % j->runs * run, n = j->lanes - l0 < run ? j->lanes - l0 : run;
        float *dst = j->dst + pc * j->lanes_pad + l0 * kc;
        if (j->is_a) p->k->pack(dst, p->A, p->lda, p->trans_a, l0, pc, n, kc, j->width);
        else p->k->pack(dst, p->B, p->ldb, !p->trans_b, l0, pc, n, kc, j->width);
    }
}

static float *pack_whole(const gemm_problem *p, int is_a, int64_t *lanes_pad) {
    const fnn_gemm_blocking *bs = p->k->blocking;
    const int64_t width = is_a ? bs->mr : bs->nr, lanes = is_a ? p->M : p->N;
    *lanes_pad = round_up(lanes, width);
    float *dst = aligned_buffer(*lanes_pad * p->K);
    if (!dst) return NULL;
    pack_job j = {.p = p, .dst = dst, .is_a = is_a, .lanes = lanes, .lanes_pad = *lanes_pad,
                  .width = width, .runs = (lanes + FNN_PACK_PANELS * width - 1) /
                                          (FNN_PACK_PANELS * width)};
    fnn_parallel_for((p->K + bs->kc - 1) / bs->kc * j.runs, 1, 1, &j, pack_runs);
    return dst;
}

/* C = the whole product, as tm x tn tiles of whole micro-tiles: at most
 * work / FNN_GEMM_TILE_WORK of them (and FNN_GEMM_MAX_TILES). A packed product
 * splits its longer side and packs the other operand once for every tile
 * (pack_whole, if it has at most FNN_GEMM_PREPACK_MAX floats), so tiles cost
 * no extra packing. Otherwise each tile packs its own A and B, A once per tile
 * column and B once per tile row, and the floats packed beyond one tile's,
 * (tn - 1) M K + (tm - 1) K N, are kept below M N K / FNN_GEMM_REPACK_RATIO:
 * of the grids with the most tiles, the one that packs least. */
static fnn_status gemm_threaded(const gemm_problem *p) {
    const fnn_gemm_blocking *bs = p->k->blocking;
    const int64_t tiles_m = (p->M + bs->mr - 1) / bs->mr, tiles_n = (p->N + bs->nr - 1) / bs->nr;
    const int packed = !gemm_is_small(p);
    int64_t want = p->M * p->N * (p->K > 0 ? p->K : 1) / FNN_GEMM_TILE_WORK;
    if (want > FNN_GEMM_MAX_TILES) want = FNN_GEMM_MAX_TILES;
    int64_t best_tm = 1, best_tn = 1, best_tiles = 1;
    gemm_problem q = *p;
    float *prepacked = NULL;
    const int split_n = p->N >= p->M;
    if (packed && want > 1 && p->K > 0 &&
        round_up(split_n ? p->M : p->N, split_n ? bs->mr : bs->nr) * p->K <= FNN_GEMM_PREPACK_MAX) {
        prepacked = pack_whole(p, split_n, split_n ? &q.M_pad : &q.N_pad);
        if (!prepacked) return FNN_ERR_NOMEM;
        if (split_n) q.A_packed = prepacked, best_tn = want < tiles_n ? want : tiles_n;
        else q.B_packed = prepacked, best_tm = want < tiles_m ? want : tiles_m;
    } else {
        double best_repack = 0.0;
        for (int64_t tm = 1; tm <= want && tm <= tiles_m; tm++) {
            for (int64_t tn = want / tm < tiles_n ? want / tm : tiles_n; tn >= 1; tn--) {
                /* extra packing per multiply-add: (tn - 1) / N + (tm - 1) / M */
                double repack = (double)(tn - 1) / (double)p->N + (double)(tm - 1) / (double)p->M;
                if (packed && repack * FNN_GEMM_REPACK_RATIO > 1.0) continue;
                if (tm * tn > best_tiles || (tm * tn == best_tiles && repack < best_repack))
                    best_tm = tm, best_tn = tn, best_tiles = tm * tn, best_repack = repack;
                break;
            }
        }
    }
    gemm_grid g = {.p = &q, .status = FNN_OK};
    g.step_m = (tiles_m + best_tm - 1) / best_tm * bs->mr;
    g.step_n = (tiles_n + best_tn - 1) / best_tn * bs->nr;
    g.tiles_n = (p->N + g.step_n - 1) / g.step_n;
    int64_t tiles = (p->M + g.step_m - 1) / g.step_m * g.tiles_n;
    fnn_parallel_for(tiles, 1, 1, &g, gemm_tiles);
    free(prepacked);
    return (fnn_status)atomic_load(&g.status);
}

/* ---- entry points ----------------------------------------------------------- */

/* As BLAS: with K == 0 or alpha == 0, C = act(beta C + bias) and A, B are not
 * read (so alpha = inf with K = 0, or alpha = 0 with inf in A, give no NaN). */
static void skip_empty_product(gemm_problem *p) {
    if (p->K == 0 || p->alpha == 0.0f) p->K = 0, p->alpha = 0.0f;
}

static fnn_status check(const gemm_problem *p) {
    if (p->M < 0 || p->N < 0 || p->K < 0) return FNN_ERR_ARG;
    if (p->M == 0 || p->N == 0) return FNN_OK;
    int64_t a_cols = p->trans_a ? p->M : p->K, b_cols = p->trans_b ? p->K : p->N;
    if (p->K > 0 && (!p->A || !p->B || p->lda < a_cols || p->ldb < b_cols)) return FNN_ERR_ARG;
    if (!p->C || p->ldc < p->N) return FNN_ERR_ARG;
    if (p->bias_mode < FNN_BIAS_NONE || p->bias_mode > FNN_BIAS_COL) return FNN_ERR_ARG;
    if (p->bias_mode != FNN_BIAS_NONE && !p->bias) return FNN_ERR_ARG;
    if (p->act < FNN_ACT_NONE || p->act >= FNN_ACT_COUNT) return FNN_ERR_ARG;
    if (p->preact && p->ld_preact < p->N) return FNN_ERR_ARG;
    return FNN_OK;
}

fnn_status fnn_sgemm_preact(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int64_t ldc, const float *bias,
                            fnn_bias_mode bias_mode, fnn_activation act, float *preact,
                            int64_t ld_preact) {
    gemm_problem p = {.k = fnn_active_gemm(), .trans_a = trans_a != 0, .trans_b = trans_b != 0, .M = M, .N = N, .K = K,
                      .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C, .lda = lda,
                      .ldb = ldb, .ldc = ldc, .bias = bias, .bias_mode = bias_mode, .act = act,
                      .preact = preact, .ld_preact = ld_preact};
    fnn_status st = check(&p);
    if (st != FNN_OK || M == 0 || N == 0) return st;
    skip_empty_product(&p);
    return gemm_threaded(&p);
}

fnn_status fnn_sgemm_ex(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                        float *C, int64_t ldc, const float *bias, fnn_bias_mode bias_mode,
                        fnn_activation act) {
    return fnn_sgemm_preact(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                            bias_mode, act, NULL, 0);
}

fnn_status fnn_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                     float *C, int64_t ldc) {
    return fnn_sgemm_ex(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL,
                        FNN_BIAS_NONE, FNN_ACT_NONE);
}

typedef struct {
    gemm_problem p;
    int64_t stride_a, stride_b, stride_c;
    fnn_status *status; /* one per batch */
} batch_job;

static void batch_range(void *ctx, int64_t begin, int64_t end) {
    batch_job *j = ctx;
    for (int64_t b = begin; b < end; b++) {
        gemm_problem p = j->p;
        p.A += b * j->stride_a;
        p.B += b * j->stride_b;
        p.C += b * j->stride_c;
        j->status[b] = gemm_part(&p, 0, p.M, 0, p.N);
    }
}

fnn_status fnn_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                                     float alpha, const float *A, int64_t lda, int64_t stride_a,
                                     const float *B, int64_t ldb, int64_t stride_b, float beta,
                                     float *C, int64_t ldc, int64_t stride_c,
                                     int64_t batch_count) {
    batch_job j = {.p = {.k = fnn_active_gemm(), .trans_a = trans_a != 0, .trans_b = trans_b != 0, .M = M, .N = N, .K = K,
                         .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C, .lda = lda,
                         .ldb = ldb, .ldc = ldc},
                   .stride_a = stride_a, .stride_b = stride_b, .stride_c = stride_c};
    if (batch_count < 0 || stride_a < 0 || stride_b < 0 || stride_c < 0) return FNN_ERR_ARG;
    if (batch_count == 0) return FNN_OK;
    fnn_status st = check(&j.p);
    if (st != FNN_OK || M == 0 || N == 0) return st;
    skip_empty_product(&j.p);
    if (batch_count == 1) return gemm_threaded(&j.p);
    /* many products: one per thread at a time, each single-threaded */
    j.status = malloc((size_t)batch_count * sizeof(fnn_status));
    if (!j.status) return FNN_ERR_NOMEM;
    int64_t work = M * N * (K > 0 ? K : 1);
    int64_t grain = work >= FNN_GEMM_TILE_WORK ? 1 : FNN_GEMM_TILE_WORK / (work > 0 ? work : 1);
    fnn_parallel_for(batch_count, grain, 1, &j, batch_range);
    for (int64_t b = 0; b < batch_count && st == FNN_OK; b++) st = j.status[b];
    free(j.status);
    return st;
}

/* the active ISA's block sizes */
void fnn_gemm_tile(int64_t *mr, int64_t *nr, int64_t *kc, int64_t *mc, int64_t *nc) {
    const fnn_gemm_blocking *bs = fnn_active_gemm()->blocking;
    *mr = bs->mr, *nr = bs->nr, *kc = bs->kc, *mc = bs->mc, *nc = bs->nc;
}
