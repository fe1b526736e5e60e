/*
 * activations_api.c - the public element-wise activation entry points of
 * fastnn.h, and the names of the epilogue activation codes.
 *
 * Each checks its size, splits the n elements over threads with
 * fnn_parallel_for (ranges start on 64-byte multiples, so every element is
 * computed the same way for any thread count) and calls the active ISA's
 * kernel (activations.c). Compiled once. Every array is (n,).
 */

#include <stddef.h>

#include "fastnn.h"
#include "kernels.h"

/* ---- element-wise ------------------------------------------------------- */

typedef struct {
    fnn_map_forward_fn forward;
    fnn_map_backward_fn backward;
    float *out;
    const float *a, *b;
    float param;
    int accumulate;
} elementwise_job;

static void forward_range(void *ctx, int64_t begin, int64_t end) {
    elementwise_job *j = ctx;
    j->forward(j->out + begin, j->a + begin, end - begin, j->param);
}

static void backward_range(void *ctx, int64_t begin, int64_t end) {
    elementwise_job *j = ctx;
    j->backward(j->out + begin, j->a + begin, j->b + begin, end - begin, j->param, j->accumulate);
}

static fnn_status run_forward(fnn_map_forward_fn forward, float *out, const float *inp, int64_t n, float param) {
    if (n < 0) return FNN_ERR_ARG;
    elementwise_job j = {.forward = forward, .out = out, .a = inp, .param = param};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, forward_range);
    return FNN_OK;
}

static fnn_status run_backward(fnn_map_backward_fn backward, float *dinp, const float *dout, const float *saved,
                           int64_t n, float param, int accumulate) {
    if (n < 0) return FNN_ERR_ARG;
    elementwise_job j = {.backward = backward, .out = dinp, .a = dout, .b = saved,
                         .param = param, .accumulate = accumulate != 0};
    fnn_parallel_for(n, FNN_GRAIN_ELEMENTWISE, FNN_ALIGN_FLOATS, &j, backward_range);
    return FNN_OK;
}

/* the active ISA's activation kernels */
static const fnn_activation_kernels *kernels(void) { return fnn_active_activations(); }

/* the public pair of an activation without options; `saved` names what its
 * backward takes: the forward input inp or the forward output out (fastnn.h) */
#define FNN_ACTIVATION_ENTRY_POINTS(op, saved)                                          \
    fnn_status fnn_##op##_forward(float *out, const float *inp, int64_t n) {             \
        return run_forward(kernels()->op##_forward, out, inp, n, 0.0f);                  \
    }                                                                                    \
    fnn_status fnn_##op##_backward(float *dinp, const float *dout, const float *saved,   \
                                   int64_t n, int accumulate) {                          \
        return run_backward(kernels()->op##_backward, dinp, dout, saved, n, 0.0f,        \
                            accumulate);                                                 \
    }
FNN_ACTIVATION_ENTRY_POINTS(relu, inp)
FNN_ACTIVATION_ENTRY_POINTS(sigmoid, out)
FNN_ACTIVATION_ENTRY_POINTS(tanh, out)
FNN_ACTIVATION_ENTRY_POINTS(silu, inp)

fnn_status fnn_leaky_relu_forward(float *out, const float *inp, int64_t n, float negative_slope) {
    return run_forward(kernels()->leaky_relu_forward, out, inp, n, negative_slope);
}
fnn_status fnn_leaky_relu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                                   float negative_slope, int accumulate) {
    return run_backward(kernels()->leaky_relu_backward, dinp, dout, inp, n, negative_slope,
                        accumulate);
}
fnn_status fnn_gelu_forward(float *out, const float *inp, int64_t n, int approximate_tanh) {
    return run_forward(approximate_tanh ? kernels()->gelu_tanh_forward : kernels()->gelu_erf_forward,
                       out, inp, n, 0.0f);
}
fnn_status fnn_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n,
                             int approximate_tanh, int accumulate) {
    return run_backward(approximate_tanh ? kernels()->gelu_tanh_backward
                                         : kernels()->gelu_erf_backward,
                        dinp, dout, inp, n, 0.0f, accumulate);
}
fnn_status fnn_exp(float *out, const float *inp, int64_t n) {
    return run_forward(kernels()->exp, out, inp, n, 0.0f);
}
fnn_status fnn_erf(float *out, const float *inp, int64_t n) {
    return run_forward(kernels()->erf, out, inp, n, 0.0f);
}


/* ---- the epilogue activation codes' names: the one list Python reads --- */

static const char *const activation_names[FNN_ACT_COUNT] = {
    [FNN_ACT_NONE] = "none",
    [FNN_ACT_RELU] = "relu",
    [FNN_ACT_GELU] = "gelu",
    [FNN_ACT_SIGMOID] = "sigmoid",
    [FNN_ACT_TANH] = "tanh",
    [FNN_ACT_GELU_TANH] = "gelu_tanh",
};

const char *fnn_activation_name(int act) {
    return act >= 0 && act < FNN_ACT_COUNT ? activation_names[act] : NULL;
}
