# LayerNorm and RMSNorm over the trailing normalized_shape axes (csrc/layer_norm.c,
# layer_norm_api.c). An input (*, *normalized_shape) is seen as (M, D), D the
# product of normalized_shape. Forward can return what backward needs (the per-row
# mean and rstd, shaped as the leading axes), so the layers keep no normalised copy.
# Backward adds the input gradient into grad_input when one is passed (a residual
# stream's gradient), as it adds grad_weight and grad_bias.


cdef tuple trailing_rows(object xa, object normalized_shape, str name, int64_t *M, int64_t *D):
    """The leading shape of xa (*, *normalized_shape), with M its product and D that
    of normalized_shape; ValueError when the trailing axes differ."""
    if isinstance(normalized_shape, (int, np.integer)):
        shape = (int(normalized_shape),)
    else:
        try:
            shape = tuple(int(n) for n in normalized_shape)
        except TypeError:
            raise TypeError(f"{name}: normalized_shape must be an int or a sequence of ints, "
                            f"got {normalized_shape!r}") from None
    k = len(shape)
    if k == 0 or any(n < 1 for n in shape):
        raise ValueError(f"{name}: normalized_shape must be a non-empty shape of positive "
                         f"sizes, got {normalized_shape!r}")
    if xa.ndim < k or tuple(xa.shape[xa.ndim - k:]) != shape:
        raise ValueError(f"{name}: input of shape {xa.shape} does not end with normalized_shape "
                         f"{shape}")
    lead = tuple(xa.shape[:xa.ndim - k])
    D[0] = 1
    for n in shape:
        D[0] *= n
    M[0] = 1
    for n in lead:
        M[0] *= n
    return lead


cdef object feature_vector(object a, int64_t D, tuple shape, str name):
    """a as float32 C-contiguous with D elements and the normalized shape (None stays None)."""
    if a is None:
        return None
    v = as_float32(a, name)
    if v.size != D or tuple(v.shape) != shape:
        raise ValueError(f"{name} must have the normalized shape {shape}, got {v.shape}")
    return v


cdef object row_stats(tuple lead):
    return new_float32(lead)


cdef object grad_into(object given, tuple shape, str name):
    """A gradient to accumulate into: `given` checked as an out= array, or a zeroed new one."""
    if given is None:
        g = new_float32(shape)
        g.fill(0.0)
        return g
    return make_out(given, shape, name)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, out=None,
               return_stats=False):
    """torch.nn.functional.layer_norm: each row over the trailing normalized_shape
    axes normalised with its mean and biased variance, then weight and bias
    (normalized_shape, None: 1 and 0). With return_stats=True returns
    (out, mean, rstd), mean and rstd of the leading shape, which
    layer_norm_backward takes."""
    xa = as_float32(input, "input")
    cdef int64_t M, D
    lead = trailing_rows(xa, normalized_shape, "layer_norm", &M, &D)
    shape = tuple(xa.shape[len(lead):])
    cdef float e = norm_eps(eps)
    wa = feature_vector(weight, D, shape, "weight")
    ba = feature_vector(bias, D, shape, "bias")
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
        wa, ba = unshared_opt(wa, o), unshared_opt(ba, o)
    mean, rstd = row_stats(lead), row_stats(lead)
    cdef float *op = fptr(o)
    cdef float *mp = fptr(mean)
    cdef float *rp = fptr(rstd)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = opt_cptr(wa)
    cdef const float *bp = opt_cptr(ba)
    cdef fnn_status st
    with nogil:
        st = fnn_layer_norm_forward(op, mp, rp, xp, wp, bp, M, D, e)
    check_status(st, "layer_norm")
    return (o, mean, rstd) if return_stats else o


def add_layer_norm(input, residual, normalized_shape, weight=None, bias=None, eps=1e-5,
                   return_stats=False):
    """The residual add and layer_norm in one pass: s = input + residual, then
    layer_norm(s). Returns (s, out), or (s, out, mean, rstd) with return_stats:
    a pre-LN block's residual stream and the next sub-layer's input."""
    xa = as_float32(input, "input")
    ra = as_float32(residual, "residual")
    check_same_shape(xa, "input", ra, "residual")
    cdef int64_t M, D
    lead = trailing_rows(xa, normalized_shape, "add_layer_norm", &M, &D)
    shape = tuple(xa.shape[len(lead):])
    cdef float e = norm_eps(eps)
    wa = feature_vector(weight, D, shape, "weight")
    ba = feature_vector(bias, D, shape, "bias")
    s = new_float32(tuple(xa.shape))
    o = new_float32(tuple(xa.shape))
    mean, rstd = row_stats(lead), row_stats(lead)
    cdef float *sp = fptr(s)
    cdef float *op = fptr(o)
    cdef float *mp = fptr(mean)
    cdef float *rsp = fptr(rstd)
    cdef const float *xp = cfptr(xa)
    cdef const float *rp = cfptr(ra)
    cdef const float *wp = opt_cptr(wa)
    cdef const float *bp = opt_cptr(ba)
    cdef fnn_status st
    with nogil:
        st = fnn_add_layer_norm_forward(sp, op, mp, rsp, xp, rp, wp, bp, M, D, e)
    check_status(st, "add_layer_norm")
    return (s, o, mean, rstd) if return_stats else (s, o)


cdef tuple norm_rows_backward(object grad_out, object input, object mean, object rstd,
                              object normalized_shape, object weight, bint input_grad,
                              object grad_weight, object grad_bias, object grad_input,
                              bint want_bias, str name):
    """(dx, dweight, dbias) of layer_norm (mean given) or rms_norm (mean None)."""
    xa = as_float32(input, "input")
    cdef int64_t M, D
    lead = trailing_rows(xa, normalized_shape, name, &M, &D)
    shape = tuple(xa.shape[len(lead):])
    g = as_float32(grad_out, "grad_out")
    check_same_shape(xa, "input", g, "grad_out")
    ma = None if mean is None else as_float32(mean, "mean")
    ra = as_float32(rstd, "rstd")
    for arr, nm in ((ma, "mean"), (ra, "rstd")):
        if arr is not None and tuple(arr.shape) != lead:
            raise ValueError(f"{name}: {nm} must have the leading shape {lead} of the input, "
                             f"got {arr.shape}")
    wa = feature_vector(weight, D, shape, "weight")
    gw = grad_into(grad_weight, shape, "grad_weight") if (
        wa is not None or grad_weight is not None) else None
    gb = grad_into(grad_bias, shape, "grad_bias") if (
        want_bias and (wa is not None or grad_bias is not None)) else None
    dx = None
    cdef int accumulate = 0
    if input_grad:
        dx = make_out(grad_input, tuple(xa.shape), "grad_input") if grad_input is not None \
            else new_float32(tuple(xa.shape))
        accumulate = grad_input is not None
    written = [a for a in (gw, gb, dx) if a is not None]
    for i in range(len(written)):
        for j in range(i + 1, len(written)):
            if may_overlap(written[i], written[j]):
                raise ValueError(f"{name}: grad_input, grad_weight and grad_bias must not "
                                 f"share memory")
    for dst in written:
        g, xa, ra = unshared(g, dst), unshared(xa, dst), unshared(ra, dst)
        ma, wa = unshared_opt(ma, dst), unshared_opt(wa, dst)
    cdef float *dxp = opt_ptr(dx)
    cdef float *gwp = opt_ptr(gw)
    cdef float *gbp = opt_ptr(gb)
    cdef const float *gp = cfptr(g)
    cdef const float *mp = opt_cptr(ma)
    cdef const float *rp = cfptr(ra)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = opt_cptr(wa)
    cdef bint rms = ma is None
    cdef fnn_status st
    with nogil:
        if rms:
            st = fnn_rms_norm_backward(dxp, gwp, gp, rp, xp, wp, M, D, accumulate)
        else:
            st = fnn_layer_norm_backward(dxp, gwp, gbp, gp, mp, rp, xp, wp, M, D, accumulate)
    check_status(st, name)
    return dx, gw, gb


def layer_norm_backward(grad_out, input, mean, rstd, normalized_shape, weight=None,
                        input_grad=True, grad_weight=None, grad_bias=None, grad_input=None):
    """The backward of layer_norm given its (mean, rstd): returns (dx, dweight, dbias).
    dweight and dbias (normalized_shape) are computed when weight is given or their
    grad_ buffer is passed (and then added into it), else None; dx is None without
    input_grad, and is added into grad_input when that is passed."""
    if mean is None:
        raise ValueError("layer_norm_backward: mean is required (rms_norm_backward has none)")
    return norm_rows_backward(grad_out, input, mean, rstd, normalized_shape, weight,
                              input_grad, grad_weight, grad_bias, grad_input, True,
                              "layer_norm_backward")


cdef float rms_eps(object eps) except? -1.0:
    return <float>np.finfo(np.float32).eps if eps is None else norm_eps(eps)


def rms_norm(input, normalized_shape, weight=None, eps=None, out=None, return_stats=False):
    """torch.nn.functional.rms_norm: x / sqrt(mean(x^2) + eps) * weight over the
    trailing normalized_shape axes; eps None is float32's machine epsilon, as
    torch. With return_stats=True returns (out, rstd), rstd of the leading shape."""
    xa = as_float32(input, "input")
    cdef int64_t M, D
    lead = trailing_rows(xa, normalized_shape, "rms_norm", &M, &D)
    shape = tuple(xa.shape[len(lead):])
    cdef float e = rms_eps(eps)
    wa = feature_vector(weight, D, shape, "weight")
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
        wa = unshared_opt(wa, o)
    rstd = row_stats(lead)
    cdef float *op = fptr(o)
    cdef float *rp = fptr(rstd)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = opt_cptr(wa)
    cdef fnn_status st
    with nogil:
        st = fnn_rms_norm_forward(op, rp, xp, wp, M, D, e)
    check_status(st, "rms_norm")
    return (o, rstd) if return_stats else o


def rms_norm_backward(grad_out, input, rstd, normalized_shape, weight=None, input_grad=True,
                      grad_weight=None, grad_input=None):
    """The backward of rms_norm given its rstd: returns (dx, dweight), dweight when
    weight is given or grad_weight is passed (added into it), dx None without
    input_grad (added into grad_input when passed)."""
    dx, gw, _ = norm_rows_backward(grad_out, input, None, rstd, normalized_shape, weight,
                                   input_grad, grad_weight, None, grad_input, False,
                                   "rms_norm_backward")
    return dx, gw
