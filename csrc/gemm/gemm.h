/*
 * gemm/gemm.h - the pieces of SGEMM (internal), after BLIS.
 *
 *   gemm_api.c the driver: NC / KC / MC loops, thread split over M and N,
 *              batching, the public fnn_sgemm* entry points; compiled once
 *   pack.c     packing op(A) into MR-row panels and op(B) into NR-column
 *              panels, zero-padding ragged edges; one source, compiled per ISA
 *   kernel.c   the MR x NR micro-kernel with the fused epilogue, compiled once
 *              per ISA (simd.h); its block sizes sit in one table per ISA, and
 *              it ends with the family's sub-table fnn_gemm_kernels
 * Dimension letters: C (M, N) = op(A) (M, K) op(B) (K, N); MR x NR micro-tile.
 *
 * Packed layouts (k-major, so the micro-kernel reads both panels linearly):
 *   Ap: panel p holds rows p*MR .. p*MR+MR-1 of the block; element (i, k) at
 *       Ap[p*MR*kc + k*MR + i].
 *   Bp: panel q holds columns q*NR .. q*NR+NR-1; element (k, j) at
 *       Bp[q*NR*kc + k*NR + j].
 */
#ifndef FNN_GEMM_H
#define FNN_GEMM_H

#include <stdint.h>

#include "fastnn.h"

/* Block sizes of one ISA: MR x NR micro-tile; an MR x KC panel of A stays in
 * L1 while KC x NC of packed B streams from L2; MC rows of A per packed block. */
typedef struct {
    int64_t mr, nr, kc, mc, nc;
    int64_t vw; /* floats per vector register */
} fnn_gemm_blocking;

/* What the micro-kernel does with its tile once the K block is summed. */
typedef struct {
    float alpha;
    float beta;                 /* on C's old contents; used on the first K block only */
    const float *bias;          /* (M,) or (N,) by bias_mode, or NULL */
    fnn_bias_mode bias_mode;
    fnn_activation act;
    float *preact;              /* (M, N) with row stride ld_preact, or NULL: on the last K
                                   block, the tile before act (alpha AB + beta C + bias) */
    int64_t ld_preact;
    int first;                  /* first K block: C = alpha acc + beta C (C unread if beta == 0) */
    int last;                   /* last K block: then add bias and apply act */
} fnn_gemm_epilogue;

/* C tile (m <= MR rows, n <= NR columns, row stride ldc) at (row0, col0) of
 * the whole C: C (+)= alpha * Ap (MR, kc) Bp (kc, NR), then the epilogue. */
typedef void (*fnn_gemm_ukernel_fn)(int64_t kc, const float *Ap, const float *Bp, float *C,
                                    int64_t ldc, int64_t m, int64_t n, int64_t row0,
                                    int64_t col0, const fnn_gemm_epilogue *ep);

/* the same tile from unpacked op(A) (row row0 at A) and row-major B (column
 * col0 at B), for small products */
typedef void (*fnn_gemm_ukernel_direct_fn)(int64_t K, const float *A, int64_t lda, int trans_a,
                                           const float *B, int64_t ldb, float *C, int64_t ldc,
                                           int64_t m, int64_t n, int64_t row0, int64_t col0,
                                           const fnn_gemm_epilogue *ep);

/* pack.c: nlanes lanes x kc steps of X into panels of `width` lanes (see
 * pack.c); A packs with width MR, lanes_adjacent = trans_a, B with width NR,
 * lanes_adjacent = !trans_b */
typedef void (*fnn_gemm_pack_fn)(float *dst, const float *X, int64_t ld, int lanes_adjacent,
                                 int64_t l0, int64_t k0, int64_t nlanes, int64_t kc,
                                 int64_t width);

/* pack.c: dst[k * ld_dst + r] = src[r * ld_src + k] for r < rows, k < K (a plain
 * transpose, for callers that need op(B) row-major: recurrent weights, attention's K) */
typedef void (*fnn_gemm_transpose_fn)(float *dst, int64_t ld_dst, const float *src,
                                      int64_t ld_src, int64_t rows, int64_t K);

typedef struct {
    fnn_gemm_ukernel_fn ukernel;
    fnn_gemm_ukernel_direct_fn ukernel_direct;
    fnn_gemm_pack_fn pack;
    fnn_gemm_transpose_fn transpose;
    const fnn_gemm_blocking *blocking;
} fnn_gemm_kernels;

#ifdef FNN_TARGET
/* in the per-ISA files: pack.c's function, for kernel.c's sub-table */
void FNN_K(fnn_gemm_pack)(float *dst, const float *X, int64_t ld, int lanes_adjacent, int64_t l0,
                          int64_t k0, int64_t nlanes, int64_t kc, int64_t width);
void FNN_K(fnn_gemm_transpose)(float *dst, int64_t ld_dst, const float *src, int64_t ld_src,
                               int64_t rows, int64_t K);
#endif

/* fnn_sgemm_ex (fastnn.h) that also stores the pre-activation tile into preact
 * (M, N) with row stride ld_preact (NULL: none), from the same registers the
 * epilogue activates; for fnn_linear_forward (gemm_api.c) */
fnn_status fnn_sgemm_preact(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int64_t ldc, const float *bias,
                            fnn_bias_mode bias_mode, fnn_activation act, float *preact,
                            int64_t ld_preact);

#endif /* FNN_GEMM_H */
