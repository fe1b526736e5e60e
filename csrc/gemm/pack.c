/*
 * gemm/pack.c - copy blocks of op(A) and op(B) into the micro-kernel's panel
 * layouts (gemm.h), zero-padding the last panel to a full MR or NR.
 *
 * Both are one operation: `width` lanes (rows of op(A), columns of op(B)) by
 * kc steps of k, stored k-major. In the source the lanes either lie next to
 * each other for each k (A transposed, B as is: a copy per k), or each lane
 * is a contiguous run along k (A as is, B transposed: a transpose). Compiled
 * once per ISA (simd.h): copies move whole vectors, transposes move
 * FNN_VW x FNN_VW blocks through registers, and only the k tail of a
 * transpose goes one float at a time. The file ends with a plain transpose
 * for callers that need an operand row-major (fnn_gemm_transpose).
 */
#include <string.h>

#include "../simd.h"
#include "gemm.h"

#define FNN_PACK_AHEAD 8 /* rows a lanes-adjacent pack prefetches ahead */

/* X holds lane l, step k at X[(k0 + k) * ld + l0 + l] when lanes_adjacent,
 * else at X[(l0 + l) * ld + k0 + k]; lanes l0 .. l0 + nlanes - 1 are packed
 * into panels of `width` lanes, lane l of step k at panel[k * width + l]. */
void FNN_K(fnn_gemm_pack)(float *dst, const float *X, int64_t ld, int lanes_adjacent, int64_t l0,
                          int64_t k0, int64_t nlanes, int64_t kc, int64_t width) {
    if (lanes_adjacent) {
        /* step by step, each source row read once from start to end (a panel at a
         * time would walk kc rows `ld` apart per panel, re-reading shared lines) */
        for (int64_t k = 0; k < kc; k++) {
            const float *src = X + (k0 + k) * ld + l0;
            /* rows `ld` apart defeat the hardware prefetcher when ld is long and the
             * lanes few (a slice of a weight gradient's dY^T): fetch a few rows ahead */
            if (k + FNN_PACK_AHEAD < kc)
                for (int64_t l = 0; l < nlanes; l += 64 / (int64_t)sizeof(float))
                    __builtin_prefetch(src + FNN_PACK_AHEAD * ld + l, 0, 3);
            for (int64_t p = 0; p < nlanes; p += width) {
                float *dst_k = dst + p * kc + k * width;
                int64_t lanes = nlanes - p < width ? nlanes - p : width;
                for (int64_t l = 0; l < width; l += FNN_VW) {
                    vf v = l < lanes ? vf_load_w(src + p + l, vf_lanes(lanes - l), 0.0f)
                                     : vf_zero();
                    vf_store_w(dst_k + l, v, vf_lanes(width - l));
                }
            }
        }
        return;
    }
    /* lanes along k: FNN_VW x FNN_VW blocks through registers, the ragged k tail by hand */
    for (int64_t p = 0; p < nlanes; p += width) {
        float *panel = dst + p * kc;
        int64_t lanes = nlanes - p < width ? nlanes - p : width;
        int64_t kfull = kc / FNN_VW * FNN_VW;
        for (int64_t k = 0; k < kfull; k += FNN_VW)
            for (int64_t l = 0; l < lanes; l += FNN_VW)
                vf_transpose_block(panel + k * width + l, width, X + (l0 + p + l) * ld + k0 + k,
                                   ld, lanes - l < FNN_VW ? lanes - l : FNN_VW);
        for (int64_t l = 0; l < lanes; l++) {
            const float *src = X + (l0 + p + l) * ld + k0;
            for (int64_t k = kfull; k < kc; k++) panel[k * width + l] = src[k];
        }
        for (int64_t k = 0; k < kc && lanes < width; k++)
            memset(panel + k * width + lanes, 0, (size_t)(width - lanes) * sizeof(float));
    }
}

/* dst[k * ld_dst + r] = src[r * ld_src + k]: whole vector blocks transposed in
 * registers, the edges one by one */
void FNN_K(fnn_gemm_transpose)(float *dst, int64_t ld_dst, const float *src, int64_t ld_src,
                               int64_t rows, int64_t K) {
    for (int64_t r0 = 0; r0 < rows; r0 += FNN_VW) {
        const int64_t nr = vf_lanes(rows - r0);
        int64_t k0 = 0;
        for (; k0 + FNN_VW <= K; k0 += FNN_VW)
            vf_transpose_block(dst + k0 * ld_dst + r0, ld_dst, src + r0 * ld_src + k0, ld_src, nr);
        for (; k0 < K; k0++)
            for (int64_t r = 0; r < nr; r++) dst[k0 * ld_dst + r0 + r] = src[(r0 + r) * ld_src + k0];
    }
}
