/*
 * rnn/cell.c - the recurrent cells' pointwise passes, forward and backward, one ISA.
 *
 * Each call runs one block of w <= FNN_RNN_UNITS hidden units over m rows (kernels.h:
 * fnn_rnn_cell_forward_args / _backward_args give every array's shape). rnn_api.c
 * calls the forward right after the step's GEMM ([x_t | h_prev] times the packed
 * weights) has filled the block's tile hg, while it is in L1, and the backward once
 * per step before the dh GEMM. Vectors run
 * along the units; each element's arithmetic is the same wherever the block starts.
 * Gates are post-activation in the saved tile, so backward needs no transcendental
 * except LSTM's tanh(c). Sigmoid and tanh come from vmath.h.
 */
#include "../simd.h"
#include "../kernels.h"
#include "../vmath.h"

/* the vectors of one row: lanes [u, u + n) of the block, n = vf_lanes(w - u) */
#define FOR_LANES(u, n, w) for (int64_t u = 0, n = vf_lanes(w); u < (w); u += FNN_VW, n = vf_lanes((w) - u))

FNN_INLINE vf load(const float *p, int64_t n) { return vf_load_w(p, n, 0.0f); }
FNN_INLINE void store(float *p, vf v, int64_t n) { vf_store_w(p, v, n); }
FNN_INLINE vf one(void) { return vf_set1(1.0f); }
/* ReLU that never returns a negative zero or a flushed denormal's sign */
FNN_INLINE vf relu(vf x) { return vf_add(vf_max(vf_zero(), x), vf_zero()); }

/* ---- vanilla RNN: h = act(a), a = x-part + h-part (G = 1) ---------------------- */
/* the bias of lanes [u, u + n) of gate block k, or 0 */
FNN_INLINE vf bias_of(const fnn_rnn_cell_forward_args *a, int64_t k, int64_t u, int64_t n) {
    return a->bias ? load(a->bias + k * a->w + u, n) : vf_zero();
}

FNN_INLINE void rnn_forward(const fnn_rnn_cell_forward_args *a, int is_relu) {
    for (int64_t i = 0; i < a->m; i++) {
        float *g = a->gates + i * a->ldg;
        const float *hg = a->hg + i * a->ldhg;
        FOR_LANES(u, n, a->w) {
            vf pre = vf_add(load(hg + u, n), bias_of(a, 0, u, n));
            vf h = is_relu ? relu(pre) : vf_tanh(pre);
            store(g + u, h, n);
            store(a->h + i * a->ldh + u, h, n);
            store(a->y + i * a->ldy + u, h, n);
        }
    }
}
static void FNN_K(rnn_tanh_forward)(const fnn_rnn_cell_forward_args *a) { rnn_forward(a, 0); }
static void FNN_K(rnn_relu_forward)(const fnn_rnn_cell_forward_args *a) { rnn_forward(a, 1); }

FNN_INLINE vf rows_dh(const fnn_rnn_cell_backward_args *a, int64_t i, int64_t u, int64_t n) {
    vf dh = load(a->dh + i * a->ld + u, n);
    return a->dy ? vf_add(dh, load(a->dy + i * a->ldy + u, n)) : dh;
}

/* da = dh * act'(a) from h: relu passes where h > 0, tanh multiplies by 1 - h^2 */
FNN_INLINE void rnn_backward(const fnn_rnn_cell_backward_args *a, int is_relu) {
    for (int64_t i = 0; i < a->m; i++) {
        float *g = a->dgates + i * a->ldg;
        FOR_LANES(u, n, a->w) {
            vf h = load(g + u, n), dh = rows_dh(a, i, u, n);
            vf da = is_relu ? vf_select(vf_gt(h, vf_zero()), dh, vf_zero())
                            : vf_mul(dh, vf_fnmadd(h, h, one()));
            store(g + u, da, n);
        }
    }
}
static void FNN_K(rnn_tanh_backward)(const fnn_rnn_cell_backward_args *a) { rnn_backward(a, 0); }
static void FNN_K(rnn_relu_backward)(const fnn_rnn_cell_backward_args *a) { rnn_backward(a, 1); }

/* ---- LSTM: gates (i, f, g, o) -------------------------------------------------
 * i, f, o = sigmoid, g = tanh; c = f c_prev + i g; h = o tanh(c). */
static void FNN_K(lstm_forward)(const fnn_rnn_cell_forward_args *a) {
    const int64_t w = a->w;
    for (int64_t r = 0; r < a->m; r++) {
        float *g = a->gates + r * a->ldg;
        const float *hg = a->hg + r * a->ldhg;
        FOR_LANES(u, n, w) {
            vf i = vf_sigmoid(vf_add(load(hg + u, n), bias_of(a, 0, u, n)));
            vf f = vf_sigmoid(vf_add(load(hg + w + u, n), bias_of(a, 1, u, n)));
            vf gg = vf_tanh(vf_add(load(hg + 2 * w + u, n), bias_of(a, 2, u, n)));
            vf o = vf_sigmoid(vf_add(load(hg + 3 * w + u, n), bias_of(a, 3, u, n)));
            vf c = vf_fmadd(f, load(a->c_prev + r * a->ld + u, n), vf_mul(i, gg));
            vf h = vf_mul(o, vf_tanh(c));
            store(g + u, i, n);
            store(g + w + u, f, n);
            store(g + 2 * w + u, gg, n);
            store(g + 3 * w + u, o, n);
            store(a->c + r * a->ld + u, c, n);
            store(a->h + r * a->ldh + u, h, n);
            store(a->y + r * a->ldy + u, h, n);
        }
    }
}

/* dh_t = dh + dy; tc = tanh(c); dc_t = dc + dh_t o (1 - tc^2);
 * d pre-activations: i: dc_t g i (1-i), f: dc_t c_prev f (1-f), g: dc_t i (1-g^2),
 * o: dh_t tc o (1-o); dc_prev = dc_t f */
static void FNN_K(lstm_backward)(const fnn_rnn_cell_backward_args *a) {
    const int64_t w = a->w;
    for (int64_t r = 0; r < a->m; r++) {
        float *g = a->dgates + r * a->ldg;
        FOR_LANES(u, n, w) {
            vf i = load(g + u, n), f = load(g + w + u, n);
            vf gg = load(g + 2 * w + u, n), o = load(g + 3 * w + u, n);
            vf tc = vf_tanh(load(a->c + r * a->ld + u, n));
            vf dh = rows_dh(a, r, u, n);
            float *dcp = a->dc + r * a->ld + u;
            vf dc = vf_fmadd(vf_mul(dh, o), vf_fnmadd(tc, tc, one()), load(dcp, n));
            vf di = vf_mul(vf_mul(dc, gg), vf_mul(i, vf_sub(one(), i)));
            vf df = vf_mul(vf_mul(dc, load(a->c_prev + r * a->ld + u, n)),
                           vf_mul(f, vf_sub(one(), f)));
            vf dg = vf_mul(vf_mul(dc, i), vf_fnmadd(gg, gg, one()));
            vf d_o = vf_mul(vf_mul(dh, tc), vf_mul(o, vf_sub(one(), o)));
            store(g + u, di, n);
            store(g + w + u, df, n);
            store(g + 2 * w + u, dg, n);
            store(g + 3 * w + u, d_o, n);
            store(dcp, vf_mul(dc, f), n);
        }
    }
}

/* ---- GRU: gates (r, z, n), torch's form -------------------------------------
 * r, z = sigmoid(x-part + h-part + biases), hn = h-part of n + b_hn,
 * n = tanh(x-part of n + b_in + r hn), h = n + z (h_prev - n). */
static void FNN_K(gru_forward)(const fnn_rnn_cell_forward_args *a) {
    const int64_t w = a->w;
    for (int64_t i = 0; i < a->m; i++) {
        float *g = a->gates + i * a->ldg;
        const float *hg = a->hg + i * a->ldhg;
        FOR_LANES(u, n, w) {
            vf r = vf_sigmoid(vf_add(load(hg + u, n), bias_of(a, 0, u, n)));
            vf z = vf_sigmoid(vf_add(load(hg + w + u, n), bias_of(a, 1, u, n)));
            vf hn = load(hg + 3 * w + u, n);
            if (a->b_hn) hn = vf_add(hn, load(a->b_hn + u, n));
            vf nn = vf_tanh(vf_fmadd(r, hn, vf_add(load(hg + 2 * w + u, n), bias_of(a, 2, u, n))));
            vf hp = load(a->h_prev + i * a->ldh + u, n);
            vf h = vf_fmadd(z, vf_sub(hp, nn), nn);
            store(g + u, r, n);
            store(g + w + u, z, n);
            store(g + 2 * w + u, nn, n);
            store(a->hn + i * a->ld + u, hn, n);
            store(a->h + i * a->ldh + u, h, n);
            store(a->y + i * a->ldy + u, h, n);
        }
    }
}

/* dh_t = dh + dy; dn = dh_t (1-z) (1-n^2) (d of n's pre-activation);
 * dz = dh_t (h_prev - n) z (1-z); dr = dn hn r (1-r); dh_prev (direct) = dh_t z.
 * Input side (r, z, n): (dr, dz, dn); hidden side: (dr, dz, dn r). */
static void FNN_K(gru_backward)(const fnn_rnn_cell_backward_args *a) {
    const int64_t w = a->w;
    for (int64_t i = 0; i < a->m; i++) {
        float *g = a->dgates + i * a->ldg;
        float *gh = a->dgh + i * a->ldg;
        FOR_LANES(u, n, w) {
            vf r = load(g + u, n), z = load(g + w + u, n), nn = load(g + 2 * w + u, n);
            vf hp = load(a->h_prev + i * a->ldh + u, n), hn = load(a->hn + i * a->ld + u, n);
            vf dh = rows_dh(a, i, u, n);
            vf dn = vf_mul(vf_mul(dh, vf_sub(one(), z)), vf_fnmadd(nn, nn, one()));
            vf dz = vf_mul(vf_mul(dh, vf_sub(hp, nn)), vf_mul(z, vf_sub(one(), z)));
            vf dr = vf_mul(vf_mul(dn, hn), vf_mul(r, vf_sub(one(), r)));
            store(g + u, dr, n);
            store(g + w + u, dz, n);
            store(g + 2 * w + u, dn, n);
            store(gh + u, dr, n);
            store(gh + w + u, dz, n);
            store(gh + 2 * w + u, vf_mul(dn, r), n);
            store(a->dh_prev + i * a->ld + u, vf_mul(dh, z), n);
        }
    }
}

/* the few-rows product over columns in groups of RV vectors: up to 8 (16) independent
 * accumulators per k instead of a micro-tile's 2 (4) whose FMA chains it would wait on,
 * and B's rows read as runs of RV vectors. rows and nv (vectors of the group) are
 * constants at each call, so the loops unroll and acc stays in registers. */
#define RV 8
FNN_INLINE void few_rows_group(int64_t K, const float *A, int64_t lda, const float *B,
                               int64_t ldb, float *C, int64_t ldc, int64_t n, int accumulate,
                               int rows, int nv) {
    vf acc[FNN_RNN_FEW_ROWS][RV];
    const vm last = vm_first(vf_lanes(n - (nv - 1) * FNN_VW));
#pragma GCC unroll 2
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[i][v] = vf_zero();
    for (int64_t k = 0; k < K; k++) {
        const float *bk = B + k * ldb;
        vf b[RV];
#pragma GCC unroll 8
        for (int v = 0; v < nv - 1; v++) b[v] = vf_load(bk + v * FNN_VW);
        b[nv - 1] = vf_load_masked(bk + (nv - 1) * FNN_VW, last);
#pragma GCC unroll 2
        for (int i = 0; i < rows; i++) {
            const vf a = vf_set1(A[i * lda + k]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) acc[i][v] = vf_fmadd(a, b[v], acc[i][v]);
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            float *c = C + i * ldc + v * FNN_VW;
            const vm cols = v == nv - 1 ? last : vm_first(FNN_VW);
            vf r = acc[i][v];
            if (accumulate) r = vf_add(vf_load_masked(c, cols), r);
            vf_store_masked(c, r, cols);
        }
}

static void FNN_K(few_rows_product)(int64_t K, const float *A, int64_t lda, const float *B,
                                    int64_t ldb, float *C, int64_t ldc, int64_t m, int64_t n,
                                    int accumulate) {
#define GROUP(rows, nv) few_rows_group(K, A, lda, B + c, ldb, C + c, ldc, w, accumulate, rows, nv)
#define GROUPS(rows)                                                           \
    switch ((w + FNN_VW - 1) / FNN_VW) {                                       \
    case 1: GROUP(rows, 1); break;                                             \
    case 2: GROUP(rows, 2); break;                                             \
    case 3: GROUP(rows, 3); break;                                             \
    case 4: GROUP(rows, 4); break;                                             \
    case 5: GROUP(rows, 5); break;                                             \
    case 6: GROUP(rows, 6); break;                                             \
    case 7: GROUP(rows, 7); break;                                             \
    default: GROUP(rows, 8); break;                                            \
    }
    for (int64_t c = 0; c < n; c += RV * FNN_VW) {
        const int64_t w = n - c < RV * FNN_VW ? n - c : RV * FNN_VW;
        if (m == 1) GROUPS(1)
        else GROUPS(2)
    }
#undef GROUPS
#undef GROUP
}

const fnn_rnn_kernels FNN_K(fnn_rnn_kernels) = {
    .forward = {[FNN_RNN_TANH] = FNN_K(rnn_tanh_forward), [FNN_RNN_RELU] = FNN_K(rnn_relu_forward),
                [FNN_RNN_LSTM] = FNN_K(lstm_forward), [FNN_RNN_GRU] = FNN_K(gru_forward)},
    .backward = {[FNN_RNN_TANH] = FNN_K(rnn_tanh_backward),
                 [FNN_RNN_RELU] = FNN_K(rnn_relu_backward),
                 [FNN_RNN_LSTM] = FNN_K(lstm_backward), [FNN_RNN_GRU] = FNN_K(gru_backward)},
    .few_rows_product = FNN_K(few_rows_product),
};
