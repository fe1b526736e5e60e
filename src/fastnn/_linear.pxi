# The Linear layer (csrc/linear.c, linear_api.c): forward as one GEMM with bias,
# pre-activation store and activation fused in its epilogue; backward (activation
# backward, dW, db, dx) in one C call.
# Hot path (every training step calls these per layer): raw pointers, not typed
# memoryviews, which would add 0.4-0.7 us per call here (3-6 arrays at 0.12 us
# each, tools/boundary_overhead.py; the budget is 3 us per layer).

import warnings


cdef object new_like_rows(cnp.ndarray x, int64_t last):
    """A new float32 array shaped like x but with `last` as its last axis."""
    cdef cnp.npy_intp dims[64]
    cdef int nd = cnp.PyArray_NDIM(x), i
    for i in range(nd):
        dims[i] = cnp.PyArray_DIMS(x)[i]
    dims[nd - 1] = last
    return new_float32_dims(nd, dims)


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


cdef object float32_like(object arr, tuple shape, str name, str what):
    """arr as float32 C-contiguous, checked to have `shape` (that of `what`)."""
    a = as_float32(arr, name)
    if a.shape != shape:
        raise ValueError(f"{name} must have the shape of {what} {shape}, got {a.shape}")
    return a


def linear(x, weight, bias=None, activation=None, out=None, preactivation=None):
    """activation(x @ weight.T + bias), the GEMM epilogue doing bias and activation.

    x (..., in_features), weight (out_features, in_features) as PyTorch's
    Linear, bias (out_features,) or None; activation one of ACTIVATIONS
    (None, "relu", "gelu" (erf form), "sigmoid", "tanh", "gelu_tanh", "silu", "mish",
    "hardswish", "elu" (alpha 1), "selu").
    Returns (..., out_features). preactivation, if given, is a float32
    C-contiguous array of the output's shape that the epilogue fills with
    x @ weight.T + bias (before the activation, from the same tile; what
    linear_backward needs for gelu). Inputs that share memory with out or
    preactivation are copied first; out and preactivation must not overlap.
    """
    xa = as_float32(x, "x")
    w = as_float32(weight, "weight")
    cdef int64_t n_out, n_in
    linear_shapes(xa, w, &n_out, &n_in)
    cdef fnn_activation act = activation_code(activation)
    cdef int64_t rows = leading_rows(<cnp.ndarray>xa)
    ba = None
    if bias is not None:
        ba = as_float32(bias, "bias")
        if cnp.PyArray_NDIM(<cnp.ndarray>ba) != 1 or cnp.PyArray_DIMS(<cnp.ndarray>ba)[0] != n_out:
            raise ValueError(f"bias must have shape ({n_out},), got {ba.shape}")
    if out is None:
        o = new_like_rows(<cnp.ndarray>xa, n_out)
    else:
        o = make_out(out, xa.shape[:xa.ndim - 1] + (int(n_out),))
        # the GEMM reads x, weight and bias after writing out: no aliasing at all
        xa, w, ba = unshared(xa, o), unshared(w, o), unshared_opt(ba, o)
    cdef float *pre_p = NULL
    if preactivation is not None:
        pre = make_out(preactivation, o.shape, "preactivation")
        if may_overlap(pre, o):
            raise ValueError("preactivation must not share memory with out")
        xa, w, ba = unshared(xa, pre), unshared(w, pre), unshared_opt(ba, pre)
        pre_p = fptr(pre)
    cdef const float *bias_ptr = NULL if ba is None else cfptr(ba)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = cfptr(w)
    cdef float *op = fptr(o)
    cdef fnn_status st
    with nogil:
        st = fnn_linear_forward(op, pre_p, xp, wp, bias_ptr, rows, n_in, n_out, act)
    check_status(st, "linear")
    return o


def linear_backward(grad_out, x, weight, grad_weight=None, grad_bias=None, input_grad=True,
                    activation=None, output=None, preactivation=None):
    """The backward of linear(x, weight, bias, activation), with gradients
    accumulated as a layer's backward does:

        grad_weight += g^T @ x        (out_features, in_features), if given
        grad_bias   += g summed       (out_features,), if given
        returns g @ weight            shaped like x, or None without input_grad

    where g = grad_out, or the gradient through the activation: for "relu",
    "sigmoid" and "tanh" computed from the forward's `output` (what linear
    returned), for the others ("gelu", "gelu_tanh", "silu", "mish", "hardswish",
    "elu", "selu") from its `preactivation` (what linear(..., preactivation=)
    filled). grad_out is (..., out_features) for
    x (..., in_features). One C call does it all, validated once. An input
    that shares memory with grad_weight or grad_bias (even grad_weight=weight)
    is read as it was on entry (copied first); grad_weight and grad_bias must
    not overlap each other.
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
    cdef fnn_activation act = activation_code(activation)
    saved = None
    if act == FNN_ACT_RELU or act == FNN_ACT_SIGMOID or act == FNN_ACT_TANH:
        if output is None:
            raise ValueError(f"linear_backward: activation={activation!r} needs output= (what "
                             f"linear returned)")
        saved = float32_like(output, g.shape, "output", "grad_out")
    elif act != FNN_ACT_NONE:
        if preactivation is None:
            raise ValueError(f"linear_backward: activation={activation!r} needs preactivation= "
                             f"(the pre-activation x @ weight.T + bias that "
                             f"linear(..., preactivation=) filled); output= is not enough")
        saved = float32_like(preactivation, g.shape, "preactivation", "grad_out")
    cdef float *gw = NULL
    cdef float *gb = NULL
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = n_out, n_in
    # grad_weight, then grad_bias, are added into before dx = g @ weight is
    # computed (and while g, x are read): no input may share memory with them
    if grad_weight is not None:
        check_out_dims(grad_weight, 2, dims, "grad_weight")
        g, xa, w = unshared(g, grad_weight), unshared(xa, grad_weight), unshared(w, grad_weight)
        saved = unshared_opt(saved, grad_weight)
        gw = fptr(grad_weight)
    if grad_bias is not None:
        check_out_dims(grad_bias, 1, dims, "grad_bias")
        if grad_weight is not None and may_overlap(grad_bias, grad_weight):
            raise ValueError("grad_bias must not share memory with grad_weight")
        g, xa, w = unshared(g, grad_bias), unshared(xa, grad_bias), unshared(w, grad_bias)
        saved = unshared_opt(saved, grad_bias)
        gb = fptr(grad_bias)
    dx = new_like_rows(xn, n_in) if input_grad else None
    cdef float *dxp = fptr(dx) if input_grad else NULL
    cdef const float *gp = cfptr(g)
    cdef const float *sp = NULL if saved is None else cfptr(saved)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = cfptr(w)
    cdef fnn_status st
    with nogil:
        st = fnn_linear_backward(dxp, gw, gb, gp, sp, xp, wp, rows, n_in, n_out, act, 0)
    check_status(st, "linear_backward")
    return dx


def linear_bias_backward(grad_out, out=None, accumulate=False):
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
        raise ValueError("linear_bias_backward: accumulate=True adds into `out`; pass out=")
    o = make_out(out, (int(N),))
    if out is not None:
        g = apart_from(g, o)
    cdef const float *gp = cfptr(g)
    cdef float *op = fptr(o)
    cdef fnn_status st
    with nogil:
        st = fnn_linear_bias_backward(op, gp, M, N, N if N > 0 else 1, acc)
    check_status(st, "linear_bias_backward")
    return o


def linear_bias_grad(grad_out, out=None, accumulate=False):
    """Deprecated: the old name of linear_bias_backward (same arguments and result)."""
    warnings.warn("linear_bias_grad is deprecated; use linear_bias_backward (same arguments)",
                  DeprecationWarning, stacklevel=2)
    return linear_bias_backward(grad_out, out, accumulate)
