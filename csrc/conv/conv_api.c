/*
 * conv/conv_api.c - 2-D convolution (fastnn.h, "convolution"): the entry points,
 * and the im2col path on our SGEMM.
 *
 * Dimension letters: N batch, C input channels, H, W input height / width,
 * O output channels, OH, OW output height / width, KH, KW kernel, G groups,
 * Cg = C / G, Og = O / G, Kd = Cg * KH * KW (the GEMM depth), P = OH * OW,
 * PB a block of output pixels.
 * Layouts: x (N, C, H, W), weight (O, Cg, KH, KW), y (N, O, OH, OW), NCHW.
 *
 * The entry points take the direct path (direct_api.c: implicit-GEMM tiles on
 * padded images, no im2col) wherever it applies: groups == 1, and for the input
 * gradient stride 1 with enough channels. Everything else runs here:
 * im2col of a block of at most PB output pixels of one image and
 * one group into scratch (Kd, PB), never a whole-batch matrix, then one GEMM
 *   forward  y_g (Og, pb)  = W_g (Og, Kd) @ col (Kd, pb) + bias, act fused
 *   dW       dW_g (Og, Kd) += dY_g (Og, pb) @ col^T (pb, Kd)
 *   dx       col (Kd, pb)  = W_g^T (Kd, Og) @ dY_g (Og, pb), then col2im (+=)
 * Threads (fnn_parallel_for) split work items whose boundaries depend only on
 * the problem: forward items are (n, g, block), dx items (n, g) (blocks of one
 * image overlap in dx), dW items (n, g, block) summed into one private partial
 * per chunk, the partials then added in chunk order: the same bits for any
 * thread count. GEMMs called from pool threads run serially on that thread.
 * Compiled once (no vector code here: the GEMM is the vector part).
 */
#include <stdatomic.h>
#include <string.h>

#include "../fastnn.h"
#include "../kernels.h"
#include "conv.h"

/* floats of col scratch per block: PB = max(16, FNN_CONV_COL_FLOATS / Kd) */
#define FNN_CONV_COL_FLOATS 65536

typedef struct {
    const fnn_conv2d_shape *s;
    float *y, *dx, *dw, *db, *partial;
    const float *x, *w, *bias, *dy;
    fnn_activation act;
    int64_t Cg, Og, Kd, P, PB, nblocks, grain;
    atomic_int failed;
} conv_job;


/* Output columns [ow0, ow0 + len) of one output row read input columns
 * iw = ow*sw + off (off = kw*dw - pl); *lo, *hi bound the ones inside [0, W). */
static void valid_span(int64_t ow0, int64_t len, int64_t sw, int64_t off, int64_t W,
                       int64_t *lo, int64_t *hi) {
    /* first ow with ow*sw + off >= 0, first ow with ow*sw + off >= W */
    int64_t first = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t past = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
    int64_t l = first > ow0 ? first : ow0, h = past < ow0 + len ? past : ow0 + len;
    if (h < l) h = l;
    *lo = l - ow0;
    *hi = h - ow0;
}

/* Between col (Kd, pb), pixels [p0, p0 + pb), and channels c0 .. c0 + Cg - 1 of
 * one image img (C, H, W), one output-row segment at a time:
 *   back == 0 (im2col): col = the taps, 0 outside the image
 *   back == 1 (col2im, its adjoint): img += col at the taps inside the image */
static void im2col_dir(float *col, float *img, const fnn_conv2d_shape *s, int64_t c0,
                       int64_t Cg, int64_t p0, int64_t pb, int back) {
    int64_t row = 0;
    for (int64_t c = 0; c < Cg; c++) {
        float *ic = img + (c0 + c) * s->H * s->W;
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++, row++) {
                float *crow = col + row * pb;
                int64_t off = kw * s->dw - s->pl, sw = s->sw;
                int64_t oh = p0 / s->OW, ow0 = p0 % s->OW;
                for (int64_t j = 0; j < pb; oh++, ow0 = 0) {
                    int64_t len = s->OW - ow0 < pb - j ? s->OW - ow0 : pb - j;
                    int64_t ih = oh * s->sh - s->pt + kh * s->dh, lo = 0, hi = 0;
                    if (ih >= 0 && ih < s->H) valid_span(ow0, len, sw, off, s->W, &lo, &hi);
                    float *d = crow + j;
                    /* only when hi > lo is the row inside the image */
                    float *src = hi > lo ? ic + ih * s->W + (ow0 + lo) * sw + off : NULL;
                    if (back) {
                        for (int64_t q = lo; q < hi; q++) src[(q - lo) * sw] += d[q];
                    } else {
                        for (int64_t q = 0; q < lo; q++) d[q] = 0.0f;
                        if (sw == 1)
                            for (int64_t q = lo; q < hi; q++) d[q] = src[q - lo];
                        else
                            for (int64_t q = lo; q < hi; q++) d[q] = src[(q - lo) * sw];
                        for (int64_t q = hi; q < len; q++) d[q] = 0.0f;
                    }
                    j += len;
                }
            }
    }
}

static fnn_status check_shape(const fnn_conv2d_shape *s) {
    if (s->N < 0 || s->C < 1 || s->H < 1 || s->W < 1 || s->O < 1 || s->KH < 1 || s->KW < 1 ||
        s->OH < 1 || s->OW < 1 || s->sh < 1 || s->sw < 1 || s->dh < 1 || s->dw < 1 ||
        s->pt < 0 || s->pl < 0 || s->groups < 1 || s->C % s->groups || s->O % s->groups)
        return FNN_ERR_ARG;
    return FNN_OK;
}

static void setup_job(conv_job *j, const fnn_conv2d_shape *s) {
    j->s = s;
    j->Cg = s->C / s->groups;
    j->Og = s->O / s->groups;
    j->Kd = j->Cg * s->KH * s->KW;
    j->P = s->OH * s->OW;
    int64_t pb = FNN_CONV_COL_FLOATS / j->Kd;
    if (pb < 16) pb = 16;
    j->PB = pb < j->P ? pb : j->P;
    j->nblocks = fnn_conv_ceil_div(j->P, j->PB);
    atomic_init(&j->failed, 0);
}

/* this chunk's col (Kd, PB), or NULL with j->failed set */
static float *col_scratch(conv_job *j) {
    float *col = fnn_cache_malloc(NULL, (size_t)(j->Kd * j->PB) * sizeof(float));
    if (!col) atomic_store(&j->failed, 1);
    return col;
}

/* ---- forward: items (n, g, block) ---------------------------------------- */

static void forward_range(void *ctx, int64_t begin, int64_t end) {
    conv_job *j = ctx;
    const fnn_conv2d_shape *s = j->s;
    float *col = col_scratch(j);
    if (!col) return;
    for (int64_t it = begin; it < end; it++) {
        int64_t b = it % j->nblocks, g = (it / j->nblocks) % s->groups;
        int64_t n = it / (j->nblocks * s->groups);
        int64_t p0 = b * j->PB, pb = j->P - p0 < j->PB ? j->P - p0 : j->PB;
        im2col_dir(col, (float *)(j->x + n * s->C * s->H * s->W), s, g * j->Cg, j->Cg, p0,
                       pb, 0);
        float *yg = j->y + (n * s->O + g * j->Og) * j->P + p0;
        fnn_sgemm_ex(0, 0, j->Og, pb, j->Kd, 1.0f, j->w + g * j->Og * j->Kd, j->Kd, col, pb,
                     0.0f, yg, j->P, j->bias ? j->bias + g * j->Og : NULL,
                     j->bias ? FNN_BIAS_ROW : FNN_BIAS_NONE, j->act);
    }
    fnn_cache_free(NULL, col, 0);
}

fnn_status fnn_conv2d_forward(float *y, const float *x, const float *weight, const float *bias,
                              const fnn_conv2d_shape *s, fnn_activation act) {
    fnn_status st = check_shape(s);
    if (st != FNN_OK) return st;
    if ((int)act < 0 || act >= FNN_ACT_COUNT) return FNN_ERR_ARG;
    if (s->N == 0) return FNN_OK;
    if (fnn_conv2d_direct_applies(s, 0))
        return fnn_conv2d_direct_forward(y, x, weight, bias, s, act);
    conv_job j = {.y = y, .x = x, .w = weight, .bias = bias, .act = act};
    setup_job(&j, s);
    int64_t items = s->N * s->groups * j.nblocks;
    fnn_parallel_for(items, fnn_conv_grain(2 * j.Og * j.Kd * j.PB), 1, &j, forward_range);
    return atomic_load(&j.failed) ? FNN_ERR_NOMEM : FNN_OK;
}

/* ---- backward data: items (n, g) ----------------------------------------- */

static void dx_range(void *ctx, int64_t begin, int64_t end) {
    conv_job *j = ctx;
    const fnn_conv2d_shape *s = j->s;
    float *col = col_scratch(j);
    if (!col) return;
    for (int64_t it = begin; it < end; it++) {
        int64_t g = it % s->groups, n = it / s->groups;
        float *dxn = j->dx + n * s->C * s->H * s->W;
        memset(dxn + g * j->Cg * s->H * s->W, 0, (size_t)(j->Cg * s->H * s->W) * sizeof(float));
        for (int64_t b = 0; b < j->nblocks; b++) {
            int64_t p0 = b * j->PB, pb = j->P - p0 < j->PB ? j->P - p0 : j->PB;
            const float *dyg = j->dy + (n * s->O + g * j->Og) * j->P + p0;
            fnn_sgemm(1, 0, j->Kd, pb, j->Og, 1.0f, j->w + g * j->Og * j->Kd, j->Kd, dyg, j->P,
                      0.0f, col, pb);
            im2col_dir(col, dxn, s, g * j->Cg, j->Cg, p0, pb, 1);
        }
    }
    fnn_cache_free(NULL, col, 0);
}

/* ---- backward weight and bias: items (n, g, block), a partial per chunk -- */

/* sum of r[0 .. n), in FNN_CONV_SUM_LANES interleaved partial sums added in
 * order at the end: independent chains the compiler vectorizes, the same
 * order on every call */
#define FNN_CONV_SUM_LANES 16
float fnn_conv_row_sum(const float *r, int64_t n) {
    float acc[FNN_CONV_SUM_LANES] = {0.0f};
    int64_t q = 0;
    for (; q + FNN_CONV_SUM_LANES <= n; q += FNN_CONV_SUM_LANES)
        for (int l = 0; l < FNN_CONV_SUM_LANES; l++) acc[l] += r[q + l];
    for (int l = 0; q < n; q++, l++) acc[l] += r[q];
    float total = 0.0f;
    for (int l = 0; l < FNN_CONV_SUM_LANES; l++) total += acc[l];
    return total;
}

static void dw_range(void *ctx, int64_t begin, int64_t end) {
    conv_job *j = ctx;
    const fnn_conv2d_shape *s = j->s;
    int64_t wsize = s->O * j->Kd;
    float *part = j->partial + (begin / j->grain) * (wsize + s->O);
    float *pbias = part + wsize;
    memset(part, 0, (size_t)(wsize + s->O) * sizeof(float));
    float *col = NULL;
    if (j->dw) {
        col = col_scratch(j);
        if (!col) return;
    }
    for (int64_t it = begin; it < end; it++) {
        int64_t b = it % j->nblocks, g = (it / j->nblocks) % s->groups;
        int64_t n = it / (j->nblocks * s->groups);
        int64_t p0 = b * j->PB, pb = j->P - p0 < j->PB ? j->P - p0 : j->PB;
        const float *dyg = j->dy + (n * s->O + g * j->Og) * j->P + p0;
        if (j->dw) {
            im2col_dir(col, (float *)(j->x + n * s->C * s->H * s->W), s, g * j->Cg, j->Cg, p0,
                       pb, 0);
            fnn_sgemm(0, 1, j->Og, j->Kd, pb, 1.0f, dyg, j->P, col, pb, 1.0f,
                      part + g * j->Og * j->Kd, j->Kd);
        }
        if (j->db)
            for (int64_t o = 0; o < j->Og; o++) pbias[g * j->Og + o] += fnn_conv_row_sum(dyg + o * j->P, pb);
    }
    if (col) fnn_cache_free(NULL, col, 0);
}

fnn_status fnn_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dy,
                               const float *x, const float *weight, const fnn_conv2d_shape *s) {
    fnn_status st = check_shape(s);
    if (st != FNN_OK) return st;
    conv_job j = {.dx = dx, .dw = dweight, .db = dbias, .dy = dy, .x = x, .w = weight};
    setup_job(&j, s);
    int64_t wsize = s->O * j.Kd;
    if (s->N == 0) {
        if (dweight) memset(dweight, 0, (size_t)wsize * sizeof(float));
        if (dbias) memset(dbias, 0, (size_t)s->O * sizeof(float));
        return FNN_OK;
    }
    if (dx && fnn_conv2d_direct_applies(s, 1)) {
        st = fnn_conv2d_direct_input_grad(dx, dy, weight, s);
        if (st != FNN_OK) return st;
    } else if (dx) {
        fnn_parallel_for(s->N * s->groups, fnn_conv_grain(2 * j.Og * j.Kd * j.P), 1, &j,
                         dx_range);
    }
    if ((dweight || dbias) && fnn_conv2d_direct_applies(s, 0)) {
        st = fnn_conv2d_direct_weight_grad(dweight, dbias, dy, x, s);
        if (st != FNN_OK) return st;
    } else if (dweight || dbias) {
        int64_t items = s->N * s->groups * j.nblocks;
        int64_t g = fnn_conv_partial_grain(items, 2 * j.Og * j.Kd * j.PB);
        j.grain = g;
        int64_t nchunks = fnn_conv_ceil_div(items, g);
        j.partial = fnn_cache_malloc(NULL, (size_t)(nchunks * (wsize + s->O)) * sizeof(float));
        if (!j.partial) return FNN_ERR_NOMEM;
        fnn_parallel_for(items, g, 1, &j, dw_range);
        if (!atomic_load(&j.failed)) {
            for (int64_t c = 0; c < nchunks; c++) {
                const float *p = j.partial + c * (wsize + s->O);
                if (dweight)
                    for (int64_t i = 0; i < wsize; i++)
                        dweight[i] = c ? dweight[i] + p[i] : p[i];
                if (dbias)
                    for (int64_t i = 0; i < s->O; i++)
                        dbias[i] = c ? dbias[i] + p[wsize + i] : p[wsize + i];
            }
        }
        fnn_cache_free(NULL, j.partial, 0);
    }
    return atomic_load(&j.failed) ? FNN_ERR_NOMEM : FNN_OK;
}
