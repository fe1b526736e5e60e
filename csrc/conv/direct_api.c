/*
 * conv/direct_api.c - the direct convolution: conv/kernel.c's implicit-GEMM
 * tiles over a zero-padded copy of each image (no copy when the convolution
 * reads no padding), never an im2col matrix. Compiled once.
 *
 * Dimension letters as in conv_api.c; Hp, Wp the padded image; nr the
 * kernel's tile width, npanel = ceil(O / nr) panels of output channels.
 * Offsets into a padded image: taps (Kd,) of (c, kh, kw) = c Hp Wp + kh dh Wp
 * + kw dw, pixels (P,) of (oh, ow) = oh sh Wp + ow sw, so the input value tap
 * k reads for output pixel p is image[pixels[p] + taps[k]].
 *   forward      per image, tiles of mr output pixels (rows) by nr output
 *                channels (columns) summing the Kd taps against the weights
 *                transposed, panels (npanel, Kd, nr); stored into NCHW y
 *                with bias and activation. Items (image, block of pixels).
 *   input grad   (stride 1) the forward of dy, padded by (K - 1) d - p, with
 *                the kernel flipped and its two channel axes swapped.
 *   weight grad  dW^T (Kd, O): tiles of mr taps (rows) by nr output channels
 *                summing the P pixels of an image against dy^T panels
 *                (npanel, P, nr). Items are images; each chunk of images sums
 *                into its own partial, the partials added in chunk order, so
 *                the bits do not depend on the thread count.
 * The first-layer path (plan's `rows`: stride 1, rows of at least half a
 * vector, and <= 4 input channels or under half a tile of output channels)
 * runs row vectors instead (kernel.c): runs of up to vw output pixels of one
 * row (tables vpx, vyo, vlanes: image offset, output offset, lanes), tiles of ro
 * output channels by rv row vectors in the forward (panels (., Kd, ro)), and
 * in the weight gradient go channels by gk taps of lane-wise sums over an
 * image's row vectors, the lanes added in order at the end.
 */
#include <stdatomic.h>
#include <string.h>

#include "../kernels.h"
#include "conv.h"

/* pixels per forward item: about this many flops */
#define FNN_DIRECT_BLOCK_FLOPS (1 << 20)
/* the largest tile height, row-vector count of any ISA (conv/kernel.c) */
#define FNN_DIRECT_MAX_MR 16
/* the first-layer path takes at most this many input channels */
#define FNN_ROWS_MAX_C 4

typedef struct {
    const fnn_conv_kernels *k;
    fnn_conv2d_shape s; /* the problem in the forward role */
    int64_t Hp, Wp, Kd, P, npanel;
    int pad;            /* images need a padded copy */
    int want_dw, want_db; /* the weight gradient's outputs */
    int rows;           /* the first-layer path: row vectors (below) */
    int64_t nvec;       /* row vectors of an image */
    int64_t *taps, *pixels, *vpx, *vyo, *vlanes;
    const float *x, *panels, *bias, *dy;
    float *y, *partial;
    fnn_activation act;
    int64_t block, nblocks, grain;
    atomic_int failed;
} direct_job;

/* fills the geometry and the offset tables of problem s; 0 when out of memory */
static int plan(direct_job *j, const fnn_conv2d_shape *s) {
    j->k = fnn_active_conv();
    j->s = *s;
    int64_t hp = (s->OH - 1) * s->sh + (s->KH - 1) * s->dh + 1;
    int64_t wp = (s->OW - 1) * s->sw + (s->KW - 1) * s->dw + 1;
    j->Hp = hp > s->H + s->pt ? hp : s->H + s->pt;
    j->Wp = wp > s->W + s->pl ? wp : s->W + s->pl;
    j->pad = j->Hp != s->H || j->Wp != s->W;
    j->Kd = s->C * s->KH * s->KW;
    j->P = s->OH * s->OW;
    j->npanel = fnn_conv_ceil_div(s->O, j->k->nr);
    /* stride 1, output rows filling at least half a vector, and few input
     * channels (short sums, which the tiles' epilogue would dominate) or few
     * output channels (which would fill under half the tiles' columns) */
    int64_t vw = j->k->vw, per_row = fnn_conv_ceil_div(s->OW, vw);
    j->rows = s->sw == 1 && 2 * s->OW >= vw && (s->C <= FNN_ROWS_MAX_C || 2 * s->O < j->k->nr);
    j->nvec = j->rows ? s->OH * per_row : 0;
    atomic_init(&j->failed, 0);
    j->taps = fnn_cache_malloc(NULL, (size_t)(j->Kd + j->P + 3 * j->nvec) * sizeof(int64_t));
    if (!j->taps) return 0;
    j->pixels = j->taps + j->Kd;
    j->vpx = j->pixels + j->P;
    j->vyo = j->vpx + j->nvec;
    j->vlanes = j->vyo + j->nvec;
    for (int64_t v = 0; v < j->nvec; v++) {
        int64_t oh = v / per_row, ow = (v % per_row) * vw;
        j->vpx[v] = oh * s->sh * j->Wp + ow;
        j->vyo[v] = oh * s->OW + ow;
        j->vlanes[v] = s->OW - ow < vw ? s->OW - ow : vw;
    }
    int64_t t = 0;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++)
                j->taps[t++] = (c * j->Hp + kh * s->dh) * j->Wp + kw * s->dw;
    for (int64_t p = 0; !j->rows && p < j->P; p++) /* the tiles' rows (forward) or steps */
        j->pixels[p] = (p / s->OW) * s->sh * j->Wp + (p % s->OW) * s->sw;
    return 1;
}

/* xp (C, Hp, Wp) = image img (C, H, W) at rows pt.., columns pl..; the zeros
 * around it are written once, by image_scratch, and never overwritten */
static void pad_image(float *restrict xp, const float *restrict img, const direct_job *j) {
    const fnn_conv2d_shape *s = &j->s;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t ih = 0; ih < s->H; ih++) {
            float *restrict dst = xp + (c * j->Hp + ih + s->pt) * j->Wp + s->pl;
            const float *restrict src = img + (c * s->H + ih) * s->W;
            for (int64_t q = 0; q < s->W; q++) dst[q] = src[q];
        }
}

/* the image n as the tiles read it: img itself, or its padded copy in xp
 * (made when n is not the image xp already holds, *held) */
static const float *image(const direct_job *j, int64_t n, float *xp, int64_t *held) {
    const float *img = j->x + n * j->s.C * j->s.H * j->s.W;
    if (!j->pad) return img;
    if (*held != n) pad_image(xp, img, j);
    *held = n;
    return xp;
}

/* the mr row offsets of a tile of m rows starting at rows: rows itself when
 * whole, else a copy in tail with the last valid offset repeated */
static const int64_t *tile_rows(const int64_t *rows, int64_t m, int64_t mr, int64_t *tail) {
    if (m == mr) return rows;
    for (int64_t i = 0; i < mr; i++) tail[i] = rows[i < m ? i : m - 1];
    return tail;
}

/* padded-image scratch of one chunk, zero, or NULL (with failed set when out of memory) */
static float *image_scratch(direct_job *j) {
    if (!j->pad) return NULL;
    float *xp = fnn_cache_calloc(NULL, (size_t)(j->s.C * j->Hp * j->Wp), sizeof(float));
    if (!xp) atomic_store(&j->failed, 1);
    return xp;
}

/* ---- forward (and the input gradient, as a forward): items (n, block) ---- */

static void forward_range(void *ctx, int64_t begin, int64_t end) {
    direct_job *j = ctx;
    const fnn_conv2d_shape *s = &j->s;
    const int64_t mr = j->k->mr, nr = j->k->nr;
    float *xp = image_scratch(j);
    if (j->pad && !xp) return;
    int64_t held = -1, tail[FNN_DIRECT_MAX_MR];
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / j->nblocks, p0 = (it % j->nblocks) * j->block;
        int64_t p1 = p0 + j->block < j->P ? p0 + j->block : j->P;
        const float *img = image(j, n, xp, &held);
        float *yn = j->y + n * s->O * j->P;
        for (int64_t q = 0; q < j->npanel; q++) {
            int64_t o0 = q * nr, ncol = s->O - o0 < nr ? s->O - o0 : nr;
            const float *B = j->panels + q * j->Kd * nr;
            for (int64_t p = p0; p < p1; p += mr) {
                int64_t m = p1 - p < mr ? p1 - p : mr;
                j->k->tile_store(j->Kd, img, tile_rows(j->pixels + p, m, mr, tail), j->taps,
                                 B, yn + o0 * j->P + p, j->P, m, ncol,
                                 j->bias ? j->bias + o0 : NULL, j->act);
            }
        }
    }
    if (xp) fnn_cache_free(NULL, xp, 0);
}

/* the first-layer forward: items (n, block of tiles of rv row vectors), panels
 * (ceil(O / ro), Kd, ro) */
static void rows_forward_range(void *ctx, int64_t begin, int64_t end) {
    direct_job *j = ctx;
    const fnn_conv2d_shape *s = &j->s;
    const int64_t ro = j->k->ro, rv = j->k->rv;
    float *xp = image_scratch(j);
    if (j->pad && !xp) return;
    int64_t held = -1, tpx[FNN_DIRECT_MAX_MR], tyo[FNN_DIRECT_MAX_MR], tw[FNN_DIRECT_MAX_MR];
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / j->nblocks, v0 = (it % j->nblocks) * j->block * rv;
        int64_t v1 = v0 + j->block * rv < j->nvec ? v0 + j->block * rv : j->nvec;
        const float *img = image(j, n, xp, &held);
        float *yn = j->y + n * s->O * j->P;
        for (int64_t v = v0; v < v1; v += rv) {
            const int64_t *px = j->vpx + v, *yo = j->vyo + v, *w = j->vlanes + v;
            if (v1 - v < rv) { /* the last tile: no vectors past v1 */
                for (int64_t i = 0; i < rv; i++) {
                    int in = i < v1 - v;
                    tpx[i] = in ? px[i] : 0;
                    tyo[i] = in ? yo[i] : 0;
                    tw[i] = in ? w[i] : 0;
                }
                px = tpx, yo = tyo, w = tw;
            }
            for (int64_t o0 = 0; o0 < s->O; o0 += ro)
                j->k->rows_store(j->Kd, img, j->taps, j->panels + o0 * j->Kd, px, yo, w,
                                 yn + o0 * j->P, j->P, s->O - o0 < ro ? s->O - o0 : ro,
                                 j->bias ? j->bias + o0 : NULL, j->act);
        }
    }
    if (xp) fnn_cache_free(NULL, xp, 0);
}

/* the planned first-layer forward into j->y */
static void run_rows_forward(direct_job *j) {
    const fnn_conv2d_shape *s = &j->s;
    const int64_t rv = j->k->rv, ntiles = fnn_conv_ceil_div(j->nvec, rv);
    int64_t flops_per_tile = 2 * s->O * j->Kd * rv * j->k->vw;
    int64_t b = fnn_conv_ceil_div(FNN_DIRECT_BLOCK_FLOPS, flops_per_tile);
    j->block = b < ntiles ? b : ntiles;
    j->nblocks = fnn_conv_ceil_div(ntiles, j->block);
    fnn_parallel_for(s->N * j->nblocks, fnn_conv_grain(flops_per_tile * j->block), 1, j,
                     rows_forward_range);
}

/* runs the planned forward-role problem j into j->y */
static void run_forward(direct_job *j) {
    const fnn_conv2d_shape *s = &j->s;
    int64_t flops_per_pixel = 2 * s->O * j->Kd;
    int64_t b = fnn_conv_ceil_div(FNN_DIRECT_BLOCK_FLOPS, flops_per_pixel);
    b = fnn_conv_ceil_div(b, j->k->mr) * j->k->mr;
    j->block = b < j->P ? b : j->P;
    j->nblocks = fnn_conv_ceil_div(j->P, j->block);
    fnn_parallel_for(s->N * j->nblocks, fnn_conv_grain(flops_per_pixel * j->block), 1, j,
                     forward_range);
}

static fnn_status finish(direct_job *j, float *scratch) {
    if (scratch) fnn_cache_free(NULL, scratch, 0);
    fnn_cache_free(NULL, j->taps, 0);
    return atomic_load(&j->failed) ? FNN_ERR_NOMEM : FNN_OK;
}

int fnn_conv2d_direct_applies(const fnn_conv2d_shape *s, int input_grad) {
    if (s->groups != 1) return 0;
    if (!input_grad) return 1;
    /* the input gradient has C output channels: under half a tile of columns it
     * runs as row vectors (W wide), which need half a vector of W and half a
     * panel of C; below that im2col's GEMM (C KH KW rows) fills the vectors
     * better (measured: 1-3 channels) */
    const fnn_conv_kernels *k = fnn_active_conv();
    return s->sh == 1 && s->sw == 1 && s->pt <= (s->KH - 1) * s->dh &&
           s->pl <= (s->KW - 1) * s->dw &&
           (2 * s->C >= k->nr || (2 * s->C >= k->ro && 2 * s->W >= k->vw));
}

/* Packs the forward-role weights (O, Kd) into panels (ceil(O / w), Kd, w) of the
 * path's width w (nr for the tiles, ro for row vectors), zero past O, and runs the
 * planned forward. Element (o, k) is weight[o Kd + k], or for the input gradient
 * (flip_of the layer's shape: o a layer input channel, k = (layer output
 * channel, tap r)) the layer's weight at the flipped tap KH KW - 1 - r. */
static fnn_status pack_and_run(direct_job *j, const float *weight,
                               const fnn_conv2d_shape *flip_of) {
    const fnn_conv2d_shape *s = &j->s;
    const int64_t Kd = j->Kd, width = j->rows ? j->k->ro : j->k->nr;
    const int64_t npanel = fnn_conv_ceil_div(s->O, width);
    float *panels = fnn_cache_malloc(NULL, (size_t)(npanel * Kd * width) * sizeof(float));
    if (!panels) {
        atomic_store(&j->failed, 1);
        return finish(j, NULL);
    }
    const int64_t KK = s->KH * s->KW;
    for (int64_t q = 0; q < npanel; q++)
        for (int64_t k = 0; k < Kd; k++)
            for (int64_t l = 0; l < width; l++) {
                int64_t o = q * width + l;
                float v = 0.0f;
                if (o < s->O && !flip_of) v = weight[o * Kd + k];
                else if (o < s->O)
                    v = weight[((k / KK) * flip_of->C + o) * KK + (KK - 1 - k % KK)];
                panels[(q * Kd + k) * width + l] = v;
            }
    j->panels = panels;
    if (j->rows) run_rows_forward(j);
    else run_forward(j);
    return finish(j, panels);
}

fnn_status fnn_conv2d_direct_forward(float *y, const float *x, const float *weight,
                                     const float *bias, const fnn_conv2d_shape *s,
                                     fnn_activation act) {
    direct_job j = {.x = x, .y = y, .bias = bias, .act = act};
    if (!plan(&j, s)) return FNN_ERR_NOMEM;
    return pack_and_run(&j, weight, NULL);
}

fnn_status fnn_conv2d_direct_input_grad(float *dx, const float *dy, const float *weight,
                                        const fnn_conv2d_shape *s) {
    /* dx[c, ih, iw] = sum over o, kh, kw of dy[o, ih + pt - kh dh, iw + pl - kw dw]
     * W[o, c, kh, kw]: a stride-1 forward of dy with padding (K - 1) d - p and the
     * kernel W'[c, o, kh', kw'] = W[o, c, KH - 1 - kh', KW - 1 - kw'] */
    fnn_conv2d_shape t = {.N = s->N, .C = s->O, .H = s->OH, .W = s->OW, .O = s->C,
                          .KH = s->KH, .KW = s->KW, .OH = s->H, .OW = s->W, .sh = 1, .sw = 1,
                          .pt = (s->KH - 1) * s->dh - s->pt, .pl = (s->KW - 1) * s->dw - s->pl,
                          .dh = s->dh, .dw = s->dw, .groups = 1};
    direct_job j = {.x = dy, .y = dx, .act = FNN_ACT_NONE};
    if (!plan(&j, &t)) return FNN_ERR_NOMEM;
    return pack_and_run(&j, weight, s);
}

/* ---- weight gradient: items are images, a partial per chunk ---------------- */

/* floats of one partial's weight part: dW^T (Kd, npanel nr), or for row vectors
 * dW (O, Kd) with a vector of lanes per element; dbias (O,) follows */
static int64_t partial_weight_floats(const direct_job *j) {
    return j->rows ? j->s.O * j->Kd * j->k->vw : j->Kd * j->npanel * j->k->nr;
}

/* the tiles' share of image n (img padded, dyn its dy (O, P)) into part */
static void weight_grad_tiles(const direct_job *j, const float *img, const float *dyn,
                              float *dyt, float *part) {
    const fnn_conv2d_shape *s = &j->s;
    const int64_t nr = j->k->nr, mr = j->k->mr, ld = j->npanel * nr, P = j->P;
    int64_t tail[FNN_DIRECT_MAX_MR];
    j->k->pack_transposed(dyt, dyn, s->O, P); /* dyt[q][p][l] = dy[q nr + l][p] */
    for (int64_t q = 0; q < j->npanel; q++) {
        int64_t o0 = q * nr, ncol = s->O - o0 < nr ? s->O - o0 : nr;
        for (int64_t k0 = 0; k0 < j->Kd; k0 += mr) {
            int64_t m = j->Kd - k0 < mr ? j->Kd - k0 : mr;
            j->k->tile_accumulate(P, img, tile_rows(j->taps + k0, m, mr, tail), j->pixels,
                                  dyt + q * P * nr, part + k0 * ld + o0, ld, m, ncol);
        }
    }
}

/* the row vectors' share of image n into part (O, Kd, vw) */
static void weight_grad_rows(const direct_job *j, const float *img, const float *dyn,
                             float *part) {
    const fnn_conv2d_shape *s = &j->s;
    const int64_t go = j->k->go, gk = j->k->gk, vw = j->k->vw;
    for (int64_t o0 = 0; o0 < s->O; o0 += go)
        for (int64_t k0 = 0; k0 < j->Kd; k0 += gk)
            j->k->rows_accumulate(j->nvec, img, j->taps + k0, dyn + o0 * j->P, j->P, j->vpx,
                                  j->vyo, j->vlanes, part + (o0 * j->Kd + k0) * vw, j->Kd,
                                  s->O - o0 < go ? s->O - o0 : go,
                                  j->Kd - k0 < gk ? j->Kd - k0 : gk);
}

static void weight_grad_range(void *ctx, int64_t begin, int64_t end) {
    direct_job *j = ctx;
    const fnn_conv2d_shape *s = &j->s;
    const int64_t P = j->P, wf = partial_weight_floats(j);
    float *part = j->partial + (begin / j->grain) * (wf + s->O), *pbias = part + wf;
    memset(part, 0, (size_t)(wf + s->O) * sizeof(float));
    float *xp = NULL, *dyt = NULL;
    if (j->want_dw) {
        xp = image_scratch(j);
        if (!j->rows)
            dyt = fnn_cache_calloc(NULL, (size_t)(j->npanel * P * j->k->nr), sizeof(float));
        if ((j->pad && !xp) || (!j->rows && !dyt)) {
            atomic_store(&j->failed, 1);
            if (xp) fnn_cache_free(NULL, xp, 0);
            if (dyt) fnn_cache_free(NULL, dyt, 0);
            return;
        }
    }
    int64_t held = -1;
    for (int64_t n = begin; n < end; n++) {
        const float *dyn = j->dy + n * s->O * P;
        if (j->want_db)
            for (int64_t o = 0; o < s->O; o++) pbias[o] += fnn_conv_row_sum(dyn + o * P, P);
        if (!j->want_dw) continue;
        const float *img = image(j, n, xp, &held);
        if (j->rows) weight_grad_rows(j, img, dyn, part);
        else weight_grad_tiles(j, img, dyn, dyt, part);
    }
    if (xp) fnn_cache_free(NULL, xp, 0);
    if (dyt) fnn_cache_free(NULL, dyt, 0);
}

fnn_status fnn_conv2d_direct_weight_grad(float *dweight, float *dbias, const float *dy,
                                         const float *x, const fnn_conv2d_shape *s) {
    direct_job j = {.x = x, .dy = dy, .want_dw = dweight != NULL, .want_db = dbias != NULL};
    if (!plan(&j, s)) return FNN_ERR_NOMEM;
    const int64_t ld = j.npanel * j.k->nr, Kd = j.Kd, vw = j.k->vw;
    const int64_t wf = partial_weight_floats(&j), pf = wf + s->O;
    j.grain = fnn_conv_partial_grain(s->N, 2 * s->O * Kd * j.P);
    int64_t nchunks = fnn_conv_ceil_div(s->N, j.grain);
    j.partial = fnn_cache_malloc(NULL, (size_t)(nchunks * pf) * sizeof(float));
    if (!j.partial) {
        atomic_store(&j.failed, 1);
        return finish(&j, NULL);
    }
    fnn_parallel_for(s->N, j.grain, 1, &j, weight_grad_range);
    if (!atomic_load(&j.failed)) {
        float *sum = j.partial; /* the partials added into the first, in chunk order */
        for (int64_t c = 1; c < nchunks; c++) {
            const float *p = j.partial + c * pf;
            for (int64_t i = 0; i < pf; i++) sum[i] += p[i];
        }
        if (dweight && j.rows) /* the lanes of each element, in order */
            for (int64_t i = 0; i < s->O * Kd; i++) {
                float t = 0.0f;
                for (int64_t l = 0; l < vw; l++) t += sum[i * vw + l];
                dweight[i] = t;
            }
        else if (dweight)
            for (int64_t o = 0; o < s->O; o++)
                for (int64_t k = 0; k < Kd; k++) dweight[o * Kd + k] = sum[k * ld + o];
        if (dbias) memcpy(dbias, sum + wf, (size_t)s->O * sizeof(float));
    }
    return finish(&j, j.partial);
}
