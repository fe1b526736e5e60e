/*
 * conv/kernel.c - the implicit-GEMM tile of the direct convolution, one ISA.
 *
 * A tile is m <= MR rows by n <= NR columns of
 *   T (m, n) = sum over j < J of X[ro[i] + co[j]] * B[j * NR + col]
 * X an image (a padded copy, so every offset is inside it), ro (MR,) an offset
 * per row, co (J,) an offset per step, B one packed panel (J, NR), zero in the
 * columns past the valid ones. The convolution's im2col matrix is never built:
 * the offsets gather it while the tile runs. conv_api.c uses two roles:
 *   forward / input gradient: rows are output pixels, steps the (c, kh, kw)
 *     taps, columns output channels (B = the weights transposed); the tile is
 *     stored transposed into the NCHW output, bias and activation fused;
 *   weight gradient: rows are taps, steps the output pixels of an image,
 *     columns output channels (B = dy of that image transposed); the tile is
 *     added into a (taps, channels) partial sum; conv_pack_transposed makes
 *     those panels.
 * Per step, NV <= NRV vectors of B are loaded and each row's X value is
 * broadcast: MR * NV FMAs. Every element sums its J products in step order,
 * whatever tile or thread computes it.
 */
#include "../epilogue.h"

#if FNN_TARGET == FNN_TARGET_AVX512
#define MR 14
#define NRV 2 /* NR = 32: 28 accumulators + 2 B vectors + 1 broadcast of 32 zmm */
#elif FNN_TARGET == FNN_TARGET_AVX2
#define MR 6
#define NRV 2 /* NR = 16: 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm */
#else
#define MR 4
#define NRV 4 /* NR = 4 scalars */
#endif
#define NR (NRV * FNN_VW)

/* acc (MR, nv vectors) = the tile's sums; nv a constant where inlined */
FNN_INLINE void tile_sum(vf acc[MR][NRV], int nv, int64_t J, const float *X, const int64_t *ro,
                         const int64_t *co, const float *B) {
    const float *xr[MR];
    for (int i = 0; i < MR; i++) {
        xr[i] = X + ro[i];
        for (int v = 0; v < NRV; v++) acc[i][v] = vf_zero();
    }
    for (int64_t j = 0; j < J; j++) {
        const int64_t c = co[j];
        vf b[NRV];
        for (int v = 0; v < nv; v++) b[v] = vf_load(B + j * NR + v * FNN_VW);
        for (int i = 0; i < MR; i++) {
            const vf a = vf_set1(xr[i][c]);
            for (int v = 0; v < nv; v++) acc[i][v] = vf_fmadd(a, b[v], acc[i][v]);
        }
    }
}

/* vectors of NR that n columns need */
FNN_INLINE int vectors_for(int64_t n) { return n <= FNN_VW ? 1 : NRV; }

/* out[col * ld_out + i] = act(T[i][col] + bias[col]) for i < m, col < n; bias
 * (n,) or NULL. Rows (pixels) are adjacent in out: each vector of channels is
 * transposed through a small buffer. */
static void FNN_K(conv_tile_store)(int64_t J, const float *X, const int64_t *ro,
                                   const int64_t *co, const float *B, float *out, int64_t ld_out,
                                   int64_t m, int64_t n, const float *bias, fnn_activation act) {
    vf acc[MR][NRV];
    const int nv = vectors_for(n);
    if (nv == 1) tile_sum(acc, 1, J, X, ro, co, B);
    else tile_sum(acc, NRV, J, X, ro, co, B);
    float rows[MR][FNN_VW], cols[FNN_VW][MR];
    for (int v = 0; v < nv; v++) {
        const int64_t c0 = v * FNN_VW, w = vf_lanes(n - c0);
        if (w <= 0) break;
        const vf b = bias ? vf_load_w(bias + c0, w, 0.0f) : vf_zero();
        for (int i = 0; i < MR; i++) {
            vf t = vf_add(acc[i][v], b);
            t = fnn_epilogue_activate(t, act);
            vf_store(rows[i], t);
        }
        if (m == MR && w == FNN_VW && MR <= FNN_VW) {
            vf_transpose_block(out + c0 * ld_out, ld_out, rows[0], FNN_VW, MR);
            continue;
        }
        for (int64_t c = 0; c < w; c++)
            for (int i = 0; i < MR; i++) cols[c][i] = rows[i][c];
        for (int64_t c = 0; c < w; c++) memcpy(out + (c0 + c) * ld_out, cols[c], (size_t)m * 4);
    }
}

/* out[i * ld_out + col] += T[i][col] for i < m and the vectors covering n
 * columns (out has room for them; B's padding adds zeros there) */
static void FNN_K(conv_tile_accumulate)(int64_t J, const float *X, const int64_t *ro,
                                        const int64_t *co, const float *B, float *out,
                                        int64_t ld_out, int64_t m, int64_t n) {
    vf acc[MR][NRV];
    const int nv = vectors_for(n);
    if (nv == 1) tile_sum(acc, 1, J, X, ro, co, B);
    else tile_sum(acc, NRV, J, X, ro, co, B);
    for (int i = 0; i < m; i++)
        for (int v = 0; v < nv; v++) {
            float *o = out + i * ld_out + v * FNN_VW;
            vf_store(o, vf_add(vf_load(o), acc[i][v]));
        }
}

/* ---- the first-layer path: output rows as vectors ------------------------
 * For a few input channels at stride 1 the taps are few (Kd <= 4 KH KW), so
 * the tiles above spend much of their time in their epilogue, and a handful
 * of output channels fills their vectors badly. Here a vector is up to VW
 * adjacent output pixels of one row (a "row vector": image offset px, output
 * offset yo, w lanes), and the tile is RO output channels by RV row vectors.
 *   forward: T[o][v] = sum over k < Kd of Wk[k RO + o] * X[px[v] + taps[k] + l]
 *   weight gradient: G[o][k] (a vector of lanes) = sum over row vectors of
 *     dy[o][yo[v] + l] * X[px[v] + taps[k] + l], the lanes summed at the end.
 * Lanes past w are loaded as zeros and never stored. */
#if FNN_TARGET == FNN_TARGET_AVX512
#define RO 8
#define RV 3 /* 24 accumulators + 3 row vectors + 1 broadcast */
#define GO 4
#define GK 6 /* 24 accumulators + 4 dy + 1 X vector */
#elif FNN_TARGET == FNN_TARGET_AVX2
#define RO 4
#define RV 3 /* 12 accumulators + 3 + 1 */
#define GO 2
#define GK 5 /* 10 accumulators + 2 + 1 */
#else
#define RO 4
#define RV 2
#define GO 2
#define GK 2
#endif
_Static_assert(MR <= 16 && RV <= 16, "direct_api.c's tail arrays hold 16 entries");

/* out[o ld_out + yo[v] + l] = act(T[o][v] + bias[o]) for o < mo, l < w[v]; Wk one
 * packed panel (Kd, RO) of output channels; px, yo, w (RV,), w[v] = 0 for no vector */
static void FNN_K(conv_rows_store)(int64_t Kd, const float *X, const int64_t *taps,
                                   const float *Wk, const int64_t *px, const int64_t *yo,
                                   const int64_t *w, float *out, int64_t ld_out, int64_t mo,
                                   const float *bias, fnn_activation act) {
    vm mask[RV];
    const float *xv[RV];
    vf acc[RO][RV];
#pragma GCC unroll 16
    for (int v = 0; v < RV; v++) {
        mask[v] = vm_first(w[v]);
        xv[v] = X + px[v];
#pragma GCC unroll 16
        for (int o = 0; o < RO; o++) acc[o][v] = vf_zero();
    }
    for (int64_t k = 0; k < Kd; k++) {
        const int64_t t = taps[k];
        vf x[RV];
#pragma GCC unroll 16
        for (int v = 0; v < RV; v++) x[v] = vf_load_masked(xv[v] + t, mask[v]);
#pragma GCC unroll 16
        for (int o = 0; o < RO; o++) {
            const vf a = vf_set1(Wk[k * RO + o]);
#pragma GCC unroll 16
            for (int v = 0; v < RV; v++) acc[o][v] = vf_fmadd(a, x[v], acc[o][v]);
        }
    }
    /* constant trip counts, so acc stays in registers */
#pragma GCC unroll 16
    for (int o = 0; o < RO; o++) {
        if (o >= mo) break;
        const vf b = vf_set1(bias ? bias[o] : 0.0f);
#pragma GCC unroll 16
        for (int v = 0; v < RV; v++) {
            vf t = vf_add(acc[o][v], b);
            t = fnn_epilogue_activate(t, act);
            vf_store_masked(out + o * ld_out + yo[v], t, mask[v]);
        }
    }
}

/* part[(o ld_part + k) VW + l] += G[o][k] lane l for o < mo, k < nk over the nvec
 * row vectors px, yo, w (nvec,) of one image; dy (mo, ...) rows ld_dy apart,
 * taps (nk,) */
static void FNN_K(conv_rows_accumulate)(int64_t nvec, const float *X, const int64_t *taps,
                                        const float *dy, int64_t ld_dy, const int64_t *px,
                                        const int64_t *yo, const int64_t *w, float *part,
                                        int64_t ld_part, int64_t mo, int64_t nk) {
    const float *dyo[GO];
    int64_t tk[GK];
    vf acc[GO][GK];
#pragma GCC unroll 16
    for (int o = 0; o < GO; o++) dyo[o] = dy + (o < mo ? o : 0) * ld_dy;
#pragma GCC unroll 16
    for (int k = 0; k < GK; k++) tk[k] = taps[k < nk ? k : 0];
#pragma GCC unroll 16
    for (int o = 0; o < GO; o++)
#pragma GCC unroll 16
        for (int k = 0; k < GK; k++) acc[o][k] = vf_zero();
    for (int64_t v = 0; v < nvec; v++) {
        const vm m = vm_first(w[v]);
        const float *xr = X + px[v];
        vf g[GO];
#pragma GCC unroll 16
        for (int o = 0; o < GO; o++) g[o] = vf_load_masked(dyo[o] + yo[v], m);
#pragma GCC unroll 16
        for (int k = 0; k < GK; k++) {
            const vf x = vf_load_masked(xr + tk[k], m);
#pragma GCC unroll 16
            for (int o = 0; o < GO; o++) acc[o][k] = vf_fmadd(g[o], x, acc[o][k]);
        }
    }
#pragma GCC unroll 16
    for (int o = 0; o < GO; o++)
#pragma GCC unroll 16
        for (int k = 0; k < GK; k++) {
            if (o >= mo || k >= nk) continue;
            float *p = part + (o * ld_part + k) * FNN_VW;
            vf_store(p, vf_add(vf_load(p), acc[o][k]));
        }
}

/* panels (ceil(O / NR), P, NR): panels[q][p][l] = src[(q NR + l) P + p] for
 * q NR + l < O (src (O, P)); the lanes past O are not written */
static void FNN_K(conv_pack_transposed)(float *panels, const float *src, int64_t O, int64_t P) {
    for (int64_t o0 = 0; o0 < O; o0 += FNN_VW) {
        const int64_t rows = vf_lanes(O - o0);
        float *dst = panels + (o0 / NR) * P * NR + o0 % NR;
        int64_t p0 = 0;
        for (; p0 + FNN_VW <= P; p0 += FNN_VW)
            vf_transpose_block(dst + p0 * NR, NR, src + o0 * P + p0, P, rows);
        for (; p0 < P; p0++)
            for (int64_t r = 0; r < rows; r++) dst[p0 * NR + r] = src[(o0 + r) * P + p0];
    }
}

const fnn_conv_kernels FNN_K(fnn_conv_kernels) = {
    .tile_store = FNN_K(conv_tile_store),
    .tile_accumulate = FNN_K(conv_tile_accumulate),
    .pack_transposed = FNN_K(conv_pack_transposed),
    .rows_store = FNN_K(conv_rows_store),
    .rows_accumulate = FNN_K(conv_rows_accumulate),
    .mr = MR,
    .nr = NR,
    .vw = FNN_VW,
    .ro = RO,
    .rv = RV,
    .go = GO,
    .gk = GK,
};
