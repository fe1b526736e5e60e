/*
 * dsum.h - float64 sums of float32 data in fixed lanes, for the normalization
 * kernels (norm.c, layer_norm.c; internal).
 *
 * 8 floats / 8 doubles as GCC vector extensions: the same lane-wise IEEE
 * operations on every ISA (one zmm on AVX-512, two ymm on AVX2, four xmm on
 * generic), no contraction, so a statistic has the same bits on every ISA.
 * Each element goes to the lane of its position; lane_total adds the lanes in
 * a fixed tree.
 */
#ifndef FNN_DSUM_H
#define FNN_DSUM_H

typedef float f8 __attribute__((vector_size(32), aligned(4))); /* loads at any float */
typedef double d8 __attribute__((vector_size(64)));
/* macros, not functions: a d8 argument or result would change the ABI below AVX-512 */
#define LOAD_D8(p) __builtin_convertvector(*(const f8 *)(p), d8)
#define D8_SET1(a) ((d8){(a), (a), (a), (a), (a), (a), (a), (a)})

/* the lanes v[0..nv-1] (8 each, nv <= 4) plus the scalar tail lanes t[0 .. 8*nv-1],
 * in a fixed tree */
static inline double lane_total(const d8 *v, int nv, const double *t) {
    double u[4 * 8];
    for (int i = 0; i < nv; i++)
        for (int l = 0; l < 8; l++) u[8 * i + l] = v[i][l] + t[8 * i + l];
    for (int h = 4 * nv; h > 0; h /= 2)
        for (int l = 0; l < h; l++) u[l] += u[l + h];
    return u[0];
}

#endif /* FNN_DSUM_H */
