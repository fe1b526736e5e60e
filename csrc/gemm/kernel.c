/*
 * gemm/kernel.c - the SGEMM micro-kernel of one ISA, with its fused epilogue
 * (alpha, beta, bias, pre-activation store, activation) and its block sizes.
 * Dimension letters: C (M, N) = op(A) (M, K) op(B) (K, N); a tile is m <= MR
 * rows by n <= NR columns; kc is one K block.
 *
 * Compiled once per ISA (simd.h). The tile is MR rows x NR = NRV vectors:
 * per k, NRV vectors of packed B are loaded, each of the MR values of packed
 * A is broadcast, and MR*NRV accumulators take one FMA each.
 * Ragged tiles (m < MR or n < NR) run the same arithmetic on zero-padded
 * panels and store only their valid part, so every element of C is computed
 * the same way wherever the tile and thread boundaries fall.
 */
#include "../epilogue.h"
#include "gemm.h"

#if FNN_TARGET == FNN_TARGET_AVX512
#define MR 14
#define NRV 2       /* NR = 32: 24 accumulators + 2 B vectors + 1 broadcast of 32 zmm */
#elif FNN_TARGET == FNN_TARGET_AVX2
#define MR 6
#define NRV 2       /* NR = 16: 12 accumulators + 2 + 1 of 16 ymm */
#else
#define MR 4
#define NRV 4       /* NR = 4 scalars */
#endif
#define NR (NRV * FNN_VW)

/* KC: an MR x KC panel of A (14 KiB on AVX-512) stays in the 32 KiB L1 while
 * the KC x NR panels of B stream past it; MC x KC of packed A (280 KiB) sits
 * in the 1 MiB L2. NC is wide (KC x NC of packed B is 2 MiB, in the 32 MiB L3):
 * a tile needs only 128 bytes of B per 28 FMAs, which L3 delivers, and a
 * wide NC means A, whose panels are transposes, is packed fewer times.
 * Measured on this CPU: NC 2048 beats 512 by 2-4% at n = 1024 and 2048. */
static const fnn_gemm_blocking FNN_K(gemm_blocking) = {
    .mr = MR, .nr = NR, .kc = 256, .mc = 20 * MR, .nc = (2048 / NR) * NR, .vw = FNN_VW};

/* C tile (m, n) = alpha acc + (first ? beta C : C), then on the last K block
 * + bias, a copy to preact (m, n) when asked, and act: the fused epilogue,
 * while acc is still in registers. acc is (MR, NRV vectors). */
FNN_INLINE void store_tile(vf acc[MR][NRV], float *C, int64_t ldc, int64_t m, int64_t n,
                           int64_t row0, int64_t col0, const fnn_gemm_epilogue *ep) {
    const vf alpha = vf_set1(ep->alpha), beta = vf_set1(ep->beta);
    const int read_c = !ep->first || ep->beta != 0.0f;
    const int add_bias = ep->last && ep->bias_mode != FNN_BIAS_NONE;
    const fnn_activation act = ep->last ? ep->act : FNN_ACT_NONE;
    float *const preact = ep->last ? ep->preact : NULL;
    for (int i = 0; i < MR && i < m; i++) {
        float *c = C + i * ldc;
        float *pre = preact ? preact + (row0 + i) * ep->ld_preact + col0 : NULL;
        for (int v = 0; v < NRV; v++) {
            int64_t j = v * FNN_VW, w = vf_lanes(n - j);
            if (w <= 0) break;
            vf r = vf_mul(acc[i][v], alpha);
            if (read_c) {
                vf old = vf_load_w(c + j, w, 0.0f);
                r = ep->first ? vf_fmadd(beta, old, r) : vf_add(r, old);
            }
            if (add_bias) {
                const float *bias = ep->bias;
                vf bv = ep->bias_mode == FNN_BIAS_ROW ? vf_set1(bias[row0 + i])
                        : vf_load_w(bias + col0 + j, w, 0.0f);
                r = vf_add(r, bv);
            }
            if (pre) vf_store_w(pre + j, r, w);
            r = fnn_epilogue_activate(r, act);
            vf_store_w(c + j, r, w);
        }
    }
}

/* The MR x NR tile loop, for packed panels and for A and B read in place.
 * A points at op(A)'s row row0 (element (i, k) at A[i*lda + k], or A[k*lda + i]
 * when trans_a), B at column col0 of a row-major (K, N) B. A packed A panel is
 * the trans_a layout with lda = MR, a packed B panel is row-major with ldb = NR.
 * Only the first `rows` <= MR rows and `nv` <= NRV vectors of columns are
 * computed (a small tile costs what it holds). Rows past m re-read row m-1
 * (in bounds, discarded); columns past n are masked unless `full`, which says
 * m == MR and n == NR (or zero-padded panels): then a k-major A also
 * addresses the MR values of a step from one pointer instead of MR row
 * pointers, which would not all fit in the registers. rows, nv and full are
 * constants at each call. Each element gets the same FMA order either way. */
FNN_INLINE void direct_tile(int64_t K, const float *A, int64_t lda, int trans_a, const float *B,
                            int64_t ldb, float *C, int64_t ldc, int64_t m, int64_t n,
                            int64_t row0, int64_t col0, const fnn_gemm_epilogue *ep, int rows,
                            int nv, int full) {
    /* the tile of C is needed only at the end: start fetching it now */
    for (int i = 0; i < MR && i < m; i++) {
        __builtin_prefetch(C + i * ldc, 1, 3);
        __builtin_prefetch(C + i * ldc + NR - 1, 1, 3);
    }
    vm cols[NRV]; /* the columns < n of each vector */
    for (int v = 0; v < NRV; v++) {
        int64_t w = n - v * FNN_VW;
        cols[v] = vm_first(w < 0 ? 0 : vf_lanes(w));
    }
    const float *arow[MR];
    for (int i = 0; i < rows; i++) arow[i] = A + (trans_a ? 1 : lda) * (i < m ? i : m - 1);
    const int64_t kstep = trans_a ? lda : 1;
    vf acc[MR][NRV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NRV; v++) acc[i][v] = vf_zero();
    for (int64_t k = 0; k < K; k++) {
        vf b[NRV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            const float *bp = B + k * ldb + v * FNN_VW;
            b[v] = full ? vf_load(bp) : vf_load_masked(bp, cols[v]);
        }
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++) {
            vf a = vf_set1(full && trans_a ? A[k * lda + i] : arow[i][k * kstep]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] = vf_fmadd(a, b[v], acc[i][v]);
        }
    }
    /* store_tile indexes its tile by run-time bounds: hand it a copy, so acc
     * itself is only ever indexed by constants and stays in registers */
    vf tile[MR][NRV];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) tile[i][v] = acc[i][v];
    store_tile(tile, C, ldc, m, n, row0, col0, ep);
}

/* Ap (MR, kc) packed, Bp (kc, NR) packed; C tile (m, n) with row stride ldc */
static void FNN_K(gemm_ukernel)(int64_t kc, const float *Ap, const float *Bp, float *C, int64_t ldc,
                                int64_t m, int64_t n, int64_t row0, int64_t col0,
                                const fnn_gemm_epilogue *ep) {
    /* zero-padded panels: always `full`; a short last row panel computes half */
    if (m <= (MR + 1) / 2)
        direct_tile(kc, Ap, MR, 1, Bp, NR, C, ldc, m, n, row0, col0, ep, (MR + 1) / 2, NRV, 1);
    else
        direct_tile(kc, Ap, MR, 1, Bp, NR, C, ldc, m, n, row0, col0, ep, MR, NRV, 1);
}

/* A and B in place, for small products where packing costs more than it saves:
 * op(A) rows (m, K) at A, B (K, n) at B, C tile (m, n) */
static void FNN_K(gemm_ukernel_direct)(int64_t K, const float *A, int64_t lda, int trans_a,
                                       const float *B, int64_t ldb, float *C, int64_t ldc, int64_t m,
                                       int64_t n, int64_t row0, int64_t col0,
                                       const fnn_gemm_epilogue *ep) {
#define TILE(rows, nv, full) \
    direct_tile(K, A, lda, trans_a, B, ldb, C, ldc, m, n, row0, col0, ep, rows, nv, full)
    const int half_m = m <= (MR + 1) / 2, one_v = n <= FNN_VW;
    if (m == MR && n == NR) TILE(MR, NRV, 1);
#if MR >= 12
    /* a few rows left over (a recurrent step's batch of 16 = 14 + 2): a 2- or 4-row
     * tile is bound by its loads, not by the 7 rows the half tile would compute */
    else if (m <= 2) TILE(2, NRV, 0);
    else if (m <= 4) TILE(4, NRV, 0);
#endif
    else if (half_m && one_v) TILE((MR + 1) / 2, 1, 0);
    else if (half_m) TILE((MR + 1) / 2, NRV, 0);
    else if (one_v) TILE(MR, 1, 0);
    else TILE(MR, NRV, 0);
#undef TILE
}

const fnn_gemm_kernels FNN_K(fnn_gemm_kernels) = {
    .ukernel = FNN_K(gemm_ukernel),
    .ukernel_direct = FNN_K(gemm_ukernel_direct),
    .pack = FNN_K(fnn_gemm_pack),
    .transpose = FNN_K(fnn_gemm_transpose),
    .blocking = &FNN_K(gemm_blocking),
};
