/*
 * embedding.c - the vector loop of the embedding backward: one looked-up row's
 * gradient added into its table row, scaled.
 *
 * Compiled once per ISA (see simd.h). embedding_api.c splits the E columns over
 * threads and runs the lookups in index order inside each range, so the sums do
 * not depend on the thread count. Dimension letters: E embedding size (here the
 * width of one column range). The file ends with this ISA's fnn_embedding_kernels.
 */
#include "simd.h"
#include "kernels.h"

/* dst (E,) += scale * src (E,) */
static void FNN_K(add_scaled_row)(float *dst, const float *src, int64_t E, float scale) {
    const vf sc = vf_set1(scale);
    for (int64_t j = 0; j < E; j += FNN_VW) {
        int64_t w = vf_lanes(E - j);
        vf_store_w(dst + j, vf_fmadd(sc, vf_load_w(src + j, w, 0.0f), vf_load_w(dst + j, w, 0.0f)), w);
    }
}

const fnn_embedding_kernels FNN_K(fnn_embedding_kernels) = {
    .add_scaled_row = FNN_K(add_scaled_row),
};
