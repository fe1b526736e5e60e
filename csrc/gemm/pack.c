/*
 * gemm/pack.c - copy blocks of op(A) and op(B) into the micro-kernel's panel
 * layouts (gemm.h), zero-padding the last panel to a full MR or NR.
 * One source for every ISA, compiled once per ISA (simd.h) so that the
 * transposing copy of a transposed B moves whole FNN_VW x FNN_VW blocks
 * through registers instead of one float at a time.
 */
#include <string.h>

#include "../simd.h"
#include "gemm.h"

/* A (M, K) row-major, or (K, M) when trans_a: element (i, k) of op(A) */
void FNN_K(fnn_gemm_pack_a)(float *Ap, const float *A, int64_t lda, int trans_a, int64_t i0, int64_t k0,
                     int64_t mc, int64_t kc, int64_t mr) {
    for (int64_t p = 0; p < mc; p += mr) {
        float *panel = Ap + p * kc;
        int64_t rows = mc - p < mr ? mc - p : mr;
        if (trans_a) {
            /* op(A)(i, k) = A[k][i]: each k is a contiguous run of rows */
            for (int64_t k = 0; k < kc; k++) {
                const float *src = A + (k0 + k) * lda + i0 + p;
                float *dst = panel + k * mr;
                memcpy(dst, src, (size_t)rows * sizeof(float));
                for (int64_t i = rows; i < mr; i++) dst[i] = 0.0f;
            }
        } else {
            /* op(A)(i, k) = A[i][k]: mr row streams read in step, each k's mr
             * values written contiguously */
            const float *src[64]; /* mr <= 64 in every ISA's table */
            for (int64_t i = 0; i < mr; i++) src[i] = A + (i0 + p + (i < rows ? i : 0)) * lda + k0;
            for (int64_t k = 0; k < kc; k++) {
                float *dst = panel + k * mr;
                for (int64_t i = 0; i < rows; i++) dst[i] = src[i][k];
                for (int64_t i = rows; i < mr; i++) dst[i] = 0.0f;
            }
        }
    }
}

/* B (K, N) row-major, or (N, K) when trans_b: element (k, j) of op(B) */
void FNN_K(fnn_gemm_pack_b)(float *Bp, const float *B, int64_t ldb, int trans_b, int64_t k0, int64_t j0,
                     int64_t kc, int64_t nc, int64_t nr) {
    for (int64_t q = 0; q < nc; q += nr) {
        float *panel = Bp + q * kc;
        int64_t cols = nc - q < nr ? nc - q : nr;
        if (trans_b && cols == nr && nr % FNN_VW == 0) {
            /* op(B)(k, j) = B[j][k]: whole FNN_VW x FNN_VW blocks transposed in
             * registers, the last kc % FNN_VW columns of B one by one */
            int64_t kfull = kc / FNN_VW * FNN_VW;
            for (int64_t k = 0; k < kfull; k += FNN_VW)
                for (int64_t j = 0; j < nr; j += FNN_VW)
                    vf_transpose_block(panel + k * nr + j, nr, B + (j0 + q + j) * ldb + k0 + k, ldb);
            for (int64_t j = 0; j < nr; j++) {
                const float *src = B + (j0 + q + j) * ldb + k0;
                for (int64_t k = kfull; k < kc; k++) panel[k * nr + j] = src[k];
            }
        } else if (trans_b) {
            /* a ragged last panel: nr row streams read in step, each k's nr
             * values written contiguously */
            const float *src[64]; /* nr <= 64 in every ISA's table */
            for (int64_t j = 0; j < nr; j++) src[j] = B + (j0 + q + (j < cols ? j : 0)) * ldb + k0;
            for (int64_t k = 0; k < kc; k++) {
                float *dst = panel + k * nr;
                for (int64_t j = 0; j < cols; j++) dst[j] = src[j][k];
                for (int64_t j = cols; j < nr; j++) dst[j] = 0.0f;
            }
        } else {
            for (int64_t k = 0; k < kc; k++) {
                const float *src = B + (k0 + k) * ldb + j0 + q;
                float *dst = panel + k * nr;
                memcpy(dst, src, (size_t)cols * sizeof(float));
                for (int64_t j = cols; j < nr; j++) dst[j] = 0.0f;
            }
        }
    }
}
