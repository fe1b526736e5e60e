# matmul on our SGEMM (csrc/gemm/); linear is in _linear.pxi.
# matmul keeps raw pointers: its operands are any row- or column-major strided
# view (transposes used in place), which a `float[:, ::1]` memoryview would refuse.
#
# Layouts: a 2-D operand (or each matrix of a 3-D one) that is row-major with
# unit column stride, or column-major (a transposed view such as `w.T` or
# `k.transpose(0, 2, 1)`), is used in place through its leading dimension
# and a transpose flag; anything else (negative or odd strides, data not
# aligned to 4 bytes) is copied to a C-contiguous array first.

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
    if (not (row_major or col_major) or s_batch < 0 or s_batch % 4
            or not cnp.PyArray_ISALIGNED(a)):
        arr = copy_float32(arr)
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
    # the kernel's transpose flags, from the layouts passed (a copy may have another one)
    cdef bint ta = bool(trans_a) != A.transposed
    cdef bint tb = bool(trans_b) != B.transposed
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


def gemm_blocking():
    """The active ISA's (MR, NR, KC, MC, NC)."""
    cdef int64_t mr, nr, kc, mc, nc
    fnn_gemm_tile(&mr, &nr, &kc, &mc, &nc)
    return mr, nr, kc, mc, nc
