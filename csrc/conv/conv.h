/*
 * conv/conv.h - what the convolution's two drivers share (internal).
 *
 * conv_api.c holds the entry points of fastnn.h and the im2col-on-SGEMM path;
 * direct_api.c the direct path (the implicit-GEMM tiles of conv/kernel.c on a
 * padded copy of each image), which conv_api.c takes wherever it applies.
 * Dimension letters as in conv_api.c.
 */
#ifndef FNN_CONV_H
#define FNN_CONV_H

#include <stdint.h>

#include "../fastnn.h"

/* flops per parallel chunk, about 0.1 ms */
#define FNN_CONV_GRAIN_FLOPS (1 << 23)
/* at most this many weight-gradient partials */
#define FNN_CONV_MAX_CHUNKS 16

static inline int64_t fnn_conv_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* items per chunk for items of flops_per_item each */
static inline int64_t fnn_conv_grain(int64_t flops_per_item) {
    int64_t g = FNN_CONV_GRAIN_FLOPS / (flops_per_item > 0 ? flops_per_item : 1);
    return g < 1 ? 1 : g;
}

/* the grain of a weight-gradient split of `items`: at most FNN_CONV_MAX_CHUNKS chunks */
static inline int64_t fnn_conv_partial_grain(int64_t items, int64_t flops_per_item) {
    int64_t g = fnn_conv_grain(flops_per_item);
    if (fnn_conv_ceil_div(items, g) > FNN_CONV_MAX_CHUNKS)
        g = fnn_conv_ceil_div(items, FNN_CONV_MAX_CHUNKS);
    return g;
}

/* sum of r[0 .. n) in a fixed order (conv_api.c) */
float fnn_conv_row_sum(const float *r, int64_t n);

/* The direct path (direct_api.c), for groups == 1; the input gradient also
 * needs stride 1, pt <= (KH - 1) dh, pl <= (KW - 1) dw (then it is the forward
 * of dy with the kernel flipped) and at least half a tile width of input
 * channels. Same contracts as the entry points. */
int fnn_conv2d_direct_applies(const fnn_conv2d_shape *s, int input_grad);
fnn_status fnn_conv2d_direct_forward(float *y, const float *x, const float *weight,
                                     const float *bias, const fnn_conv2d_shape *s,
                                     fnn_activation act);
fnn_status fnn_conv2d_direct_input_grad(float *dx, const float *dy, const float *weight,
                                        const fnn_conv2d_shape *s);
/* dweight and / or dbias (either may be NULL) */
fnn_status fnn_conv2d_direct_weight_grad(float *dweight, float *dbias, const float *dy,
                                         const float *x, const fnn_conv2d_shape *s);

#endif /* FNN_CONV_H */
