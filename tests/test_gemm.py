"""matmul / linear / linear_bias_backward (our SGEMM, csrc/gemm/) against NumPy
float64, on every ISA path: every small size around the active ISA's
micro-tile, every KC / MC / NC block boundary, transposes as flags and as
views, strided and copied layouts, alpha / beta, empty and K = 0 products,
batching and its broadcasting, aliasing, thread-count invariance, errors.

Accuracy check: element-wise, the rigorous float32 dot-product bound
|C - ref| <= (K + 4) * 2**-24 * (|alpha| |op(a)| |op(b)| + |beta| |C_old|)
(any summation order of K products, plus alpha, beta and rounding of the
result). It is tight enough that dropping one K term or using a wrong
transpose fails it (test_check_catches_wrong_results).
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops

EPS32 = 2.0 ** -24
TRANS = [(False, False), (False, True), (True, False), (True, True)]


# ---- reference and check ------------------------------------------------------------
def rnd(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def op64(x, t):
    x = np.asarray(x, dtype=np.float64)
    return np.swapaxes(x, -1, -2) if t else x


def reference(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """float64 alpha op(a) @ op(b) + beta c, and the float32 error bound per element."""
    A, B = op64(a, trans_a), op64(b, trans_b)
    K = A.shape[-1]
    ref = alpha * np.matmul(A, B)
    mag = abs(alpha) * np.matmul(np.abs(A), np.abs(B))
    if beta != 0.0:
        C = np.asarray(c, dtype=np.float64)
        ref = ref + beta * C
        mag = mag + abs(beta) * np.abs(C)
    return ref, (K + 4) * EPS32 * mag


def within(got, ref, bound):
    got = np.asarray(got)
    return (got.shape == ref.shape and got.dtype == np.float32
            and bool(np.all(np.abs(got.astype(np.float64) - ref) <= bound)))


def assert_within(got, ref, bound, what=""):
    assert isinstance(got, np.ndarray) and got.dtype == np.float32, (what, type(got))
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    err = np.abs(got.astype(np.float64) - ref)
    bad = ~(err <= bound)  # NaN counts as bad
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} elements off, first at {idx}: "
                    f"got {got[idx]!r}, want {ref[idx]!r}, bound {bound[idx]:.3g}")


def check_mm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, what=""):
    """call ops.matmul and compare it with the float64 reference"""
    c_old = None if out is None else np.array(out, dtype=np.float64)
    kw = {}
    if trans_a:
        kw["trans_a"] = True
    if trans_b:
        kw["trans_b"] = True
    if alpha != 1.0:
        kw["alpha"] = alpha
    if beta != 0.0:
        kw["beta"] = beta
    if out is not None:
        kw["out"] = out
    got = ops.matmul(a, b, **kw)
    if out is not None:
        assert got is out
    ref, bound = reference(a, b, trans_a, trans_b, alpha, beta, c_old)
    assert_within(got, ref, bound, what or f"a {np.shape(a)} b {np.shape(b)} {kw.keys()}")
    return got


def operands(rng, M, N, K, ta, tb, batch_a=(), batch_b=()):
    a = rnd(rng, batch_a + ((K, M) if ta else (M, K)))
    b = rnd(rng, batch_b + ((N, K) if tb else (K, N)))
    return a, b


# ---- layouts: the same values in different memory layouts ---------------------------
def _transposed_storage(x):
    """column-major matrices (a transposed view of a C-contiguous array)"""
    return np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)


def _wide(x):
    """a[..., :k] of a wider array: leading dimension > k"""
    buf = np.full(x.shape[:-1] + (x.shape[-1] + 7,), np.nan, np.float32)
    buf[..., :x.shape[-1]] = x
    return buf[..., :x.shape[-1]]


def _wide_transposed(x):
    """transposed view with a padded leading dimension"""
    t = np.swapaxes(x, -1, -2)
    buf = np.full(t.shape[:-1] + (t.shape[-1] + 5,), np.nan, np.float32)
    buf[..., :t.shape[-1]] = t
    return np.swapaxes(buf[..., :t.shape[-1]], -1, -2)


def _row_step(x):
    """every other row of a taller array"""
    shp = x.shape[:-2] + (2 * x.shape[-2], x.shape[-1])
    buf = np.full(shp, np.nan, np.float32)
    buf[..., ::2, :] = x
    return buf[..., ::2, :]


def _neg_rows(x):
    """negative row stride: copied by fastnn"""
    return np.ascontiguousarray(x[..., ::-1, :])[..., ::-1, :]


def _col_step(x):
    """column stride 2: copied by fastnn"""
    buf = np.full(x.shape[:-1] + (2 * x.shape[-1],), np.nan, np.float32)
    buf[..., ::2] = x
    return buf[..., ::2]


def _readonly(x):
    y = x.copy()
    y.flags.writeable = False
    return y


def _unaligned(x):
    """float32 data at an address that is not a multiple of 4"""
    raw = np.zeros(x.nbytes + 8, np.uint8)
    y = raw[1:1 + x.nbytes].view(np.float32).reshape(x.shape)
    y[...] = x
    return y


def _odd_bytes(x):
    """row (and batch) strides that are not a multiple of 4 bytes: copied by fastnn"""
    strides = [4]
    for s in x.shape[:0:-1]:
        strides.insert(0, strides[0] * s + 3)
    span = sum((s - 1) * st for s, st in zip(x.shape, strides)) + 4 if x.size else 4
    raw = np.zeros((span + 11) // 4 * 4, np.uint8).view(np.float32)
    y = np.lib.stride_tricks.as_strided(raw, x.shape, tuple(strides))
    y[...] = x
    return y


def _batch_step(x):
    """every other matrix of a longer batch (2-D: unchanged)"""
    if x.ndim < 3:
        return x
    buf = np.full((2 * x.shape[0],) + x.shape[1:], np.nan, np.float32)
    buf[::2] = x
    return buf[::2]


LAYOUTS = {
    "contig": lambda x: x,
    "transposed": _transposed_storage,
    "wide": _wide,
    "wide_transposed": _wide_transposed,
    "row_step": _row_step,
    "neg_rows": _neg_rows,
    "col_step": _col_step,
    "fortran": np.asfortranarray,
    "readonly": _readonly,
    "unaligned": _unaligned,
    "odd_bytes": _odd_bytes,
    "batch_step": _batch_step,
    "big_endian": lambda x: x.astype(">f4"),
    "float64": lambda x: x.astype(np.float64),
    "int": lambda x: np.round(x * 4).astype(np.int32),
    "list": lambda x: x.tolist(),
}
PARTNERS = ["contig", "transposed", "wide", "row_step"]


# ---- the check itself is discriminating ------------------------------------------
def test_check_catches_wrong_results(rng):
    a, b = rnd(rng, (20, 20)), rnd(rng, (20, 20))
    ref, bound = reference(a, b)
    right = ops.matmul(a, b)
    assert within(right, ref, bound)
    assert not within(ops.matmul(a.T, b), ref, bound)          # wrong transpose of a
    assert not within(ops.matmul(a, b.T), ref, bound)          # wrong transpose of b
    dropped = (a[:, :-1].astype(np.float64) @ b[:-1].astype(np.float64)).astype(np.float32)
    assert not within(dropped, ref, bound)                      # one K term missing
    assert not within(right * np.float32(1 + 2e-5), ref, bound)  # 2e-5 relative off
    assert not within(right.astype(np.float64), ref, bound)      # wrong dtype
    # and the bound is not absurdly loose: ~1e-5 relative to the magnitudes for K = 20
    assert np.all(bound <= 2e-5 * np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))


# ---- every small size around the micro-tile ----------------------------------------
@pytest.mark.parametrize("dim", ["M", "N", "K"])
def test_every_small_size(dim, isa, rng):
    MR, NR, KC, MC, NC = _C.gemm_blocking()
    top = 2 * max(MR, NR) + 1
    for s in range(1, top + 1):
        dims = {"M": MR + 2, "N": NR + 3, "K": 5}
        dims[dim] = s
        for ta, tb in TRANS:
            a, b = operands(rng, dims["M"], dims["N"], dims["K"], ta, tb)
            check_mm(a, b, ta, tb, what=f"{isa} {dims} trans {ta, tb}")


def test_blocking_of_each_isa(isa):
    assert _C.active_isa() == isa
    MR, NR, KC, MC, NC = _C.gemm_blocking()
    assert min(MR, NR, KC, MC, NC) >= 1
    assert MC % MR == 0 and NC % NR == 0


# ---- across the KC / MC / NC block boundaries -------------------------------------
@pytest.mark.parametrize("dim", ["K", "M", "N"])
def test_block_boundaries(dim, isa, threads, rng):
    MR, NR, KC, MC, NC = _C.gemm_blocking()
    if dim == "K":
        cases = [(2 * MR + 1, NR + 5, k) for k in (KC - 1, KC, KC + 1, 2 * KC + 1)]
    elif dim == "M":
        cases = [(m, 2 * NR + 3, 33) for m in (MC - 1, MC, MC + 1)]
    else:
        cases = [(MR + 1, n, 33) for n in (NC - 1, NC, NC + 1)]
    for M, N, K in cases:
        for ta, tb in TRANS:
            a, b = operands(rng, M, N, K, ta, tb)
            check_mm(a, b, ta, tb, what=f"{isa} M={M} N={N} K={K} trans {ta, tb}")


def test_all_blocks_crossed_with_alpha_beta(isa, threads, rng):
    """several NC, KC and MC blocks at once: beta only on the first K block"""
    MR, NR, KC, MC, NC = _C.gemm_blocking()
    M, N, K = MC + MR + 1, NC + NR + 1, KC + 3
    for ta, tb in [(False, False), (True, True)]:
        a, b = operands(rng, M, N, K, ta, tb)
        check_mm(a, b, ta, tb, alpha=-0.75, beta=0.5, out=rnd(rng, (M, N)))
        nan_out = np.full((M, N), np.nan, np.float32)
        got = check_mm(a, b, ta, tb, alpha=1.5, out=nan_out)
        assert not np.isnan(got).any()
    # the same through the strided-batched driver (one product per thread)
    a, b = operands(rng, M, N, K, False, True, (2,), (2,))
    check_mm(a, b, False, True, alpha=2.0, beta=-1.0, out=rnd(rng, (2, M, N)))


# ---- transposes and layouts ---------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_2d(layout, isa, rng):
    MR, NR, *_ = _C.gemm_blocking()
    M, N, K = MR + 3, NR + 5, 19
    make = LAYOUTS[layout]
    for ta, tb in TRANS:
        for partner in PARTNERS:
            a, b = operands(rng, M, N, K, ta, tb)
            for xa, xb in [(make(a), LAYOUTS[partner](b)), (LAYOUTS[partner](a), make(b))]:
                want_a = np.asarray(xa, dtype=np.float64)
                want_b = np.asarray(xb, dtype=np.float64)
                got = ops.matmul(xa, xb, trans_a=ta, trans_b=tb)
                ref, bound = reference(want_a, want_b, ta, tb)
                assert_within(got, ref, bound, f"{isa} {layout}/{partner} trans {ta, tb}")


@pytest.mark.parametrize("layout", [k for k in LAYOUTS if k not in ("int", "list")])
def test_layouts_batched(layout, isa, rng):
    MR, NR, *_ = _C.gemm_blocking()
    M, N, K, B = MR + 1, NR + 2, 9, 3
    make = LAYOUTS[layout]
    for ta, tb in TRANS:
        for partner in PARTNERS:
            a, b = operands(rng, M, N, K, ta, tb, (B,), (B,))
            for xa, xb in [(make(a), LAYOUTS[partner](b)), (LAYOUTS[partner](a), make(b))]:
                got = ops.matmul(xa, xb, trans_a=ta, trans_b=tb)
                ref, bound = reference(xa, xb, ta, tb)
                assert_within(got, ref, bound, f"{isa} {layout}/{partner} trans {ta, tb}")


def test_transpose_flag_on_transposed_view(isa, rng):
    """trans_a=True on a.T (and trans_b on b.T) is the plain product"""
    a, b = rnd(rng, (13, 21)), rnd(rng, (21, 17))
    ref, bound = reference(a, b)
    assert_within(ops.matmul(a.T, b, trans_a=True), ref, bound)
    assert_within(ops.matmul(a, b.T, trans_b=True), ref, bound)
    assert_within(ops.matmul(a.T, b.T, trans_a=True, trans_b=True), ref, bound)
    assert_within(ops.matmul(np.asfortranarray(a), np.asfortranarray(b)), ref, bound)


def test_single_row_and_column_views(isa, rng):
    """size-1 axes with odd strides: x[:, None], x[None, :], every other element"""
    x, y = rnd(rng, 40), rnd(rng, 33)
    for a, b in [(x[:, None], y[None, :]), (x[None, :], rnd(rng, (40, 3))),
                 (x[::2][:, None], y[::3][None, :]), (rnd(rng, (5, 40)), x[:, None]),
                 (rnd(rng, (5, 20)), x[::2][:, None]), (x[None, ::2], x[::2][:, None])]:
        ref, bound = reference(a, b)
        assert_within(ops.matmul(a, b), ref, bound, f"{a.shape}{a.strides} @ {b.shape}{b.strides}")


# ---- alpha, beta, out ----------------------------------------------------------------
ALPHAS = [1.0, -1.0, 0.5, 0.3, 0.0, -2.75, np.float32(1.5), 3]
BETAS = [0.0, 1.0, -0.5, 2.0, 0.1, np.float64(1.0)]


def test_alpha_beta(isa, rng):
    MR, NR, KC, *_ = _C.gemm_blocking()
    for M, N, K in [(MR + 1, NR + 1, 7), (2 * MR + 3, 2 * NR + 1, KC + 5)]:
        for alpha in ALPHAS:
            for beta in BETAS:
                ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
                a, b = operands(rng, M, N, K, ta, tb)
                check_mm(a, b, ta, tb, alpha=alpha, beta=beta, out=rnd(rng, (M, N)),
                         what=f"{isa} {M, N, K} alpha={alpha} beta={beta}")


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_beta_zero_never_reads_out(fill, isa, rng):
    MR, NR, KC, *_ = _C.gemm_blocking()
    for M, N, K in [(MR + 1, NR + 1, 7), (3, 5, KC + 1), (MR, NR, 1)]:
        out = np.full((M, N), fill, np.float32)
        a, b = operands(rng, M, N, K, False, False)
        got = check_mm(a, b, alpha=0.5, out=out)
        assert np.isfinite(got).all()
        out3 = np.full((2, M, N), fill, np.float32)
        a3, b3 = operands(rng, M, N, K, False, False, (2,), (2,))
        assert np.isfinite(check_mm(a3, b3, out=out3)).all()
        out3 = np.full((2, M, N), fill, np.float32)  # (B, M, K) @ (K, N): the folded path
        assert np.isfinite(check_mm(a3, b3[0], out=out3)).all()


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.asmatrix
def test_out_is_returned(isa, rng):
    a, b = rnd(rng, (6, 4)), rnd(rng, (4, 9))
    out = np.empty((6, 9), np.float32)
    assert ops.matmul(a, b, out=out) is out
    out3 = np.empty((3, 6, 9), np.float32)
    assert ops.matmul(rnd(rng, (3, 6, 4)), b, out=out3) is out3
    m = np.asmatrix(np.zeros((6, 9), np.float32))
    assert ops.matmul(a, b, out=m) is m
    ref, bound = reference(a, b)
    assert_within(np.asarray(m), ref, bound)


def test_out_aliasing_an_input(isa, rng):
    for n in (7, 70):
        a, b = rnd(rng, (n, n)), rnd(rng, (n, n))
        ref, bound = reference(a, b)
        x = a.copy()
        assert_within(ops.matmul(x, b, out=x), ref, bound, "out=a")
        y = b.copy()
        assert_within(ops.matmul(a, y, out=y), ref, bound, "out=b")
        z = a.copy()
        assert_within(ops.matmul(z, z, out=z), *reference(a, a), "a @ a, out=a")
        x = a.copy()  # beta: out's old contents (= a) are C
        assert_within(ops.matmul(x, b, beta=1.0, out=x), *reference(a, b, beta=1.0, c=a),
                      "beta=1, out=a")
        x = a.copy()  # out = a.T as a transposed view of the same memory
        assert_within(ops.matmul(x.T, b, out=x), *reference(a.T, b), "a.T @ b, out=a")
    # partial overlap: out starts 3 floats into a's buffer
    M, K, N = 9, 11, 9
    buf = rnd(rng, M * K + 50)
    a, b = buf[:M * K].reshape(M, K), rnd(rng, (K, N))
    out = buf[3:3 + M * N].reshape(M, N)
    a0, out0 = a.copy(), out.copy()
    got = ops.matmul(a, b, alpha=-1.0, beta=0.5, out=out)
    assert got is out
    assert_within(got, *reference(a0, b, alpha=-1.0, beta=0.5, c=out0), "partial overlap")
    # batched: out is a
    a3, b3 = rnd(rng, (3, 8, 8)), rnd(rng, (3, 8, 8))
    x = a3.copy()
    assert_within(ops.matmul(x, b3, out=x), *reference(a3, b3), "batched out=a")
    y = b3.copy()
    assert_within(ops.matmul(a3[0], y, out=y), *reference(a3[0], b3), "2d @ batched, out=b")


def test_out_overlapping_with_a_vector_shaped_view_operand(isa, rng):
    """Found by the fuzz campaign (F4): the copy made because `out` overlaps one operand
    turned the other one, a transposed or stride-0 vector view, from column- to row-major,
    and the transpose flag computed before the copy made the kernel refuse the call."""
    a = rnd(rng, (1, 8)).T                                  # (8, 1), a transposed view
    buf = rnd(rng, 36)
    b, out = buf[:32].reshape(8, 4), buf[30:34].reshape(1, 4)   # out overlaps b
    want = reference(a.T, b.copy())
    assert_within(ops.matmul(a, b, trans_a=True, out=out), *want, "a.T @ b, out overlaps b")
    col = np.broadcast_to(rnd(rng, (8, 1)), (8, 1))           # strides (4, 0)
    buf = rnd(rng, 72)
    row, out = buf[:8].reshape(1, 8), buf[:64].reshape(8, 8)   # out overlaps row
    want = reference(np.array(col), row.copy())
    assert_within(ops.matmul(col, row, out=out), *want, "stride-0 column @ row, out overlaps")


def test_inputs_are_not_modified(isa, rng):
    a, b = rnd(rng, (9, 12)), rnd(rng, (12, 7))
    a0, b0 = a.copy(), b.copy()
    ops.matmul(a, b, trans_a=False)
    ops.matmul(a.T, b.T, trans_a=True, trans_b=True)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


# ---- empty products ------------------------------------------------------------------
def test_k_zero(isa, rng):
    for M, N in [(3, 5), (1, 1), (17, 40)]:
        a, b = np.zeros((M, 0), np.float32), np.zeros((0, N), np.float32)
        got = ops.matmul(a, b)
        assert got.shape == (M, N) and np.array_equal(got, np.zeros((M, N)))
        assert np.array_equal(ops.matmul(a, b, alpha=2.5), np.zeros((M, N)))
        assert np.array_equal(ops.matmul(b, a, trans_a=True, trans_b=True), np.zeros((N, M)))
        out = np.full((M, N), np.nan, np.float32)
        assert ops.matmul(a, b, out=out) is out
        assert np.array_equal(out, np.zeros((M, N)))  # beta = 0: old NaN does not leak
        c = rnd(rng, (M, N))
        out = c.copy()
        got = ops.matmul(a, b, alpha=3.0, beta=-1.5, out=out)
        assert_within(got, -1.5 * c.astype(np.float64), 4 * EPS32 * 1.5 * np.abs(c))
        # batched, and the (B, M, 0) @ (0, N) broadcast
        for bshape in [(4, 0, N), (0, N), (1, 0, N)]:
            got = ops.matmul(np.zeros((4, M, 0), np.float32), np.zeros(bshape, np.float32))
            assert got.shape == (4, M, N) and not got.any()
        out = c[None].repeat(2, 0)
        got = ops.matmul(np.zeros((2, M, 0), np.float32), np.zeros((0, N), np.float32),
                         beta=2.0, out=out)
        assert np.array_equal(got, 2 * c[None].repeat(2, 0))


def test_k_zero_ignores_alpha():
    a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    c = np.ones((3, 4), np.float32)
    assert np.array_equal(ops.matmul(a, b, alpha=np.inf), np.zeros((3, 4)))
    assert np.array_equal(ops.matmul(a, b, alpha=np.inf, beta=2.0, out=c.copy()), 2 * c)


def test_alpha_zero_ignores_operands():
    a = np.array([[np.inf, 1.0]], np.float32)
    got = ops.matmul(a, np.ones((2, 2), np.float32), alpha=0.0)
    assert np.array_equal(got, np.zeros((1, 2)))


def test_m_or_n_zero(isa, rng):
    for (M, N, K) in [(0, 5, 3), (4, 0, 3), (0, 0, 3), (0, 0, 0), (0, 5, 0)]:
        a, b = rnd(rng, (M, K)), rnd(rng, (K, N))
        assert ops.matmul(a, b).shape == (M, N)
        assert ops.matmul(b.T, a.T).shape == (N, M)
        assert ops.matmul(a.T, b, trans_a=True).shape == (M, N)
        out = np.empty((M, N), np.float32)
        assert ops.matmul(a, b, beta=1.0, out=out) is out
        assert ops.matmul(rnd(rng, (3, M, K)), b).shape == (3, M, N)
        assert ops.matmul(a, rnd(rng, (3, K, N))).shape == (3, M, N)
        assert ops.matmul(rnd(rng, (3, M, K)), rnd(rng, (1, K, N))).shape == (3, M, N)


@pytest.mark.parametrize("shapes", [((0, 3, 4), (0, 4, 5)), ((0, 3, 4), (4, 5)),
                                    ((3, 4), (0, 4, 5)), ((0, 3, 4), (1, 4, 5))],
                         ids=["0x0", "0x2d", "2dx0", "0x1"])
def test_empty_batch(shapes):
    a, b = np.zeros(shapes[0], np.float32), np.zeros(shapes[1], np.float32)
    want = np.matmul(a, b).shape  # (0, 3, 5)
    assert ops.matmul(a, b).shape == want


# ---- batches -------------------------------------------------------------------------
def _bcast(x, B):
    """np.broadcast_to of one matrix to a batch (batch stride 0)"""
    return np.broadcast_to(x[0] if x.ndim == 3 else x, (B,) + x.shape[-2:])


@pytest.mark.parametrize("case", ["BxB", "Bx2d", "2dxB", "1xB", "Bx1", "1x1", "1x2d",
                                  "bcast_a", "bcast_b", "bcast_both"])
def test_batched_broadcasting(case, isa, rng):
    MR, NR, *_ = _C.gemm_blocking()
    M, N, K, B = MR + 2, NR + 1, 13, 4
    shapes = {"BxB": ((B,), (B,)), "Bx2d": ((B,), ()), "2dxB": ((), (B,)), "1xB": ((1,), (B,)),
              "Bx1": ((B,), (1,)), "1x1": ((1,), (1,)), "1x2d": ((1,), ()),
              "bcast_a": ((1,), (B,)), "bcast_b": ((B,), (1,)), "bcast_both": ((1,), (1,))}
    for ta, tb in TRANS:
        for view in ["contig", "transposed", "wide"]:
            a, b = operands(rng, M, N, K, ta, tb, *shapes[case])
            a, b = LAYOUTS[view](a), LAYOUTS[view](b)
            if case in ("bcast_a", "bcast_both"):
                a = _bcast(a, B)
            if case in ("bcast_b", "bcast_both"):
                b = _bcast(b, B)
            got = ops.matmul(a, b, trans_a=ta, trans_b=tb)
            assert_within(got, *reference(a, b, ta, tb), f"{isa} {case} {view} trans {ta, tb}")
            out = rnd(rng, got.shape)
            check_mm(a, b, ta, tb, alpha=0.5, beta=-1.0, out=out, what=f"{case} {view} beta")


def test_attention_style_views(isa, rng):
    """q @ k.transpose(0, 2, 1), the same with trans_b, then @ v; k.T-style views"""
    B, T, D = 3, 37, 20
    q, k, v = rnd(rng, (B, T, D)), rnd(rng, (B, T, D)), rnd(rng, (B, T, D))
    ref, bound = reference(q, k, trans_b=True)
    assert_within(ops.matmul(q, k.transpose(0, 2, 1)), ref, bound)
    assert_within(ops.matmul(q, k, trans_b=True), ref, bound)
    assert_within(ops.matmul(q, np.ascontiguousarray(k.transpose(0, 2, 1))), ref, bound)
    s = ops.matmul(q, k, trans_b=True)
    assert_within(ops.matmul(s, v), *reference(s, v))
    assert_within(ops.matmul(s.transpose(0, 2, 1), v, trans_a=True), *reference(s, v))
    # (B, T, D) -> heads split as a strided view: qh[b, t, :] = q[b, t, :D/2]
    qh, kh = q[:, :, :D // 2], k[:, :, D // 2:]
    assert_within(ops.matmul(qh, kh.transpose(0, 2, 1)), *reference(qh, kh, trans_b=True))
    # batch axis from the other end: x.transpose(1, 0, 2) (batch stride < matrix size)
    xt = q.transpose(1, 0, 2)  # (T, B, D), strides (D, T*D, 1)
    assert_within(ops.matmul(xt, v[0, :D].T), *reference(xt, v[0, :D].T))


def test_batch_one_fold_paths(isa, rng):
    """(B, M, K) @ (K, N) is folded into one product when a is contiguous; check both
    the folded and unfolded variants (row-strided / transposed a) agree with NumPy"""
    MR, NR, *_ = _C.gemm_blocking()
    B, M, N, K = 5, 2 * MR + 1, NR + 3, 30
    a = rnd(rng, (B, M, K))
    for b in [rnd(rng, (K, N)), rnd(rng, (1, K, N)), rnd(rng, (N, K)).T]:
        for xa in [a, _wide(a), _row_step(a), _transposed_storage(a), _batch_step(a),
                   a[:, :1, :], rnd(rng, (B, K))[:, None, :], a[:1]]:
            assert_within(ops.matmul(xa, b), *reference(xa, b), f"{xa.strides} @ {b.shape}")


# ---- threads --------------------------------------------------------------------------
THREAD_COUNTS = (1, 2, 3, 4)


def same_for_thread_counts(fn, what=""):
    """fn() under 1, 2, 3 and 4 threads, asserted bitwise equal; returns the 1-thread result."""
    results = []
    for n in THREAD_COUNTS:
        with fastnn.num_threads(n):
            results.append(fn())
    for n, got in zip(THREAD_COUNTS[1:], results[1:]):
        assert got.tobytes() == results[0].tobytes(), f"{what}: {n} threads differ from 1"
    return results[0]


@pytest.mark.parametrize("case", ["300x260x200", "batched", "fold", "2dxB", "broadcast"])
def test_any_thread_count_bitwise_equal(case, isa, rng):
    if case == "300x260x200":
        M, N, K = 300, 260, 200
        calls = []
        for ta, tb in TRANS:
            a, b = operands(rng, M, N, K, ta, tb)
            calls.append((a, b, ta, tb))
    elif case == "batched":
        calls = [(rnd(rng, (4, 100, 90)), rnd(rng, (4, 90, 110)), False, False),
                 (rnd(rng, (3, 90, 100)), rnd(rng, (3, 110, 90)), True, True)]
    elif case == "fold":
        calls = [(rnd(rng, (8, 64, 70)), rnd(rng, (70, 130)), False, False)]
    elif case == "2dxB":
        calls = [(rnd(rng, (64, 70)), rnd(rng, (3, 70, 150)), False, False)]
    else:
        calls = [(_bcast(rnd(rng, (70, 80)), 3), rnd(rng, (1, 80, 190)), False, False)]
    for a, b, ta, tb in calls:
        c0 = rnd(rng, np.matmul(op64(a, ta), op64(b, tb)).shape)

        def run():
            return ops.matmul(a, b, trans_a=ta, trans_b=tb, alpha=0.7, beta=0.3, out=c0.copy())
        one = same_for_thread_counts(run, f"{case} trans {ta, tb}")
        assert_within(one, *reference(a, b, ta, tb, 0.7, 0.3, c0))


# ---- linear ----------------------------------------------------------------------------
_erf = np.frompyfunc(math.erf, 1, 1)
REF_ACTS = {
    None: lambda z: z,
    "none": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "gelu": lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)).astype(np.float64)),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "gelu_tanh": lambda z: 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi)
                                                    * (z + 0.044715 * z ** 3))),
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "mish": lambda z: z * np.tanh(np.logaddexp(0.0, z)),
    "hardswish": lambda z: z * np.clip(z + 3.0, 0.0, 6.0) / 6.0,
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "selu": lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0.0))),
}
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
MAX_SLOPE = {None: 1.0, "none": 1.0, "relu": 1.0, "gelu": 1.13, "sigmoid": 0.25, "tanh": 1.0,
             "gelu_tanh": 1.13, "silu": 1.1, "mish": 1.09, "hardswish": 1.5, "elu": 1.0,
             "selu": SELU_ALPHA * SELU_SCALE}
# the element-wise op each epilogue activation is, and its backward (from the input)
ELEMENTWISE = {
    "relu": (ops.relu, None), "sigmoid": (ops.sigmoid, None), "tanh": (ops.tanh, None),
    "gelu": (ops.gelu, ops.gelu_backward),
    "gelu_tanh": (lambda x: ops.gelu(x, "tanh"), lambda g, x: ops.gelu_backward(g, x, "tanh")),
    "silu": (ops.silu, ops.silu_backward), "mish": (ops.mish, ops.mish_backward),
    "hardswish": (ops.hardswish, ops.hardswish_backward), "elu": (ops.elu, ops.elu_backward),
    "selu": (ops.selu, ops.selu_backward),
}
ACT_RTOL = 8e-6  # the vector activations' own error (test_activations checks 4e-6)


def linear_reference(x, w, bias, activation):
    X, W = np.asarray(x, np.float64), np.asarray(w, np.float64)
    z = X @ W.T
    mag = np.abs(X) @ np.abs(W).T
    if bias is not None:
        z = z + np.asarray(bias, np.float64)
        mag = mag + np.abs(np.asarray(bias, np.float64))
    y = REF_ACTS[activation](z)
    bound = (W.shape[1] + 4) * EPS32 * mag * MAX_SLOPE[activation] + ACT_RTOL * np.abs(y) + 1e-37
    return y, bound


@pytest.mark.parametrize("activation", list(REF_ACTS))
@pytest.mark.parametrize("x_kind", ["2d", "1d", "3d", "2d_transposed_view"])
def test_linear(activation, x_kind, isa, rng):
    MR, NR, KC, *_ = _C.gemm_blocking()
    for n_in, n_out in [(1, 1), (7, NR + 1), (KC + 3, 2 * NR + 5)]:
        shape = {"2d": (MR + 2, n_in), "1d": (n_in,), "3d": (2, 5, n_in),
                 "2d_transposed_view": (n_in, 9)}[x_kind]
        x = rnd(rng, shape, 1.5)
        if x_kind == "2d_transposed_view":
            x = x.T
        w = rnd(rng, (n_out, n_in), 1.0 / math.sqrt(n_in))
        for bias in [rnd(rng, n_out), None]:
            got = ops.linear(x, w, bias, activation)
            assert got.shape == x.shape[:-1] + (n_out,)
            assert_within(got, *linear_reference(x, w, bias, activation),
                          f"{isa} {activation} x {x.shape} w {w.shape} bias {bias is not None}")


def test_linear_keywords_out_and_layouts(isa, rng):
    x, w, b = rnd(rng, (11, 20)), rnd(rng, (13, 20)), rnd(rng, 13)
    want = linear_reference(x, w, b, "tanh")
    out = np.full((11, 13), np.nan, np.float32)
    got = ops.linear(x, w, bias=b, activation="tanh", out=out)
    assert got is out
    assert_within(got, *want)
    for xx, ww, bb in [(x.tolist(), w, b), (x, _transposed_storage(w), b), (x, w, b.tolist()),
                       (_wide(x), _row_step(w), b[::-1].copy()[::-1]),
                       (x.astype(np.float64), w.astype(">f4"), b.astype(np.float16))]:
        ref = linear_reference(np.asarray(xx, np.float64), np.asarray(ww, np.float64),
                               np.asarray(bb, np.float32), "tanh")
        assert_within(ops.linear(xx, ww, bb, "tanh"), *ref)
    x3 = rnd(rng, (2, 3, 20))
    out3 = np.empty((2, 3, 13), np.float32)
    assert ops.linear(x3, w, b, out=out3) is out3
    assert_within(out3, *linear_reference(x3, w, b, None))


def test_linear_empty(isa, rng):
    w, b = rnd(rng, (6, 0)), rnd(rng, 6)
    for act in REF_ACTS:  # in_features = 0: act(bias) on every row
        got = ops.linear(np.zeros((4, 0), np.float32), w, b, act)
        assert_within(got, *linear_reference(np.zeros((4, 0)), w, b, act))
        got = ops.linear(np.zeros((4, 0), np.float32), w, None, act)
        assert_within(got, *linear_reference(np.zeros((4, 0)), w, None, act))
    out = np.full((4, 6), np.nan, np.float32)
    assert not np.isnan(ops.linear(np.zeros((4, 0), np.float32), w, out=out)).any()
    assert ops.linear(rnd(rng, (0, 5)), rnd(rng, (3, 5)), rnd(rng, 3), "relu").shape == (0, 3)
    assert ops.linear(rnd(rng, (2, 0, 5)), rnd(rng, (3, 5))).shape == (2, 0, 3)
    assert ops.linear(rnd(rng, (4, 5)), rnd(rng, (0, 5)), rnd(rng, 0), "gelu").shape == (4, 0)
    assert ops.linear(np.zeros(0, np.float32), w).shape == (6,)


def test_linear_partial_overlap_out(isa, rng):
    buf = rnd(rng, 400)
    x = buf[:12 * 10].reshape(12, 10)
    w, b = rnd(rng, (10, 10)), rnd(rng, 10)
    out = buf[5:5 + 120].reshape(12, 10)
    x0 = x.copy()
    assert_within(ops.linear(x, w, b, "relu", out=out), *linear_reference(x0, w, b, "relu"))


@pytest.mark.parametrize("which", ["x", "weight"])
def test_linear_out_is_an_input(which, threads, rng):
    n = 300
    x, w = rnd(rng, (n, n)), rnd(rng, (n, n), 1 / math.sqrt(n))
    ref = linear_reference(x, w, None, None)
    if which == "x":
        xx = x.copy()
        got = ops.linear(xx, w, out=xx)
    else:
        ww = w.copy()
        got = ops.linear(x, ww, out=ww)
    assert_within(got, *ref)


def test_linear_any_thread_count_bitwise_equal(isa, rng):
    x, w, b = rnd(rng, (257, 300)), rnd(rng, (190, 300), 0.06), rnd(rng, 190)
    for act in ["gelu", None]:
        one = same_for_thread_counts(lambda: ops.linear(x, w, b, act), act)
        assert_within(one, *linear_reference(x, w, b, act))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros(3)), ValueError, r"\bweight\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((1, 4, 3))), ValueError, r"\bweight\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, r"\bx\b.*\(2, 3\)"),
    (lambda: ops.linear(np.zeros(4), np.zeros((4, 5))), ValueError, r"\bx\b"),
    (lambda: ops.linear(np.float32(1), np.zeros((4, 1))), ValueError, r"\bx\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(3)), ValueError, r"\bbias\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros((1, 4))), ValueError, r"\bbias\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), 1.0), ValueError, r"\bbias\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), None, "softmax"), ValueError, r"\bactivation\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), None, "RELU"), ValueError, r"\bactivation\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), None, 1), ValueError, r"\bactivation\b"),
    (lambda: ops.linear("abc", np.zeros((4, 3))), TypeError, r"\bx\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3), complex)), TypeError, r"\bweight\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), ["a"] * 4), TypeError, r"\bbias\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), out=np.zeros((2, 4))), TypeError, r"\bout\b"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), out=np.zeros((4, 2), np.float32)), ValueError, r"\bout\b"),
], ids=[f"e{i}" for i in range(16)])
def test_linear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_linear_unhashable_activation_is_rejected():
    with pytest.raises((TypeError, ValueError)):
        ops.linear(np.zeros((2, 3)), np.zeros((4, 3)), None, ["relu"])


# ---- linear_bias_backward ---------------------------------------------------------------
def colsum_reference(g):
    G = np.asarray(g, np.float64)
    G2 = G.reshape(int(np.prod(G.shape[:-1])), G.shape[-1])
    return G2.sum(axis=0), (G2.shape[0] + 2) * EPS32 * np.abs(G2).sum(axis=0)


@pytest.mark.parametrize("shape", [(1,), (17,), (5, 1), (1, 33), (7, 40), (3, 4, 65), (0, 9),
                                   (6, 0), (2, 0, 3), (1000, 37)])
def test_linear_bias_backward(shape, isa, rng):
    g = rnd(rng, shape)
    got = ops.linear_bias_backward(g)
    assert got.shape == (shape[-1],)
    assert_within(got, *colsum_reference(g))
    if len(shape) >= 2:  # non-contiguous input
        gt = _transposed_storage(g)
        assert_within(ops.linear_bias_backward(gt), *colsum_reference(gt))
    out = np.full(shape[-1], np.nan, np.float32)
    assert ops.linear_bias_backward(g, out=out) is out
    assert_within(out, *colsum_reference(g))
    start = rnd(rng, (shape[-1],))
    acc = start.copy()
    assert ops.linear_bias_backward(g, out=acc, accumulate=True) is acc
    ref, err = colsum_reference(g)
    assert_within(acc, ref + start, err + EPS32 * np.abs(ref + start))


def test_linear_bias_backward_threads_bitwise(isa, rng):
    for shape in [(2000, 300), (4, 500, 77), (30000, 5)]:
        g = rnd(rng, shape)
        one = same_for_thread_counts(lambda: ops.linear_bias_backward(g), shape)
        assert_within(one, *colsum_reference(g))


def test_linear_bias_backward_errors():
    with pytest.raises(ValueError, match=r"\bgrad_out\b"):
        ops.linear_bias_backward(np.float32(1.0))
    with pytest.raises(TypeError, match=r"\bgrad_out\b"):
        ops.linear_bias_backward(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.linear_bias_backward(np.zeros((3, 4), np.float32), out=np.zeros(3, np.float32))
    with pytest.raises(TypeError, match=r"\bout\b"):
        ops.linear_bias_backward(np.zeros((3, 4), np.float32), out=np.zeros(4))
    with pytest.raises(ValueError, match=r"accumulate.*\bout="):
        ops.linear_bias_backward(np.zeros((3, 4), np.float32), accumulate=True)


# ---- bad matmul calls ---------------------------------------------------------------------
F = np.zeros((2, 3), np.float32)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: ops.matmul(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, r"\(2, 3\).*\(4, 5\)"),
    (lambda: ops.matmul(np.zeros((2, 3)), np.zeros((2, 3)), trans_b=False), ValueError, r"\(2, 3\).*\(2, 3\)"),
    (lambda: ops.matmul(np.zeros((2, 3)), np.zeros((4, 3)), trans_a=True, trans_b=True), ValueError, r"inner"),
    (lambda: ops.matmul(np.zeros((5, 2, 3)), np.zeros((5, 4, 2))), ValueError, r"\(5, 2, 3\).*\(5, 4, 2\)"),
    (lambda: ops.matmul(np.zeros(3), np.zeros((3, 2))), ValueError, r"\ba\b.*2-D"),
    (lambda: ops.matmul(np.zeros((2, 3)), np.zeros(3)), ValueError, r"\bb\b"),
    (lambda: ops.matmul(np.float32(2), F), ValueError, r"\ba\b"),
    (lambda: ops.matmul(np.zeros((1, 2, 2, 3)), np.zeros((3, 2))), ValueError, r"\ba\b"),
    (lambda: ops.matmul(np.zeros((2, 3)), np.zeros((1, 1, 3, 2))), ValueError, r"\bb\b"),
    (lambda: ops.matmul(np.zeros((2, 3), complex), np.zeros((3, 2))), TypeError, r"\ba\b"),
    (lambda: ops.matmul(F, np.zeros((3, 2), np.complex64)), TypeError, r"\bb\b"),
    (lambda: ops.matmul(np.array([["a", "b"]]), F), TypeError, r"\ba\b"),
    (lambda: ops.matmul(F, "abc"), TypeError, r"\bb\b"),
    (lambda: ops.matmul(F, np.zeros((3, 2), object)), TypeError, r"\bb\b"),
    (lambda: ops.matmul([[1, 2], [3]], F), TypeError, r"\ba\b"),
    (lambda: ops.matmul(F, F.T, beta=1.0), ValueError, r"\bout\b"),
    (lambda: ops.matmul(F, F.T, beta=0.5), ValueError, r"\bbeta\b"),
    (lambda: ops.matmul(F, F.T, out=np.zeros((2, 3), np.float32)), ValueError, r"\bout\b.*shape"),
    (lambda: ops.matmul(F, F.T, out=np.zeros((2, 2))), TypeError, r"\bout\b.*float32"),
    (lambda: ops.matmul(F, F.T, out=np.zeros((2, 2), np.complex64)), TypeError, r"\bout\b"),
    (lambda: ops.matmul(F, F.T, out=[[0.0, 0.0], [0.0, 0.0]]), TypeError, r"\bout\b"),
    (lambda: ops.matmul(F, F.T, out=np.zeros((2, 4), np.float32)[:, ::2]), ValueError, r"\bout\b.*contiguous"),
    (lambda: ops.matmul(F, F.T, out=_readonly(np.zeros((2, 2), np.float32))), ValueError, r"\bout\b"),
    (lambda: ops.matmul(np.zeros((2, 2, 3)), F.T, out=np.zeros((2, 2), np.float32)), ValueError, r"\bout\b"),
    (lambda: ops.matmul(np.zeros((2, 2, 3)), np.zeros((3, 3, 2))), ValueError, r"batch.*\b2\b.*\b3\b"),
    (lambda: ops.matmul(np.zeros((4, 2, 3)), np.zeros((2, 3, 2))), ValueError, r"batch"),
    (lambda: ops.matmul(F, F.T, alpha=float("nan")), ValueError, r"\balpha\b"),
    (lambda: ops.matmul(F, F.T, alpha="2"), TypeError, r"\balpha\b"),
    (lambda: ops.matmul(F, F.T, alpha=None), TypeError, r"\balpha\b"),
    (lambda: ops.matmul(F, F.T, alpha=1j), TypeError, r"\balpha\b"),
    (lambda: ops.matmul(F, F.T, alpha=10 ** 400), ValueError, r"\balpha\b"),
    (lambda: ops.matmul(F, F.T, beta=float("nan"), out=np.zeros((2, 2), np.float32)), ValueError, r"\bbeta\b"),
    (lambda: ops.matmul(F, F.T, beta="1", out=np.zeros((2, 2), np.float32)), TypeError, r"\bbeta\b"),
], ids=[f"e{i}" for i in range(33)])
def test_matmul_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_failed_call_leaves_out_untouched():
    out = np.full((2, 2), 7.0, np.float32)
    with pytest.raises(ValueError):
        ops.matmul(F, np.zeros((4, 2), np.float32), out=out)
    assert (out == 7.0).all()


# ---- linear_backward ------------------------------------------------------------------
def _linear_backward_reference(g, x, w, activation=None, y=None):
    g = g.astype(np.float64)
    if activation == "relu":
        g = g * (y > 0)
    elif activation == "sigmoid":
        g = g * y * (1 - y)
    elif activation == "tanh":
        g = g * (1 - y.astype(np.float64) ** 2)
    g2 = g.reshape(-1, w.shape[0])
    x2 = x.astype(np.float64).reshape(-1, w.shape[1])
    return g2.T @ x2, g2.sum(0), (g2 @ w).reshape(x.shape)


@pytest.mark.parametrize("shape", [(7,), (5, 7), (2, 3, 7), (0, 7), (40, 7)])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_linear_backward(shape, activation, isa, rng):
    x, w, b = rnd(rng, shape), rnd(rng, (6, 7)), rnd(rng, (6,))
    y = ops.linear(x, w, b, activation=activation)
    g = rnd(rng, y.shape)
    gw0, gb0 = rnd(rng, (6, 7)), rnd(rng, (6,))
    _check_linear_backward(g, x, w, gw0, gb0, activation,
                           _linear_backward_reference(g, x, w, activation, y), output=y)


def _check_linear_backward(g, x, w, gw0, gb0, activation, reference, **saved):
    """linear_backward accumulates into copies of gw0, gb0 and returns dx as reference says."""
    gw, gb = gw0.copy(), gb0.copy()
    dx = ops.linear_backward(g, x, w, grad_weight=gw, grad_bias=gb, activation=activation,
                             **saved)
    rw, rb, rx = reference
    tol = 1e-5 * (1 + np.abs(rw).max() if rw.size else 1)
    np.testing.assert_allclose(gw, gw0 + rw, rtol=1e-5, atol=tol)
    np.testing.assert_allclose(gb, gb0 + rb, rtol=1e-5, atol=tol)
    np.testing.assert_allclose(dx, rx, rtol=1e-5, atol=1e-5)
    assert ops.linear_backward(g, x, w, input_grad=False, activation=activation,
                               **saved) is None


def test_linear_backward_aliasing_and_errors(rng):
    x, w = rnd(rng, (4, 3)), rnd(rng, (3, 3))
    g = rnd(rng, (4, 3))
    gw = g[:3].copy()
    ref = _linear_backward_reference(g, x, w)
    ops.linear_backward(g, x, w, grad_weight=gw)  # plain case
    np.testing.assert_allclose(gw, g[:3] + ref[0], rtol=1e-5, atol=1e-5)
    buf = np.concatenate([rnd(rng, (3, 3)).ravel(), g.ravel()]).astype(np.float32)
    gw_view, g_view = buf[:9].reshape(3, 3), buf[5:17].reshape(4, 3)  # overlapping
    before, g_copy = gw_view.copy(), g_view.copy()
    ops.linear_backward(g_view, x, w, grad_weight=gw_view)
    r = _linear_backward_reference(g_copy, x, w)
    np.testing.assert_allclose(gw_view, before + r[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        ops.linear_backward(np.zeros((4, 2), np.float32), x, w)
    with pytest.raises(ValueError, match="grad_weight must have shape"):
        ops.linear_backward(g, x, w, grad_weight=np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="grad_bias"):
        ops.linear_backward(g, x, w, grad_bias=np.zeros(3))
    with pytest.raises(ValueError, match="output="):
        ops.linear_backward(g, x, w, activation="relu")
    with pytest.raises(ValueError, match="pre-activation"):
        ops.linear_backward(g, x, w, activation="gelu", output=g)
    with pytest.raises(ValueError, match="activation must be"):
        ops.linear_backward(g, x, w, activation="swish", output=g)


# ---- gelu fused into linear: the pre-activation output and the gelu backward ----------
def _gelu_grad64(z, activation):
    """d gelu / dz in float64, erf form or tanh form."""
    z = np.asarray(z, np.float64)
    if activation == "gelu":
        cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)).astype(np.float64))
        return cdf + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    k0, k1 = math.sqrt(2.0 / math.pi), 0.044715
    t = np.tanh(k0 * (z + k1 * z ** 3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * k0 * (1.0 + 3.0 * k1 * z * z)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu", None, "silu", "mish",
                                        "hardswish", "elu", "selu"])
def test_linear_preactivation_is_the_tile_before_the_activation(activation, isa, rng):
    MR, NR, KC, *_ = _C.gemm_blocking()
    for rows, n_in, n_out in [(3, 5, 4), (MR + 2, 7, NR + 1), (70, KC + 3, 2 * NR + 5)]:
        x, w, b = rnd(rng, (rows, n_in)), rnd(rng, (n_out, n_in), 0.3), rnd(rng, n_out)
        pre = np.full((rows, n_out), np.nan, np.float32)
        y = ops.linear(x, w, b, activation=activation, preactivation=pre)
        # the same GEMM without activation gives the same bits: stored from the same tile
        assert pre.tobytes() == ops.linear(x, w, b).tobytes()
        assert y.tobytes() == ops.linear(x, w, b, activation=activation).tobytes()
        assert_within(pre, *linear_reference(x, w, b, None))


@pytest.mark.parametrize("activation", sorted(ELEMENTWISE))
def test_linear_epilogue_is_the_elementwise_op(activation, isa, rng):
    """A fused activation is the element-wise kernel's own (the same lane function):
    linear(..., act) equals act(linear(...)) bit for bit (relu up to the sign of
    a zero), and linear_backward through it equals linear_backward of the
    element-wise backward's gradient."""
    MR, NR, KC, *_ = _C.gemm_blocking()
    forward, backward = ELEMENTWISE[activation]
    for rows, n_in, n_out in [(3, 5, 4), (MR + 2, 7, NR + 1), (70, KC + 3, 2 * NR + 5)]:
        x, w, b = rnd(rng, (rows, n_in)), rnd(rng, (n_out, n_in), 0.5), rnd(rng, n_out)
        pre = np.empty((rows, n_out), np.float32)
        y = ops.linear(x, w, b, activation=activation, preactivation=pre)
        np.testing.assert_array_equal(y, forward(ops.linear(x, w, b)))
        if backward is None:  # from the output: covered by test_linear_backward_*
            continue
        g = rnd(rng, y.shape)
        grads = [np.zeros_like(w), np.zeros_like(b)]
        dx = ops.linear_backward(g, x, w, *grads, activation=activation, preactivation=pre)
        want = [np.zeros_like(w), np.zeros_like(b)]
        want_dx = ops.linear_backward(backward(g, pre), x, w, *want)
        for got, expected in zip([dx] + grads, [want_dx] + want):
            assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("activation", sorted(ELEMENTWISE))
def test_linear_epilogue_any_thread_count_bitwise_equal(activation, isa, rng):
    x, w, b = rnd(rng, (300, 70)), rnd(rng, (260, 70), 0.3), rnd(rng, 260)
    pre = np.empty((300, 260), np.float32)
    y = same_for_thread_counts(lambda: ops.linear(x, w, b, activation, None, pre), activation)
    g = rnd(rng, y.shape)

    def backward():
        gw = np.zeros_like(w)
        dx = ops.linear_backward(g, x, w, gw, None, True, activation, y, pre)
        return np.concatenate([dx.ravel(), gw.ravel()])
    same_for_thread_counts(backward, activation + " backward")


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("shape", [(7,), (5, 7), (2, 3, 7), (0, 7), (40, 7)])
def test_linear_backward_gelu(shape, activation, isa, rng):
    x, w, b = rnd(rng, shape), rnd(rng, (6, 7)), rnd(rng, (6,))
    pre = np.empty(shape[:-1] + (6,), np.float32)
    ops.linear(x, w, b, activation=activation, preactivation=pre)
    g = rnd(rng, pre.shape)
    gw0, gb0 = rnd(rng, (6, 7)), rnd(rng, (6,))
    ga = g.astype(np.float64) * _gelu_grad64(pre, activation)
    _check_linear_backward(g, x, w, gw0, gb0, activation, _linear_backward_reference(ga, x, w),
                           preactivation=pre)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "sigmoid", "silu", "mish",
                                        "hardswish", "elu", "selu"])
def test_linear_backward_finite_differences(activation, isa, rng):
    """4th-order central differences of sum(G * linear(x, w, b, act)) in float64 arithmetic
    on the float32 op: x, w and b entries against linear_backward."""
    x, w, b = rnd(rng, (3, 4)), rnd(rng, (5, 4), 0.5), rnd(rng, 5, 0.5)
    G = rnd(rng, (3, 5))
    pre = np.empty((3, 5), np.float32)
    y = ops.linear(x, w, b, activation=activation, preactivation=pre)
    gw, gb = np.zeros((5, 4), np.float32), np.zeros(5, np.float32)
    dx = ops.linear_backward(G, x, w, grad_weight=gw, grad_bias=gb, activation=activation,
                             output=y, preactivation=pre)

    def loss(xx, ww, bb):
        return float((G.astype(np.float64) * ops.linear(xx, ww, bb, activation=activation)).sum())

    h = 1e-2
    for arr, grad, idx in [(x, dx, (1, 2)), (w, gw, (3, 1)), (b, gb, (4,))]:
        def at(d):
            p = arr.copy()
            p[idx] += d
            args = {id(x): (p, w, b), id(w): (x, p, b), id(b): (x, w, p)}[id(arr)]
            return loss(*args)
        fd = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
        assert abs(fd - grad[idx]) <= 2e-3 * (1 + abs(fd)), (activation, idx, fd, grad[idx])


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_linear_gelu_threads_bitwise(activation, isa, rng):
    x, w, b = rnd(rng, (300, 200)), rnd(rng, (260, 200), 0.1), rnd(rng, 260)
    g = rnd(rng, (300, 260))

    def run():
        pre = np.empty((300, 260), np.float32)
        y = ops.linear(x, w, b, activation=activation, preactivation=pre)
        gw, gb = np.zeros((260, 200), np.float32), np.zeros(260, np.float32)
        dx = ops.linear_backward(g, x, w, grad_weight=gw, grad_bias=gb, activation=activation,
                                 preactivation=pre)
        return np.concatenate([a.ravel() for a in (y, pre, gw, gb, dx)])
    same_for_thread_counts(run, activation)


def test_linear_preactivation_errors(rng):
    x, w = rnd(rng, (4, 3)), rnd(rng, (5, 3))
    g = rnd(rng, (4, 5))
    with pytest.raises(ValueError, match=r"needs preactivation="):
        ops.linear_backward(g, x, w, activation="gelu_tanh")
    with pytest.raises(ValueError, match=r"preactivation must have the shape"):
        ops.linear_backward(g, x, w, activation="gelu", preactivation=np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\bpreactivation\b"):
        ops.linear(x, w, activation="gelu", preactivation=np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match=r"\bpreactivation\b"):
        ops.linear(x, w, activation="gelu", preactivation=np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"C-contiguous"):
        ops.linear(x, w, preactivation=np.zeros((5, 4), np.float32).T)
    buf = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"share memory"):
        ops.linear(x, w, out=buf, preactivation=buf)
    with pytest.raises(ValueError, match=r"activation must be one of None, 'relu'.*'gelu_tanh'"):
        ops.linear(x, w, activation="swish")


def test_activation_names_come_from_c():
    assert _C.ACTIVATIONS == ops.ACTIVATIONS
    assert _C.ACTIVATIONS[0] == "none" and "gelu_tanh" in _C.ACTIVATIONS
    assert set(_C.ISA_NAMES) == {"generic", "avx2", "avx512"}


def test_linear_bias_grad_is_a_deprecated_alias(rng):
    g = rnd(rng, (6, 5))
    with pytest.warns(DeprecationWarning, match="linear_bias_backward"):
        old = ops.linear_bias_grad(g)
    assert old.tobytes() == ops.linear_bias_backward(g).tobytes()
    assert _C.linear_bias_grad is ops.linear_bias_grad
