# matmul and linear on our SGEMM (csrc/gemm/), and the bias gradient.
#
# Layouts: a 2-D operand (or each matrix of a 3-D one) that is row-major with
# unit column stride, or column-major (a transposed view such as `w.T` or
# `k.transpose(0, 2, 1)`), is used in place through its leading dimension
# and a transpose flag; anything else (negative or odd strides) is copied to a
# C-contiguous array first.

cdef dict _ACTIVATIONS = {None: FNN_ACT_NONE, "none": FNN_ACT_NONE, "relu": FNN_ACT_RELU,
                          "gelu": FNN_ACT_GELU, "sigmoid": FNN_ACT_SIGMOID, "tanh": FNN_ACT_TANH}


cdef object as_float32_any_layout(object x, str name):
    """x as a float32 ndarray, keeping its strides when it already is one."""
    if isinstance(x, np.ndarray) and (<object>x).dtype is _float32:
        return x
    return as_float32(x, name)


cdef struct Operand:
    # one matmul operand as the C side sees it: (batch, rows, cols) floats at
    # data + b * batch_stride, row-major with leading dimension ld, or stored
    # transposed (column-major) when `transposed`
    const float *data
    int64_t ndim, batch, rows, cols, ld, batch_stride
    bint transposed


cdef object operand(object x, str name, Operand *op):
    """Fill *op for x; returns the array that owns the memory (keep it alive)."""
    arr = as_float32_any_layout(x, name)
    cdef cnp.ndarray a = <cnp.ndarray>arr
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd != 2 and nd != 3:
        raise ValueError(f"{name} must be a 2-D matrix or a 3-D batch of matrices, "
                         f"got shape {arr.shape}")
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef int64_t rows = dims[nd - 2], cols = dims[nd - 1]
    cdef int64_t s_row = strides[nd - 2], s_col = strides[nd - 1]
    cdef int64_t s_batch = strides[0] if nd == 3 else 0
    cdef bint row_major = s_col == 4 and s_row % 4 == 0 and (rows <= 1 or s_row >= 4 * cols)
    cdef bint col_major = (not row_major and s_row == 4 and s_col % 4 == 0
                           and (cols <= 1 or s_col >= 4 * rows))
    if not (row_major or col_major) or s_batch < 0 or s_batch % 4:
        arr = np.ascontiguousarray(arr)
        a = <cnp.ndarray>arr
        strides = cnp.PyArray_STRIDES(a)
        row_major, s_row, s_col = True, strides[nd - 2], 4
        s_batch = strides[0] if nd == 3 else 0
    op.ndim = nd
    op.batch = dims[0] if nd == 3 else 1
    op.rows, op.cols = rows, cols
    op.transposed = not row_major
    op.ld = max(s_row // 4 if row_major else s_col // 4, cols if row_major else rows, 1)
    op.batch_stride = s_batch // 4
    op.data = <const float *>cnp.PyArray_DATA(a) if cnp.PyArray_SIZE(a) > 0 else NULL
    return arr


cdef object new_float32(tuple shape):
    cdef cnp.npy_intp dims[3]
    cdef int nd = len(shape)
    for i in range(nd):
        dims[i] = shape[i]
    return cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT32, 0)


cdef float as_float_option(object value, str name) except? -1.0:
    v = as_real(value, name)
    if v != v:
        raise ValueError(f"{name} must not be NaN")
    return v


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """alpha * op(a) @ op(b) + beta * out, with op(x) = x.T (last two axes) when trans_x.

    2-D: a (M, K), b (K, N) -> (M, N). 3-D: batches of matrices, NumPy-style
    broadcasting of the batch axis: (B, M, K) @ (B, K, N), (B, M, K) @ (K, N),
    (M, K) @ (B, K, N), and batch size 1 against B. beta != 0 needs `out`
    (its old contents are C); with beta == 0 the old contents are never read.
    Transposed views and row-strided views are used in place; other layouts
    are copied. The result is the same for any thread count, bit for bit.
    """
    cdef Operand A, B
    a_arr = operand(a, "a", &A)
    b_arr = operand(b, "b", &B)
    cdef bint ta = bool(trans_a) != A.transposed
    cdef bint tb = bool(trans_b) != B.transposed
    cdef int64_t M = A.cols if trans_a else A.rows
    cdef int64_t K = A.rows if trans_a else A.cols
    cdef int64_t Kb = B.cols if trans_b else B.rows
    cdef int64_t N = B.rows if trans_b else B.cols
    if K != Kb:
        raise ValueError(f"matmul: inner dimensions differ: op(a) is ({M}, {K}) and op(b) is "
                         f"({Kb}, {N}) (a {a_arr.shape}, b {b_arr.shape}, trans_a={bool(trans_a)}, "
                         f"trans_b={bool(trans_b)})")
    cdef bint batched = A.ndim == 3 or B.ndim == 3
    cdef int64_t batch
    if A.batch == B.batch or B.batch == 1:
        batch = A.batch
    elif A.batch == 1:
        batch = B.batch
    else:
        raise ValueError(f"matmul: batch sizes {A.batch} and {B.batch} cannot be broadcast")
    cdef float alpha_f = 1.0 if alpha == 1.0 else as_float_option(alpha, "alpha")
    cdef float beta_f = 0.0 if beta == 0.0 else as_float_option(beta, "beta")
    cdef tuple shape
    if batched:
        shape = (batch, M, N)
    else:
        shape = (M, N)
    if out is None:
        if beta_f != 0.0:
            raise ValueError("matmul: beta != 0 scales the old contents of `out`; pass out=")
        o = new_float32(shape)
    else:
        o = make_out(out, shape)
        if may_overlap(o, a_arr) or may_overlap(o, b_arr):
            a_arr = operand(np.array(a_arr), "a", &A)  # C must not alias A or B, as in BLAS
            b_arr = operand(np.array(b_arr), "b", &B)
    cdef float *c = <float *>cnp.PyArray_DATA(<cnp.ndarray>o)
    cdef int64_t sa = A.batch_stride if A.batch > 1 else 0
    cdef int64_t sb = B.batch_stride if B.batch > 1 else 0
    cdef fnn_status st
    cdef bint fold = batched and B.batch == 1 and A.batch > 1 and not ta and A.ld == K and sa == M * K
    with nogil:
        if not batched:
            st = fnn_sgemm_ex(ta, tb, M, N, K, alpha_f, A.data, A.ld, B.data, B.ld, beta_f, c,
                              max(N, 1), NULL, FNN_BIAS_NONE, FNN_ACT_NONE)
        elif fold:
            # (B, M, K) @ (K, N) is one (B*M, K) @ (K, N) product
            st = fnn_sgemm_ex(0, tb, batch * M, N, K, alpha_f, A.data, A.ld, B.data, B.ld,
                              beta_f, c, max(N, 1), NULL, FNN_BIAS_NONE, FNN_ACT_NONE)
        else:
            st = fnn_sgemm_strided_batched(ta, tb, M, N, K, alpha_f, A.data, A.ld, sa, B.data,
                                           B.ld, sb, beta_f, c, max(N, 1), M * N, batch)
    check_status(st, "matmul")
    return o


def linear(x, weight, bias=None, activation=None, out=None):
    """activation(x @ weight.T + bias), the GEMM epilogue doing bias and activation.

    x (..., in_features), weight (out_features, in_features) as PyTorch's
    Linear, bias (out_features,) or None; activation None, "relu", "gelu"
    (erf form), "sigmoid" or "tanh". Returns (..., out_features).
    """
    xa = as_float32(x, "x")
    w = as_float32(weight, "weight")
    if w.ndim != 2:
        raise ValueError(f"weight must be (out_features, in_features), got shape {w.shape}")
    if xa.ndim == 0 or xa.shape[xa.ndim - 1] != w.shape[1]:
        raise ValueError(f"x must have shape (..., {w.shape[1]}) for weight of shape {w.shape}, "
                         f"got {xa.shape}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of None, 'relu', 'gelu', 'sigmoid', 'tanh', "
                         f"got {activation!r}")
    cdef fnn_activation act = _ACTIVATIONS[activation]
    cdef int64_t n_out = w.shape[0], n_in = w.shape[1]
    cdef int64_t rows = xa.size // n_in if n_in > 0 else int(np.prod(xa.shape[:xa.ndim - 1]))
    cdef const float *bias_ptr = NULL
    cdef fnn_bias_mode mode = FNN_BIAS_NONE
    if bias is not None:
        ba = as_float32(bias, "bias")
        if ba.shape != (n_out,):
            raise ValueError(f"bias must have shape ({n_out},), got {ba.shape}")
        bias_ptr = cfptr(ba)
        mode = FNN_BIAS_COL if n_out > 0 else FNN_BIAS_NONE
    o = make_out(out, xa.shape[:xa.ndim - 1] + (int(n_out),))
    if out is not None:  # the GEMM reads x and weight after writing out: no aliasing at all
        xa = xa.copy() if may_overlap(xa, o) else xa
        w = w.copy() if may_overlap(w, o) else w
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = cfptr(w)
    cdef float *op = fptr(o)
    cdef fnn_status st
    with nogil:
        st = fnn_sgemm_ex(0, 1, rows, n_out, n_in, 1.0, xp, n_in if n_in > 0 else 1, wp,
                          n_in if n_in > 0 else 1, 0.0, op, n_out if n_out > 0 else 1,
                          bias_ptr, mode, act)
    check_status(st, "linear")
    return o


def linear_bias_grad(grad_out, out=None, accumulate=False):
    """The gradient of a Linear layer's bias: grad_out (..., out_features)
    summed over every axis but the last -> (out_features,). With
    accumulate=True the sums are added to `out` (required), as a layer's
    backward accumulates into its parameter gradients."""
    g = as_float32(grad_out, "grad_out")
    if g.ndim == 0:
        raise ValueError("grad_out must have at least one axis, got a 0-d array")
    cdef int64_t N = g.shape[g.ndim - 1]
    cdef int64_t M = g.size // N if N > 0 else 0
    cdef bint acc = bool(accumulate)
    if acc and out is None:
        raise ValueError("linear_bias_grad: accumulate=True adds into `out`; pass out=")
    o = make_out(out, (int(N),))
    if out is not None:
        g = apart_from(g, o)
    cdef const float *gp = cfptr(g)
    cdef float *op = fptr(o)
    cdef fnn_status st
    with nogil:
        st = fnn_colsum(op, gp, M, N, N if N > 0 else 1, acc)
    check_status(st, "linear_bias_grad")
    return o


def fma_probe(int64_t iters):
    """Floating-point operations done by fnn_fma_probe(iters) on the active ISA
    and thread count (time it to get the machine's FMA ceiling)."""
    cdef double flops = 0.0
    with nogil:
        fnn_fma_probe(iters, &flops)
    return flops


def gemm_blocking():
    """The active ISA's (MR, NR, KC, MC, NC)."""
    cdef int64_t mr, nr, kc, mc, nc
    fnn_gemm_tile(&mr, &nr, &kc, &mc, &nc)
    return mr, nr, kc, mc, nc
