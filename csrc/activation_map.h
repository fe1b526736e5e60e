/*
 * activation_map.h - the loops that turn a lane function into an element-wise
 * kernel, shared by activations.c and activations_piecewise.c (internal).
 *
 * A forward f(x, p) and a backward g(dout, saved, p) work on one vector; the
 * loops run them over n floats, the ragged tail through the same function with
 * a masked load, so every element gets bit-for-bit the same result wherever a
 * thread's range starts. p holds the op's options (fnn_map_params, kernels.h)
 * broadcast to vectors. Every array is (n,).
 */
#ifndef FNN_ACTIVATION_MAP_H
#define FNN_ACTIVATION_MAP_H

#include "simd.h"
#include "kernels.h"

/* fnn_map_params as vectors */
typedef struct {
    vf a, b, c;
} fnn_vparams;

FNN_INLINE fnn_vparams fnn_vparams_set(fnn_map_params param) {
    fnn_vparams p = {vf_set1(param.a), vf_set1(param.b), vf_set1(param.c)};
    return p;
}

/* out (n,) = f(inp (n,)) */
#define FNN_MAP_FORWARD(name, f)                                                \
    static void FNN_K(name)(float *out, const float *inp, int64_t n, fnn_map_params param) { \
        const fnn_vparams p = fnn_vparams_set(param);                           \
        int64_t i = 0;                                                          \
        for (; i + FNN_VW <= n; i += FNN_VW) vf_store(out + i, f(vf_load(inp + i), p)); \
        if (i < n) vf_storen(out + i, f(vf_loadn(inp + i, n - i), p), n - i);   \
    }

/* dinp (n,) (+)= g(dout (n,), saved (n,)); the accumulate branch is hoisted by
 * instantiating the loop twice through an always-inline helper */
#define FNN_MAP_BACKWARD(name, g)                                               \
    FNN_INLINE void FNN_K(name##_loop)(float *dinp, const float *dout, const float *saved, \
                                       int64_t n, fnn_vparams p, int accumulate) { \
        int64_t i = 0;                                                          \
        for (; i + FNN_VW <= n; i += FNN_VW) {                                  \
            vf d = g(vf_load(dout + i), vf_load(saved + i), p);                 \
            if (accumulate) d = vf_add(vf_load(dinp + i), d);                   \
            vf_store(dinp + i, d);                                              \
        }                                                                       \
        if (i < n) {                                                            \
            int64_t r = n - i;                                                  \
            vf d = g(vf_loadn(dout + i, r), vf_loadn(saved + i, r), p);         \
            if (accumulate) d = vf_add(vf_loadn(dinp + i, r), d);               \
            vf_storen(dinp + i, d, r);                                          \
        }                                                                       \
    }                                                                           \
    static void FNN_K(name)(float *dinp, const float *dout, const float *saved, int64_t n, \
                            fnn_map_params param, int accumulate) {             \
        const fnn_vparams p = fnn_vparams_set(param);                           \
        if (accumulate) FNN_K(name##_loop)(dinp, dout, saved, n, p, 1);         \
        else FNN_K(name##_loop)(dinp, dout, saved, n, p, 0);                    \
    }

/* x itself where x is NaN, else y: the ops whose branches would drop a NaN */
FNN_INLINE vf vf_keep_nan(vf x, vf y) { return vf_select(vf_isnan(x), x, y); }

#endif /* FNN_ACTIVATION_MAP_H */
