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


cdef class _Operand:
    """One matmul operand as the C side sees it: (batch, rows, cols) floats at
    data + b * batch_stride, row-major with leading dimension ld, or stored
    transposed (column-major) when `transposed`."""
    cdef object array           # keeps the memory alive
    cdef const float *data
    cdef int64_t batch, rows, cols, ld, batch_stride
    cdef bint transposed


cdef _Operand operand(object x, str name):
    arr = as_float32_any_layout(x, name)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2-D matrix or a 3-D batch of matrices, "
                         f"got shape {arr.shape}")
    cdef _Operand op = _Operand()
    nd = arr.ndim
    rows, cols = arr.shape[nd - 2], arr.shape[nd - 1]
    s_row, s_col = arr.strides[nd - 2], arr.strides[nd - 1]
    s_batch = arr.strides[0] if arr.ndim == 3 else 0
    row_major = s_col == 4 and s_row % 4 == 0 and (rows <= 1 or s_row >= 4 * cols)
    col_major = (not row_major and s_row == 4 and s_col % 4 == 0
                 and (cols <= 1 or s_col >= 4 * rows))
    if not (row_major or col_major) or s_batch < 0 or s_batch % 4:
        arr = np.ascontiguousarray(arr)
        row_major, s_row, s_batch = True, arr.strides[nd - 2], arr.strides[0] if nd == 3 else 0
    op.array = arr
    op.batch = arr.shape[0] if arr.ndim == 3 else 1
    op.rows, op.cols = rows, cols
    op.transposed = not row_major
    if row_major:
        op.ld = max(s_row // 4, cols, 1)
    else:
        op.ld = max(arr.strides[nd - 1] // 4, rows, 1)
    op.batch_stride = s_batch // 4
    if arr.size == 0:
        op.data = NULL
    elif arr.ndim == 2:
        op.data = first_2d(arr)
    else:
        op.data = first_3d(arr)
    return op


cdef const float *first_2d(const float[:, :] v):
    return &v[0, 0]


cdef const float *first_3d(const float[:, :, :] v):
    return &v[0, 0, 0]


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
    cdef _Operand A = operand(a, "a")
    cdef _Operand B = operand(b, "b")
    cdef bint ta = bool(trans_a) != A.transposed
    cdef bint tb = bool(trans_b) != B.transposed
    cdef int64_t M = A.cols if trans_a else A.rows
    cdef int64_t K = A.rows if trans_a else A.cols
    cdef int64_t Kb = B.cols if trans_b else B.rows
    cdef int64_t N = B.rows if trans_b else B.cols
    if K != Kb:
        raise ValueError(f"matmul: inner dimensions differ: op(a) is ({M}, {K}) and op(b) is "
                         f"({Kb}, {N}) (a {a_shape(a)}, b {a_shape(b)}, trans_a={bool(trans_a)}, "
                         f"trans_b={bool(trans_b)})")
    cdef bint batched = A.array.ndim == 3 or B.array.ndim == 3
    if batched and A.batch != B.batch and A.batch != 1 and B.batch != 1:
        raise ValueError(f"matmul: batch sizes {A.batch} and {B.batch} cannot be broadcast")
    cdef int64_t batch = max(A.batch, B.batch)
    cdef float alpha_f = as_float_option(alpha, "alpha")
    cdef float beta_f = as_float_option(beta, "beta")
    shape = (int(batch), int(M), int(N)) if batched else (int(M), int(N))
    if beta_f != 0.0 and out is None:
        raise ValueError("matmul: beta != 0 scales the old contents of `out`; pass out=")
    o = make_out(out, shape)
    if out is not None and (np.may_share_memory(o, A.array) or np.may_share_memory(o, B.array)):
        A = operand(np.array(A.array), "a")   # C must not alias A or B, as in BLAS
        B = operand(np.array(B.array), "b")
    cdef float *c = fptr(flat(o))
    cdef int64_t sa = A.batch_stride if A.batch > 1 else 0
    cdef int64_t sb = B.batch_stride if B.batch > 1 else 0
    cdef fnn_status st
    cdef bint fold = batched and B.batch == 1 and A.batch > 1 and not ta and A.ld == K and sa == M * K
    with nogil:
        if not batched:
            st = fnn_sgemm_ex(ta, tb, M, N, K, alpha_f, A.data, A.ld, B.data, B.ld, beta_f, c, N,
                              NULL, FNN_BIAS_NONE, FNN_ACT_NONE)
        elif fold:
            # (B, M, K) @ (K, N) is one (B*M, K) @ (K, N) product
            st = fnn_sgemm_ex(0, tb, batch * M, N, K, alpha_f, A.data, A.ld, B.data, B.ld,
                              beta_f, c, N, NULL, FNN_BIAS_NONE, FNN_ACT_NONE)
        else:
            st = fnn_sgemm_strided_batched(ta, tb, M, N, K, alpha_f, A.data, A.ld, sa, B.data,
                                           B.ld, sb, beta_f, c, N, M * N, batch)
    check_status(st, "matmul")
    return o


cdef str a_shape(object x):
    return str(getattr(x, "shape", np.shape(x)))


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
    if out is not None:
        xa = apart_from(xa, o)
        w = apart_from(w, o)
    cdef const float *xp = cfptr(flat(xa))
    cdef const float *wp = cfptr(flat(w))
    cdef float *op = fptr(flat(o))
    cdef fnn_status st
    with nogil:
        st = fnn_sgemm_ex(0, 1, rows, n_out, n_in, 1.0, xp, n_in if n_in > 0 else 1, wp,
                          n_in if n_in > 0 else 1, 0.0, op, n_out if n_out > 0 else 1,
                          bias_ptr, mode, act)
    check_status(st, "linear")
    return o


def linear_bias_grad(grad_out, out=None):
    """The gradient of a Linear layer's bias: grad_out (..., out_features)
    summed over every axis but the last -> (out_features,)."""
    g = as_float32(grad_out, "grad_out")
    if g.ndim == 0:
        raise ValueError("grad_out must have at least one axis, got a 0-d array")
    cdef int64_t N = g.shape[g.ndim - 1]
    cdef int64_t M = g.size // N if N > 0 else 0
    o = make_out(out, (int(N),))
    if out is not None:
        g = apart_from(g, o)
    cdef const float *gp = cfptr(flat(g))
    cdef float *op = fptr(flat(o))
    cdef fnn_status st
    with nogil:
        st = fnn_colsum(op, gp, M, N, N if N > 0 else 1, 0)
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
