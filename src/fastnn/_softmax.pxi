# softmax / log_softmax along one axis (csrc/softmax.c, softmax_api.c). The array is seen as
# (B, C, D) with C the softmax axis, so any axis runs without a transpose.

cdef tuple split_axis(tuple shape, object axis, str name):
    """(B, C, D) for a softmax along `axis` of `shape`; a 0-d array is one element."""
    cdef int ndim = len(shape)
    ax = as_int64(axis, "axis")
    if ndim == 0:
        if ax not in (0, -1):
            raise np.exceptions.AxisError(f"axis {ax} is out of bounds for a 0-d array in {name}")
        return 1, 1, 1
    if not -ndim <= ax < ndim:
        raise np.exceptions.AxisError(f"axis {ax} is out of bounds for an array of dimension "
                                      f"{ndim} in {name}")
    ax %= ndim
    B = 1
    for s in shape[:ax]:
        B *= s
    D = 1
    for s in shape[ax + 1:]:
        D *= s
    return B, shape[ax], D


# Not on a per-layer hot path: the kernel wrappers take typed memoryviews
# (about 0.12 us per array per call, tools/boundary_overhead.py).
cdef fnn_status softmax_kernel(float[:, :, ::1] out,       # OUT (B, C, D)
                               const float[:, :, ::1] x,   # IN  (B, C, D)
                               bint log):
    cdef fnn_status st
    with nogil:
        if log:
            st = fnn_log_softmax_forward(&out[0, 0, 0], &x[0, 0, 0], x.shape[0], x.shape[1],
                                         x.shape[2])
        else:
            st = fnn_softmax_forward(&out[0, 0, 0], &x[0, 0, 0], x.shape[0], x.shape[1],
                                     x.shape[2])
    return st


cdef fnn_status softmax_backward_kernel(float[:, :, ::1] dinp,       # OUT (B, C, D)
                                        const float[:, :, ::1] dout, # IN  (B, C, D)
                                        const float[:, :, ::1] y,    # IN  (B, C, D), forward output
                                        bint log):
    cdef fnn_status st
    with nogil:
        if log:
            st = fnn_log_softmax_backward(&dinp[0, 0, 0], &dout[0, 0, 0], &y[0, 0, 0], y.shape[0],
                                          y.shape[1], y.shape[2], 0)
        else:
            st = fnn_softmax_backward(&dinp[0, 0, 0], &dout[0, 0, 0], &y[0, 0, 0], y.shape[0],
                                      y.shape[1], y.shape[2], 0)
    return st


cdef object softmax_forward(object x, object axis, object out, bint log, str name):
    xa = as_float32(x, "x")
    B, C, D = split_axis(xa.shape, axis, name)
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
    if nelem(xa) == 0:
        return o
    check_status(softmax_kernel(o.reshape(B, C, D), xa.reshape(B, C, D), log), name)
    return o


cdef object softmax_backward_any(object grad_out, object y, object axis, object out, bint log,
                                 str name):
    ga = as_float32(grad_out, "grad_out")
    ya = as_float32(y, "y")
    check_same_shape(ya, "y", ga, "grad_out")
    B, C, D = split_axis(ya.shape, axis, name)
    o = make_out(out, ya.shape)
    if out is not None:
        ga = apart_from(ga, o)
        ya = apart_from(ya, o)
    if nelem(ya) == 0:
        return o
    check_status(softmax_backward_kernel(o.reshape(B, C, D), ga.reshape(B, C, D),
                                         ya.reshape(B, C, D), log), name)
    return o


def softmax(x, axis=-1, out=None):
    """exp(x - max) / sum(exp(x - max)) along `axis`. Rows with -inf entries work;
    a row of all -inf is NaN, as in PyTorch."""
    return softmax_forward(x, axis, out, False, "softmax")


def log_softmax(x, axis=-1, out=None):
    """x - max - log(sum(exp(x - max))) along `axis`."""
    return softmax_forward(x, axis, out, True, "log_softmax")


def softmax_backward(grad_out, y, axis=-1, out=None):
    """y * (grad_out - sum(grad_out * y, axis)), given the forward OUTPUT y."""
    return softmax_backward_any(grad_out, y, axis, out, False, "softmax_backward")


def log_softmax_backward(grad_out, y, axis=-1, out=None):
    """grad_out - exp(y) * sum(grad_out, axis), given the forward OUTPUT y."""
    return softmax_backward_any(grad_out, y, axis, out, True, "log_softmax_backward")


def softmin(x, axis=-1, out=None):
    """softmax(-x) along `axis`."""
    return softmax_forward(np.negative(as_float32(x, "x")), axis, out, False, "softmin")


def softmin_backward(grad_out, y, axis=-1, out=None):
    """-softmax_backward(grad_out, y, axis), given the forward OUTPUT y = softmin(x)."""
    o = softmax_backward_any(grad_out, y, axis, out, False, "softmin_backward")
    return np.negative(o, out=o)
