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


cdef fnn_activation activation_code(object activation) except *:
    if activation is None:
        return FNN_ACT_NONE
    try:
        return _ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be one of None, 'relu', 'gelu', 'sigmoid', 'tanh', "
                         f"got {activation!r}") from None


cdef object new_like_rows(cnp.ndarray x, int64_t last):
    """A new float32 array shaped like x but with `last` as its last axis."""
    cdef cnp.npy_intp dims[64]
    cdef int nd = cnp.PyArray_NDIM(x), i
    for i in range(nd):
        dims[i] = cnp.PyArray_DIMS(x)[i]
    dims[nd - 1] = last
    return cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT32, 0)


cdef int64_t leading_rows(cnp.ndarray x):
    """The product of every axis of x but the last (its rows as a matrix)."""
    cdef int64_t rows = 1
    cdef int i
    for i in range(cnp.PyArray_NDIM(x) - 1):
        rows *= cnp.PyArray_DIMS(x)[i]
    return rows


cdef int linear_shapes(object xa, object w, int64_t *n_out, int64_t *n_in) except -1:
    """*n_out, *n_in after checking x (..., in_features) against weight (out, in)."""
    cdef cnp.ndarray wn = <cnp.ndarray>w, xn = <cnp.ndarray>xa
    if cnp.PyArray_NDIM(wn) != 2:
        raise ValueError(f"weight must be (out_features, in_features), got shape {w.shape}")
    n_out[0], n_in[0] = cnp.PyArray_DIMS(wn)[0], cnp.PyArray_DIMS(wn)[1]
    cdef int xd = cnp.PyArray_NDIM(xn)
    if xd == 0 or cnp.PyArray_DIMS(xn)[xd - 1] != n_in[0]:
        raise ValueError(f"x must have shape (..., {n_in[0]}) for weight of shape {w.shape}, "
                         f"got {xa.shape}")
    return 0


def linear(x, weight, bias=None, activation=None, out=None):
    """activation(x @ weight.T + bias), the GEMM epilogue doing bias and activation.

    x (..., in_features), weight (out_features, in_features) as PyTorch's
    Linear, bias (out_features,) or None; activation None, "relu", "gelu"
    (erf form), "sigmoid" or "tanh". Returns (..., out_features).
    """
    xa = as_float32(x, "x")
    w = as_float32(weight, "weight")
    cdef int64_t n_out, n_in
    linear_shapes(xa, w, &n_out, &n_in)
    cdef fnn_activation act = activation_code(activation)
    cdef int64_t rows = leading_rows(<cnp.ndarray>xa)
    cdef const float *bias_ptr = NULL
    cdef fnn_bias_mode mode = FNN_BIAS_NONE
    if bias is not None:
        ba = as_float32(bias, "bias")
        if cnp.PyArray_NDIM(<cnp.ndarray>ba) != 1 or cnp.PyArray_DIMS(<cnp.ndarray>ba)[0] != n_out:
            raise ValueError(f"bias must have shape ({n_out},), got {ba.shape}")
        bias_ptr = cfptr(ba)
        mode = FNN_BIAS_COL if n_out > 0 else FNN_BIAS_NONE
    if out is None:
        o = new_like_rows(<cnp.ndarray>xa, n_out)
    else:
        o = make_out(out, xa.shape[:xa.ndim - 1] + (int(n_out),))
        # the GEMM reads x and weight after writing out: no aliasing at all
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


cdef object accumulator(object arr, tuple shape, str name, list inputs):
    """arr checked as a gradient to add into; returns inputs with copies of any
    that overlap it (the products read them while arr is written)."""
    make_out(arr, shape, name)
    for i in range(len(inputs)):
        if may_overlap(inputs[i], arr):
            inputs[i] = inputs[i].copy()
    return inputs


def linear_backward(grad_out, x, weight, grad_weight=None, grad_bias=None, input_grad=True,
                    activation=None, output=None):
    """The backward of linear(x, weight, bias, activation), with gradients
    accumulated as a layer's backward does:

        grad_weight += g^T @ x        (out_features, in_features), if given
        grad_bias   += g summed       (out_features,), if given
        returns g @ weight            shaped like x, or None without input_grad

    where g = grad_out, or with activation "relu", "sigmoid" or "tanh" the
    gradient through it, computed from the forward's `output` (what linear
    returned). grad_out is (..., out_features) for x (..., in_features). One
    call does it all, validated once.
    """
    xa = as_float32(x, "x")
    w = as_float32(weight, "weight")
    cdef int64_t n_out, n_in
    linear_shapes(xa, w, &n_out, &n_in)
    g = as_float32(grad_out, "grad_out")
    cdef cnp.ndarray gn = <cnp.ndarray>g, xn = <cnp.ndarray>xa
    cdef int nd = cnp.PyArray_NDIM(xn), i
    cdef bint same = cnp.PyArray_NDIM(gn) == nd
    for i in range(nd - 1):
        same = same and cnp.PyArray_DIMS(gn)[i] == cnp.PyArray_DIMS(xn)[i]
    if not same or cnp.PyArray_DIMS(gn)[nd - 1] != n_out:
        raise ValueError(f"grad_out must have shape {xa.shape[:nd - 1] + (int(n_out),)} for x "
                         f"of shape {xa.shape} and weight of shape {w.shape}, got {g.shape}")
    cdef int64_t rows = leading_rows(xn)
    cdef fnn_status st0 = FNN_OK
    cdef const float *gp_in = NULL
    cdef fnn_activation act = activation_code(activation)
    cdef float *gp_act = NULL
    cdef const float *yp = NULL
    if act != FNN_ACT_NONE:
        if act == FNN_ACT_GELU:
            raise ValueError("linear_backward: the gelu backward needs the pre-activation, "
                             "not the output; use activation None with gelu_backward")
        if output is None:
            raise ValueError(f"linear_backward: activation={activation!r} needs output= (what "
                             f"linear returned)")
        y = as_float32(output, "output")
        if y.shape != g.shape:
            raise ValueError(f"output must have the shape of grad_out {g.shape}, got {y.shape}")
        yp = cfptr(y)
        g_act = new_like_rows(gn, n_out)   # the gradient through the activation
        gp_act = fptr(g_act)
        gp_in = cfptr(g)
        if rows * n_out > 0:
            with nogil:
                if act == FNN_ACT_RELU:  # output > 0 exactly where the input was
                    st0 = fnn_relu_backward(gp_act, gp_in, yp, rows * n_out, 0)
                elif act == FNN_ACT_SIGMOID:
                    st0 = fnn_sigmoid_backward(gp_act, gp_in, yp, rows * n_out, 0)
                else:
                    st0 = fnn_tanh_backward(gp_act, gp_in, yp, rows * n_out, 0)
            check_status(st0, "linear_backward")
        g = g_act
    cdef float *gw = NULL
    cdef float *gb = NULL
    if grad_weight is not None:
        g, xa = accumulator(grad_weight, (int(n_out), int(n_in)), "grad_weight", [g, xa])
        gw = fptr(grad_weight)
    if grad_bias is not None:
        g, = accumulator(grad_bias, (int(n_out),), "grad_bias", [g])
        gb = fptr(grad_bias)
    dx = new_like_rows(xn, n_in) if input_grad else None
    cdef float *dxp = fptr(dx) if input_grad else NULL
    cdef const float *gp = cfptr(g)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = cfptr(w)
    cdef int64_t ld_in = n_in if n_in > 0 else 1, ld_out = n_out if n_out > 0 else 1
    cdef fnn_status st = FNN_OK
    with nogil:
        if gw != NULL:
            st = fnn_sgemm_ex(1, 0, n_out, n_in, rows, 1.0, gp, ld_out, xp, ld_in, 1.0, gw, ld_in,
                              NULL, FNN_BIAS_NONE, FNN_ACT_NONE)
        if gb != NULL and st == FNN_OK:
            st = fnn_colsum(gb, gp, rows, n_out, ld_out, 1)
        if dxp != NULL and st == FNN_OK:
            st = fnn_sgemm_ex(0, 0, rows, n_in, n_out, 1.0, gp, ld_out, wp, ld_in, 0.0, dxp, ld_in,
                              NULL, FNN_BIAS_NONE, FNN_ACT_NONE)
    check_status(st, "linear_backward")
    return dx


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
