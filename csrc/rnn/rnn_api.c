/*
 * rnn/rnn_api.c - recurrent layers over whole sequences: fnn_rnn_forward / _backward.
 * Compiled once. Dimension letters as fastnn.h (T, N, I, H, G, P, R); GH = G*H and
 * K = I + R, the width of a step's GEMM operand [x_t | h_prev].
 *
 * Interleaved layout. Every gate array (the saved gates, their gradients, the
 * weights as this file repacks them) orders its GH columns by block of units: block
 * b holds units b*U .. b*U + w - 1 (U = FNN_RNN_UNITS, w = min(U, H - b*U)) with its G
 * gates side by side, column b*G*U + g*w + u. One block's tile of a step's product
 * holds every gate of its units, so the cell (rnn/cell.c) runs on it while it is in L1.
 *
 * Forward, one call per layer and direction. W' (K, GH) = [w_ih | w_hh]^T with its
 * columns in the layout, packed once per call (the threads take blocks of units; block
 * b's (K, G*w) starts at column b*G*U). Per step, per tile of rows, per block:
 *   hg = [x_t | h_prev] W'[:, block]     one micro-kernel pass over K = I + R (the
 *                                        input projection rides along with the
 *                                        recurrent product; GRU runs n's two parts
 *                                        apart: r multiplies only the hidden one)
 *   the cell: + bias, activations, c and h, into the saved gates, the state and y
 * One or two sequences (N <= FNN_RNN_FEW_ROWS) would stream all of W' per step for a
 * row or two: their input projection x W'[:I] of every step is one GEMM into
 * the saved gates first, and each step adds h_prev W'[I:] to it (`hoisted`).
 * Backward, steps in reverse: the cell's backward turns the saved gates into their
 * gradients dG in place (GRU: the hidden side dGh apart), then dh_prev = dGh W_hh'
 * (+ GRU's direct term). After the loop, over all T*N rows at once: [dW_ih' | dW_hh']
 * = dG^T [x | h_prev] (one GEMM; GRU: two, dG and dGh), db = column sums, dx = dG W_ih',
 * then back to torch's row order.
 *
 * A projection (LSTM proj_size P): the cells write o tanh(c) to hr (T, N, H); then
 * h = hr w_hr^T per step (after every block of the rows: the next step needs all of
 * h); backward turns dh into dhr = dh w_hr first and keeps dh (T, N, P) for
 * dW_hr = dh^T hr after the loop.
 *
 * Workspace: gates (T, N, GH); xh (T+1, N, K) state slots; c (T+1, N, H) LSTM's cell
 * states; hn (T, N, H) GRU's W_hn h_prev + b_hn; hr (T, N, H) with a projection. Step
 * t reads slot t and writes the h part of slot t + 1 (reverse: reads t + 1, writes t);
 * the slot a step reads holds x_t in its first I columns. So slots [0, T) (reverse
 * [1, T]) are [x_t | h_prev] of steps 0 .. T-1 in time order, the weight gradient's
 * one operand, and the last slot written is h_n.
 *
 * Threads: a batch of >= 2 * FNN_RNN_CHUNK_ROWS rows is cut into chunks of rows that
 * each run every step with no barrier; a smaller batch with enough work per step splits
 * each step's blocks of units among the threads (fnn_parallel_phases: a wait per step,
 * two in backward; not with a projection, whose product needs all of the step's h);
 * below that, one thread. Each row gets the same arithmetic in every case.
 */
#include <stdlib.h>
#include <string.h>

#include "../kernels.h"

#define U FNN_RNN_UNITS
#define FNN_RNN_MR_MAX 16
#define FNN_RNN_CHUNK_ROWS 16
/* multiply-adds of one step's product below which one thread runs it all */
#define FNN_RNN_SERIAL_WORK (1 << 16)

static int64_t gates_of(fnn_rnn_cell cell) {
    return cell == FNN_RNN_LSTM ? 4 : cell == FNN_RNN_GRU ? 3 : 1;
}
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

typedef struct {
    const fnn_rnn_shape *s;
    const fnn_rnn_kernels *k;
    const fnn_gemm_kernels *gk;
    int64_t G, GH, blocks;
    int64_t parts;           /* a unit split's parts: contiguous runs of blocks, one per thread */
    int hoisted;             /* the input projection of every step is in gates before the steps */
    int64_t I, R, K;         /* input width, state width (P or H), I + R */
    const int64_t *active;   /* (T,): rows [0, active[t]) are inside their sequence */
    float *gates, *xh, *cs, *hn, *hr;
    /* forward */
    float *y;
    const float *w_t;        /* (K, GH): [w_ih | w_hh]^T, its columns in the layout */
    const float *bias;       /* (GH,) in the layout, or NULL */
    const float *b_hn;       /* GRU: (H,) or NULL */
    const float *whr_t;      /* projection: (H, P), w_hr transposed */
    /* backward */
    const float *whh;        /* (GH, R): w_hh's rows in the layout */
    const float *whr;        /* projection: (P, H) */
    float *dhp;              /* projection: (T*N, P), dh of each step */
    float *dhr;              /* projection: (N, H), dh through the projection */
    float *dgh;              /* (T*N, GH), GRU's hidden side, else = gates */
    const float *dy;
    float *dh[2];            /* (N, R) each, the gradient at h, by step parity */
    float *dc;               /* LSTM: (N, H) */
} rnn_job;

static int64_t slot_prev(const fnn_rnn_shape *s, int64_t t) { return s->reverse ? t + 1 : t; }
static int64_t slot_next(const fnn_rnn_shape *s, int64_t t) { return s->reverse ? t : t + 1; }
/* the end of the rows of [r0, r1) that are inside their sequence at step t */
static int64_t active_end(const rnn_job *j, int64_t t, int64_t r0, int64_t r1) {
    int64_t a = j->active[t];
    return a < r0 ? r0 : a > r1 ? r1 : a;
}
/* row n of state slot q, and the h part of it */
static float *slot_row(const rnn_job *j, int64_t q, int64_t n) {
    return j->xh + (q * j->s->N + n) * j->K;
}

/* rows [r0, r1) of (rows, ld) from src to dst, columns [c0, c1) */
static void copy_rows(float *dst, const float *src, int64_t ld, int64_t r0, int64_t r1,
                      int64_t c0, int64_t c1) {
    for (int64_t i = r0; i < r1; i++)
        memcpy(dst + i * ld + c0, src + i * ld + c0, (size_t)(c1 - c0) * sizeof(float));
}
static void zero_rows(float *dst, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    for (int64_t i = r0; i < r1; i++)
        memset(dst + i * ld + c0, 0, (size_t)(c1 - c0) * sizeof(float));
}

/* ---- forward ------------------------------------------------------------------ */

/* C tile (m <= MR, n) with row stride ldc = A (m, K) B (K, n) (+ C when beta is 1), A
 * row stride lda, B ldb: micro-tiles of the GEMM, or for one or two rows the few-rows
 * product (the same sums, from more independent accumulators) */
static void product(const rnn_job *j, int64_t K, const float *A, int64_t lda, const float *B,
                    int64_t ldb, float *C, int64_t ldc, int64_t m, int64_t n, float beta) {
    if (m <= FNN_RNN_FEW_ROWS) {
        j->k->few_rows_product(K, A, lda, B, ldb, C, ldc, m, n, beta != 0.0f);
        return;
    }
    const fnn_gemm_epilogue ep = {.alpha = 1.0f, .beta = beta, .first = 1, .last = 1};
    const int64_t NR = j->gk->blocking->nr;
    for (int64_t c = 0; c < n; c += NR)
        j->gk->ukernel_direct(K, A, lda, 0, B + c, ldb, C + c, ldc, m, min64(NR, n - c), 0, 0,
                              &ep);
}

/* step t for rows [r0, r1) and unit blocks [b0, b1): the block's tile, then the cell */
static void forward_step(const rnn_job *j, int64_t t, int64_t r0, int64_t r1, int64_t b0,
                         int64_t b1) {
    const fnn_rnn_shape *s = j->s;
    const int64_t N = s->N, H = s->H, I = j->I, K = j->K, G = j->G, GH = j->GH;
    const int64_t MR = j->gk->blocking->mr;
    const int64_t a = active_end(j, t, r0, r1), p = slot_prev(s, t), q = slot_next(s, t);
    const int gru = s->cell == FNN_RNN_GRU;
    const float *cp = j->cs ? j->cs + p * N * H : NULL;
    float *cq = j->cs ? j->cs + q * N * H : NULL;
    float hg[FNN_RNN_MR_MAX * 4 * U] __attribute__((aligned(64)));
    const int64_t ldhg = 4 * U;
    for (int64_t i0 = r0; i0 < a; i0 += MR) {
        const int64_t m = min64(MR, a - i0), row = t * N + i0;
        const float *xh = slot_row(j, p, i0);
        for (int64_t b = b0; b < b1; b++) {
            const int64_t u0 = b * U, w = min64(U, H - u0), c0 = b * G * U, Gw = G * w;
            const float *wb = j->w_t + c0; /* the block's (K, Gw), row stride GH */
            /* r, z (GRU) or every gate over all of K; with the input projection already in
             * the gates, over the h part only, added to it */
            const int64_t k0 = j->hoisted ? I : 0;
            for (int64_t i = 0; j->hoisted && i < m; i++)
                memcpy(hg + i * ldhg, j->gates + (row + i) * GH + c0, (size_t)Gw * sizeof(float));
            product(j, K - k0, xh + k0, K, wb + k0 * GH, GH, hg, ldhg, m, gru ? 2 * w : Gw,
                    (float)j->hoisted);
            if (gru) { /* n's x part (unless in the gates already), then its h part */
                if (!j->hoisted) product(j, I, xh, K, wb + 2 * w, GH, hg + 2 * w, ldhg, m, w, 0.0f);
                product(j, K - I, xh + I, K, wb + I * GH + 2 * w, GH, hg + 3 * w, ldhg, m, w,
                        0.0f);
            }
            /* with a projection the cell's h is o tanh(c), into hr */
            float *h = j->hr ? j->hr + row * H + u0 : slot_row(j, q, i0) + I + u0;
            fnn_rnn_cell_forward_args ca = {
                .m = m, .w = w, .ld = H, .ldh = j->hr ? H : K, .ldg = GH,
                .ldy = j->hr ? H : s->ldy, .ldhg = ldhg,
                .hg = hg, .bias = j->bias ? j->bias + c0 : NULL,
                .b_hn = j->b_hn ? j->b_hn + u0 : NULL,
                .gates = j->gates + row * GH + c0,
                .h_prev = xh + I + u0, .h = h, .y = j->hr ? h : j->y + row * s->ldy + u0,
                .c_prev = cp ? cp + i0 * H + u0 : NULL, .c = cq ? cq + i0 * H + u0 : NULL,
                .hn = j->hn ? j->hn + row * H + u0 : NULL};
            j->k->forward[s->cell](&ca);
        }
    }
    /* rows past their length: the state stays, the output is 0 (the projection's
     * columns: forward_project) */
    const int64_t u0 = b0 * U, u1 = min64(b1 * U, H);
    if (cq) copy_rows(cq, cp, H, a, r1, u0, u1);
    /* hr of such rows meets zero gradients in dW_hr: make it zeros, not stale memory */
    if (j->hr) zero_rows(j->hr + t * N * H, H, a, r1, u0, u1);
    else {
        for (int64_t i = a; i < r1; i++)
            memcpy(slot_row(j, q, i) + I + u0, slot_row(j, p, i) + I + u0,
                   (size_t)(u1 - u0) * sizeof(float));
        zero_rows(j->y + t * N * s->ldy, s->ldy, a, r1, u0, u1);
    }
}

/* the projection of step t for rows [r0, r1): h = hr w_hr^T into the state and y */
static void forward_project(const rnn_job *j, int64_t t, int64_t r0, int64_t r1) {
    const fnn_rnn_shape *s = j->s;
    const int64_t N = s->N, H = s->H, P = j->R, I = j->I, K = j->K;
    const int64_t MR = j->gk->blocking->mr;
    const int64_t a = active_end(j, t, r0, r1), p = slot_prev(s, t), q = slot_next(s, t);
    for (int64_t i0 = r0; i0 < a; i0 += MR)
        product(j, H, j->hr + (t * N + i0) * H, H, j->whr_t, P, slot_row(j, q, i0) + I, K,
                min64(MR, a - i0), P, 0.0f);
    for (int64_t i = r0; i < a; i++)
        memcpy(j->y + (t * N + i) * s->ldy, slot_row(j, q, i) + I, (size_t)P * sizeof(float));
    for (int64_t i = a; i < r1; i++)
        memcpy(slot_row(j, q, i) + I, slot_row(j, p, i) + I, (size_t)P * sizeof(float));
    zero_rows(j->y + t * N * s->ldy, s->ldy, a, r1, 0, P);
}

/* a chunk of rows through every step */
static void forward_rows(void *ctx, int64_t r0, int64_t r1) {
    const rnn_job *j = ctx;
    for (int64_t i = 0; i < j->s->T; i++) {
        const int64_t t = j->s->reverse ? j->s->T - 1 - i : i;
        forward_step(j, t, r0, r1, 0, j->blocks);
        if (j->hr) forward_project(j, t, r0, r1);
    }
}

static int64_t part_begin(const rnn_job *j, int64_t part) { return part * j->blocks / j->parts; }

/* phase i = the i-th step, item = a part of the blocks of units */
static void forward_part(void *ctx, int64_t i, int64_t part) {
    const rnn_job *j = ctx;
    forward_step(j, j->s->reverse ? j->s->T - 1 - i : i, 0, j->s->N, part_begin(j, part),
                 part_begin(j, part + 1));
}

/* ---- backward ----------------------------------------------------------------- */

/* the projection's backward of step t for rows [r0, r1): dh_t = dh[parity] + dy,
 * kept in dhp for dW_hr, and dhr = dh_t w_hr, the gradient at the cells' h */
static void backward_project(const rnn_job *j, int64_t t, int64_t parity, int64_t r0,
                             int64_t r1) {
    const fnn_rnn_shape *s = j->s;
    const int64_t N = s->N, H = s->H, P = j->R;
    const int64_t MR = j->gk->blocking->mr;
    const int64_t a = active_end(j, t, r0, r1);
    const float *dh = j->dh[parity];
    float *dhp = j->dhp + t * N * P;
    for (int64_t i = r0; i < a; i++)
        for (int64_t c = 0; c < P; c++)
            dhp[i * P + c] = dh[i * P + c] + (j->dy ? j->dy[(t * N + i) * s->ldy + c] : 0.0f);
    zero_rows(dhp, P, a, r1, 0, P);
    copy_rows(j->dh[!parity], dh, P, a, r1, 0, P);
    for (int64_t i0 = r0; i0 < a; i0 += MR)
        product(j, P, dhp + i0 * P, P, j->whr, H, j->dhr + i0 * H, H, min64(MR, a - i0), H,
                0.0f);
}

/* the cells' backward of step t for rows [r0, r1), blocks [b0, b1): dG from the
 * saved gates and dh[parity] (or dhr); GRU's direct term into dh[!parity] */
static void backward_cells(const rnn_job *j, int64_t t, int64_t parity, int64_t r0, int64_t r1,
                           int64_t b0, int64_t b1) {
    const fnn_rnn_shape *s = j->s;
    const int64_t N = s->N, H = s->H, G = j->G, GH = j->GH, I = j->I;
    const int64_t a = active_end(j, t, r0, r1), row = t * N + r0;
    const float *dh = j->dhr ? j->dhr : j->dh[parity];
    float *dh_prev = j->dh[!parity];
    const float *cp = j->cs ? j->cs + slot_prev(s, t) * N * H : NULL;
    const float *cq = j->cs ? j->cs + slot_next(s, t) * N * H : NULL;
    const float *hp = slot_row(j, slot_prev(s, t), r0) + I;
    for (int64_t b = b0; b < b1 && a > r0; b++) {
        const int64_t u0 = b * U, w = min64(U, H - u0), c0 = b * G * U;
        fnn_rnn_cell_backward_args ca = {
            .m = a - r0, .w = w, .ld = H, .ldh = j->K, .ldg = GH, .ldy = s->ldy,
            .dgates = j->gates + row * GH + c0,
            .dgh = j->dgh != j->gates ? j->dgh + row * GH + c0 : NULL,
            .dy = j->dy && !j->dhr ? j->dy + row * s->ldy + u0 : NULL,
            .dh = dh + r0 * H + u0, .dh_prev = dh_prev + r0 * H + u0,
            .dc = j->dc ? j->dc + r0 * H + u0 : NULL,
            .c = cq ? cq + r0 * H + u0 : NULL, .c_prev = cp ? cp + r0 * H + u0 : NULL,
            .h_prev = hp + u0, .hn = j->hn ? j->hn + row * H + u0 : NULL};
        j->k->backward[s->cell](&ca);
    }
    /* rows outside their sequence: no gradient through this step, dh carried (with a
     * projection, by backward_project) */
    const int64_t u0 = b0 * U, u1 = min64(b1 * U, H);
    const int64_t g0 = b0 * G * U, g1 = min64(b1 * G * U, GH);
    zero_rows(j->gates + t * N * GH, GH, a, r1, g0, g1);
    if (j->dgh != j->gates) zero_rows(j->dgh + t * N * GH, GH, a, r1, g0, g1);
    if (!j->dhr) copy_rows(dh_prev, dh, H, a, r1, u0, u1);
}

/* dh[!parity] (+)= dGh_t W_hh' for rows [r0, r1) and columns [c0, c1) */
static void backward_product(const rnn_job *j, int64_t t, int64_t parity, int64_t r0,
                             int64_t r1, int64_t c0, int64_t c1) {
    const int64_t N = j->s->N, R = j->R, GH = j->GH;
    const int64_t MR = j->gk->blocking->mr;
    const int64_t a = active_end(j, t, r0, r1);
    const float *dg = j->dgh + t * N * GH;
    for (int64_t i0 = r0; i0 < a; i0 += MR)
        product(j, GH, dg + i0 * GH, GH, j->whh + c0, R, j->dh[!parity] + i0 * R + c0, R,
                min64(MR, a - i0), c1 - c0, j->s->cell == FNN_RNN_GRU ? 1.0f : 0.0f);
}

/* the step order of backward: k = 0 is the forward's last step */
static int64_t backward_time(const fnn_rnn_shape *s, int64_t k) {
    return s->reverse ? k : s->T - 1 - k;
}

static void backward_rows(void *ctx, int64_t r0, int64_t r1) {
    const rnn_job *j = ctx;
    for (int64_t k = 0; k < j->s->T; k++) {
        const int64_t t = backward_time(j->s, k);
        if (j->dhr) backward_project(j, t, k & 1, r0, r1);
        backward_cells(j, t, k & 1, r0, r1, 0, j->blocks);
        backward_product(j, t, k & 1, r0, r1, 0, j->R);
    }
}

/* phases 2k and 2k + 1 = backward step k's cells, then its dh product; item = a
 * part of the blocks of units, and the same columns of dh */
static void backward_part(void *ctx, int64_t phase, int64_t part) {
    const rnn_job *j = ctx;
    const int64_t k = phase / 2, t = backward_time(j->s, k), N = j->s->N;
    const int64_t b0 = part_begin(j, part), b1 = part_begin(j, part + 1);
    if (phase % 2 == 0) backward_cells(j, t, k & 1, 0, N, b0, b1);
    else backward_product(j, t, k & 1, 0, N, b0 * U, min64(b1 * U, j->R));
}

/* ---- the shared set-up ---------------------------------------------------------- */

typedef enum { SPLIT_SERIAL, SPLIT_ROWS, SPLIT_UNITS } rnn_split;

static rnn_split choose_split(const fnn_rnn_shape *s, int64_t GH) {
    if (s->N >= 2 * FNN_RNN_CHUNK_ROWS) return SPLIT_ROWS;
    /* a projection needs all of h after each step's cells: no unit split */
    if (s->proj_size) return SPLIT_SERIAL;
    if (s->N * GH * s->H >= FNN_RNN_SERIAL_WORK && s->H > U)
        return SPLIT_UNITS;
    return SPLIT_SERIAL;
}

/* row chunks of about FNN_RNN_CHUNK_ROWS, by the batch size alone */
static int64_t chunk_rows(int64_t N) {
    int64_t chunks = N / FNN_RNN_CHUNK_ROWS > 0 ? N / FNN_RNN_CHUNK_ROWS : 1;
    return (N + chunks - 1) / chunks;
}

static int64_t state_width(const fnn_rnn_shape *s) { return s->proj_size ? s->proj_size : s->H; }

static fnn_status check_shape(const fnn_rnn_shape *s, const int64_t *lengths) {
    if (!s || s->T < 1 || s->N < 1 || s->input_size < 1 || s->H < 1) return FNN_ERR_ARG;
    if ((int)s->cell < 0 || s->cell >= FNN_RNN_CELL_COUNT) return FNN_ERR_ARG;
    if (s->proj_size < 0 || s->proj_size >= s->H || (s->proj_size && s->cell != FNN_RNN_LSTM))
        return FNN_ERR_ARG;
    if (s->ldy < state_width(s)) return FNN_ERR_ARG;
    for (int64_t n = 0; lengths && n < s->N; n++)
        if (lengths[n] < 1 || lengths[n] > s->T || (n > 0 && lengths[n] > lengths[n - 1]))
            return FNN_ERR_ARG;
    return FNN_OK;
}

int64_t fnn_rnn_workspace_floats(const fnn_rnn_shape *s) {
    if (check_shape(s, NULL) != FNN_OK) return 0;
    const int64_t TN = s->T * s->N, slots = (s->T + 1) * s->N;
    return TN * gates_of(s->cell) * s->H + slots * (s->input_size + state_width(s)) +
           (s->cell == FNN_RNN_LSTM ? slots * s->H : 0) +
           (s->cell == FNN_RNN_GRU ? TN * s->H : 0) + (s->proj_size ? TN * s->H : 0);
}

/* the parts of the workspace, and the active-rows table (T,) (malloc'ed) */
static fnn_status job_init(rnn_job *j, const fnn_rnn_shape *s, float *workspace,
                           const int64_t *lengths) {
    const int64_t TN = s->T * s->N, slots = (s->T + 1) * s->N;
    *j = (rnn_job){.s = s, .k = fnn_active_rnn(), .gk = fnn_active_gemm(), .G = gates_of(s->cell),
                   .I = s->input_size, .R = state_width(s)};
    if (j->gk->blocking->mr > FNN_RNN_MR_MAX) return FNN_ERR_ARG;
    j->K = j->I + j->R;
    j->GH = j->G * s->H;
    j->blocks = (s->H + U - 1) / U;
    j->parts = min64(fnn_get_num_threads(), j->blocks);
    j->gates = workspace;
    j->xh = j->gates + TN * j->GH;
    float *next = j->xh + slots * j->K;
    if (s->cell == FNN_RNN_LSTM) j->cs = next, next += slots * s->H;
    if (s->cell == FNN_RNN_GRU) j->hn = next, next += TN * s->H;
    if (s->proj_size) j->hr = next;
    int64_t *active = malloc((size_t)s->T * sizeof(int64_t));
    if (!active) return FNN_ERR_NOMEM;
    for (int64_t t = 0; t < s->T; t++) {
        int64_t a = s->N;
        while (lengths && a > 0 && lengths[a - 1] <= t) a--;
        active[t] = a;
    }
    j->active = active;
    return FNN_OK;
}

/* the torch row of each column of the interleaved layout, (GH,) */
static int64_t *layout_rows(int64_t G, int64_t H) {
    int64_t *rows = malloc((size_t)(G * H) * sizeof(int64_t));
    for (int64_t b = 0; rows && b * U < H; b++) {
        const int64_t u0 = b * U, w = min64(U, H - u0);
        for (int64_t g = 0; g < G; g++)
            for (int64_t u = 0; u < w; u++) rows[b * G * U + g * w + u] = g * H + u0 + u;
    }
    return rows;
}

/* dst (GH, K) = the rows of src (GH, K) in the layout's order */
static void gather_rows(float *dst, const float *src, const int64_t *rows, int64_t GH,
                        int64_t K) {
    for (int64_t c = 0; c < GH; c++)
        memcpy(dst + c * K, src + rows[c] * K, (size_t)K * sizeof(float));
}

/* dst (GH, n) in torch's order, row stride ld_dst, += src (GH, n) in the layout's,
 * row stride ld_src */
static void scatter_add_rows(float *dst, int64_t ld_dst, const float *src, int64_t ld_src,
                             const int64_t *rows, int64_t GH, int64_t n) {
    for (int64_t c = 0; c < GH; c++) {
        float *d = dst + rows[c] * ld_dst;
        const float *r = src + c * ld_src;
        for (int64_t k = 0; k < n; k++) d[k] += r[k];
    }
}

/* every step in each chunk of rows, or per step over blocks of units */
static void run_forward(rnn_job *j, rnn_split split) {
    const fnn_rnn_shape *s = j->s;
    if (split != SPLIT_UNITS) {
        int64_t grain = split == SPLIT_ROWS ? chunk_rows(s->N) : s->N;
        fnn_parallel_for(s->N, grain, 1, j, forward_rows);
        return;
    }
    fnn_parallel_phases(s->T, j->parts, j, forward_part);
}

static void run_backward(rnn_job *j, rnn_split split) {
    const fnn_rnn_shape *s = j->s;
    if (split != SPLIT_UNITS) {
        int64_t grain = split == SPLIT_ROWS ? chunk_rows(s->N) : s->N;
        fnn_parallel_for(s->N, grain, 1, j, backward_rows);
        return;
    }
    fnn_parallel_phases(2 * s->T, j->parts, j, backward_part);
}

static void copy_or_zero(float *dst, const float *src, int64_t n) {
    if (src) memcpy(dst, src, (size_t)n * sizeof(float));
    else memset(dst, 0, (size_t)n * sizeof(float));
}

/* W' (K, GH) = [w_ih | w_hh]^T with its columns in the layout, blocks [b0, b1) */
typedef struct {
    const rnn_job *j;
    float *w_t;
    const float *w_ih, *w_hh;
} weight_pack_job;

static void pack_blocks(void *ctx, int64_t b0, int64_t b1) {
    const weight_pack_job *pj = ctx;
    const rnn_job *j = pj->j;
    const int64_t H = j->s->H, I = j->I, R = j->R, G = j->G, GH = j->GH;
    for (int64_t b = b0; b < b1; b++) {
        const int64_t u0 = b * U, w = min64(U, H - u0);
        for (int64_t g = 0; g < G; g++) {
            float *col = pj->w_t + b * G * U + g * w;
            j->gk->transpose(col, GH, pj->w_ih + (g * H + u0) * I, I, w, I);
            j->gk->transpose(col + I * GH, GH, pj->w_hh + (g * H + u0) * R, R, w, R);
        }
    }
}

/* ---- entry points ----------------------------------------------------------------- */

fnn_status fnn_rnn_forward(float *y, float *h_n, float *c_n, float *workspace, const float *x,
                           const float *h0, const float *c0, const float *w_ih,
                           const float *w_hh, const float *w_hr, const float *b_ih,
                           const float *b_hh, const int64_t *lengths, const fnn_rnn_shape *s) {
    fnn_status st = check_shape(s, lengths);
    if (st != FNN_OK) return st;
    if (!y || !x || !w_ih || !w_hh || (!b_ih) != (!b_hh) || (!w_hr) != (s->proj_size == 0))
        return FNN_ERR_ARG;
    const int64_t T = s->T, N = s->N, I = s->input_size, H = s->H, R = state_width(s);
    const int64_t G = gates_of(s->cell), GH = G * H, P = s->proj_size, K = I + R;
    float *own = workspace ? NULL : malloc((size_t)fnn_rnn_workspace_floats(s) * sizeof(float));
    if (!workspace && !own) return FNN_ERR_NOMEM;
    rnn_job j;
    st = job_init(&j, s, workspace ? workspace : own, lengths);
    int64_t *rows = layout_rows(G, H);
    float *packed = malloc((size_t)(K * GH + GH + H * P) * sizeof(float));
    if (st == FNN_OK && (!rows || !packed)) st = FNN_ERR_NOMEM;
    const int64_t first = s->reverse ? T : 0, last = s->reverse ? 0 : T;
    if (st == FNN_OK) {
        float *w_t = packed, *bias = packed + K * GH, *whr_t = bias + GH;
        weight_pack_job pj = {.j = &j, .w_t = w_t, .w_ih = w_ih, .w_hh = w_hh};
        fnn_parallel_for(j.blocks, 1, 1, &pj, pack_blocks);
        for (int64_t c = 0; b_ih && c < GH; c++) {
            const int64_t r = rows[c];
            bias[c] = b_ih[r] + (s->cell == FNN_RNN_GRU && r >= 2 * H ? 0.0f : b_hh[r]);
        }
        if (P) j.gk->transpose(whr_t, P, w_hr, H, P, H);
        j.y = y, j.w_t = w_t, j.bias = b_ih ? bias : NULL, j.whr_t = P ? whr_t : NULL;
        j.b_hn = s->cell == FNN_RNN_GRU && b_hh ? b_hh + 2 * H : NULL;
        /* x_t into the slot step t reads, the initial state into the first slot */
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++)
                memcpy(slot_row(&j, slot_prev(s, t), n), x + (t * N + n) * I,
                       (size_t)I * sizeof(float));
        for (int64_t n = 0; n < N; n++)
            copy_or_zero(slot_row(&j, first, n) + I, h0 ? h0 + n * R : NULL, R);
        if (j.cs) copy_or_zero(j.cs + first * N * H, c0, N * H);
        /* one or two sequences: their steps stream the weights for a row or two, so the
         * input projection of all steps goes first, as one GEMM */
        j.hoisted = N <= FNN_RNN_FEW_ROWS;
        if (j.hoisted) st = fnn_sgemm(0, 0, T * N, GH, I, 1.0f, x, I, w_t, GH, 0.0f, j.gates, GH);
    }
    if (st == FNN_OK) {
        run_forward(&j, choose_split(s, GH));
        for (int64_t n = 0; h_n && n < N; n++)
            memcpy(h_n + n * R, slot_row(&j, last, n) + I, (size_t)R * sizeof(float));
        if (c_n && j.cs) memcpy(c_n, j.cs + last * N * H, (size_t)(N * H) * sizeof(float));
    }
    free((void *)j.active);
    free(rows);
    free(packed);
    free(own);
    return st;
}

fnn_status fnn_rnn_backward(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh,
                            float *dw_hr, float *db_ih, float *db_hh, const float *dy,
                            const float *dh_n, const float *dc_n, float *workspace,
                            const float *w_ih, const float *w_hh, const float *w_hr,
                            const int64_t *lengths, const fnn_rnn_shape *s, int accumulate_dx) {
    fnn_status st = check_shape(s, lengths);
    if (st != FNN_OK) return st;
    if (!workspace || !w_hh || (dx && !w_ih) || (!w_hr) != (s->proj_size == 0))
        return FNN_ERR_ARG;
    const int64_t T = s->T, N = s->N, I = s->input_size, H = s->H, R = state_width(s);
    const int64_t G = gates_of(s->cell), GH = G * H, P = s->proj_size, K = I + R, TN = T * N;
    const int lstm = s->cell == FNN_RNN_LSTM, gru = s->cell == FNN_RNN_GRU;
    rnn_job j;
    st = job_init(&j, s, workspace, lengths);
    int64_t *rows = layout_rows(G, H);
    float *whh = malloc((size_t)(GH * R) * sizeof(float));
    /* dh[0], dh[1] (N, R); dc (N, H); dhr (N, H) */
    float *states = malloc((size_t)(2 * N * R + (lstm ? N * H : 0) + (P ? N * H : 0)) *
                           sizeof(float));
    float *dgh = gru ? malloc((size_t)(TN * GH) * sizeof(float)) : NULL;
    float *dhp = P ? malloc((size_t)(TN * P) * sizeof(float)) : NULL;
    float *part = malloc((size_t)(GH * K + GH) * sizeof(float));
    if (st == FNN_OK && (!rows || !whh || !states || (gru && !dgh) || (P && !dhp) || !part))
        st = FNN_ERR_NOMEM;
    if (st == FNN_OK) {
        gather_rows(whh, w_hh, rows, GH, R);
        j.whh = whh, j.whr = w_hr, j.dhp = dhp, j.dy = dy, j.dgh = gru ? dgh : j.gates;
        j.dh[0] = states, j.dh[1] = states + N * R;
        float *next = states + 2 * N * R;
        if (lstm) j.dc = next, next += N * H;
        if (P) j.dhr = next;
        copy_or_zero(j.dh[0], dh_n, N * R);
        if (j.dc) copy_or_zero(j.dc, dc_n, N * H);
        run_backward(&j, choose_split(s, GH));
        if (dh0) memcpy(dh0, j.dh[T & 1], (size_t)(N * R) * sizeof(float));
        if (dc0) copy_or_zero(dc0, j.dc, N * H);
    }
    /* the merged products over all T*N rows, in the layout, then back to torch's rows:
     * part (GH, K) = dG^T [x | h_prev] (GRU: the hidden columns from dGh) */
    const float *xh = st == FNN_OK ? slot_row(&j, s->reverse ? 1 : 0, 0) : NULL;
    if (st == FNN_OK && (dw_ih || dw_hh)) {
        if (gru) {
            st = fnn_sgemm(1, 0, GH, I, TN, 1.0f, j.gates, GH, xh, K, 0.0f, part, K);
            if (st == FNN_OK)
                st = fnn_sgemm(1, 0, GH, R, TN, 1.0f, dgh, GH, xh + I, K, 0.0f, part + I, K);
        } else {
            st = fnn_sgemm(1, 0, GH, K, TN, 1.0f, j.gates, GH, xh, K, 0.0f, part, K);
        }
        if (st == FNN_OK && dw_ih) scatter_add_rows(dw_ih, I, part, K, rows, GH, I);
        if (st == FNN_OK && dw_hh) scatter_add_rows(dw_hh, R, part + I, K, rows, GH, R);
    }
    if (st == FNN_OK && dw_hr && P)
        st = fnn_sgemm(1, 0, P, H, TN, 1.0f, dhp, P, j.hr, H, 1.0f, dw_hr, H);
    float *bias_part = part + GH * K;
    if (st == FNN_OK && (db_ih || db_hh)) {
        st = fnn_linear_bias_backward(bias_part, j.gates, TN, GH, GH, 0);
        if (st == FNN_OK && db_ih) scatter_add_rows(db_ih, 1, bias_part, 1, rows, GH, 1);
        /* LSTM and RNN: the hidden bias gets the same gradient as the input bias */
        if (st == FNN_OK && db_hh && gru) st = fnn_linear_bias_backward(bias_part, dgh, TN, GH, GH, 0);
        if (st == FNN_OK && db_hh) scatter_add_rows(db_hh, 1, bias_part, 1, rows, GH, 1);
    }
    if (st == FNN_OK && dx) {
        gather_rows(part, w_ih, rows, GH, I);
        st = fnn_sgemm(0, 0, TN, I, GH, 1.0f, j.gates, GH, part, I, accumulate_dx ? 1.0f : 0.0f,
                       dx, I);
    }
    free((void *)j.active);
    free(rows);
    free(whh);
    free(states);
    free(dgh);
    free(dhp);
    free(part);
    return st;
}
