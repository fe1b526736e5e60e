/*
 * fma_probe.c - the machine's FMA ceiling: 16 independent vector FMA chains,
 * what one core can sustain at best (the roof GEMM is measured against).
 *
 * Compiled once per ISA (see simd.h); fma_probe_api.c runs it on every thread.
 * Dimension letter: iters, the rounds of 16 FMAs. The file ends with this
 * ISA's fnn_fma_probe_kernels (kernels.h).
 */
#include "simd.h"
#include "kernels.h"

/* 2 * 16 * FNN_VW * iters floating-point operations; the returned sum keeps them observable */
static float FNN_K(fma_probe_run)(int64_t iters) {
    vf acc[16];
    const vf a = vf_set1(0.999999f), b = vf_set1(1e-7f);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) acc[i] = vf_set1((float)i);
    for (int64_t t = 0; t < iters; t++) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) acc[i] = vf_fmadd(acc[i], a, b);
    }
    vf s = vf_zero();
    for (int i = 0; i < 16; i++) s = vf_add(s, acc[i]);
    return vf_reduce_add(s);
}

const fnn_fma_probe_kernels FNN_K(fnn_fma_probe_kernels) = {
    .run = FNN_K(fma_probe_run),
    .vw = FNN_VW,
};
