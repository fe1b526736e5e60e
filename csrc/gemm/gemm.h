/*
 * gemm/gemm.h - the pieces of SGEMM (internal), after BLIS.
 *
 *   driver.c   the NC / KC / MC loops, thread split over M and N, batching
 *   pack.c     packing op(A) into MR-row panels and op(B) into NR-column
 *              panels, zero-padding ragged edges; one source, compiled per ISA
 *   kernel.c   the MR x NR micro-kernel with the fused epilogue, compiled once
 *              per ISA (simd.h); its block sizes sit in one table per ISA
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

/* out (N,) (+)= column sums of A (rows, N) with row stride lda */
typedef void (*fnn_colsum_fn)(float *out, const float *A, int64_t rows, int64_t N,
                              int64_t lda, int accumulate);

/* pack.c: nlanes lanes x kc steps of X into panels of `width` lanes (see
 * pack.c); A packs with width MR, lanes_adjacent = trans_a, B with width NR,
 * lanes_adjacent = !trans_b */
typedef void (*fnn_gemm_pack_fn)(float *dst, const float *X, int64_t ld, int lanes_adjacent,
                                 int64_t l0, int64_t k0, int64_t nlanes, int64_t kc,
                                 int64_t width);

#endif /* FNN_GEMM_H */
