# Batch norm and group norm (csrc/norm.c, norm_api.c). An input (N, C, *) is seen
# as (N, C, S), S the product of the axes after C. Forward can return what backward
# needs (return_stats=True: the per-channel or per-(n, group) mean and invstd), so the
# layers keep no normalised copy of the input.
# Hot path (BatchNorm layers call these on every step): raw pointers after validation.


cdef int norm_layout(object xa, str name, int64_t *N, int64_t *C, int64_t *S) except -1:
    """(N, C, S) of an input (N, C, *) with at least 2 axes."""
    cdef cnp.ndarray xn = <cnp.ndarray>xa
    cdef int nd = cnp.PyArray_NDIM(xn), i
    if nd < 2:
        raise ValueError(f"{name}: input must have shape (N, C, *) with at least 2 dimensions, "
                         f"got shape {xa.shape}")
    N[0], C[0] = cnp.PyArray_DIMS(xn)[0], cnp.PyArray_DIMS(xn)[1]
    S[0] = 1
    for i in range(2, nd):
        S[0] *= cnp.PyArray_DIMS(xn)[i]
    return 0


cdef object channel_vector(object a, int64_t C, str name, str what):
    """a as float32 C-contiguous of shape (C,) (None stays None)."""
    if a is None:
        return None
    v = as_float32(a, name)
    if cnp.PyArray_NDIM(<cnp.ndarray>v) != 1 or cnp.PyArray_DIMS(<cnp.ndarray>v)[0] != C:
        raise ValueError(f"{name} must have shape ({C},) for {what}, got {v.shape}")
    return v


cdef inline const float *opt_cptr(object a) noexcept:
    return NULL if a is None else cfptr(a)


cdef inline float *opt_ptr(object a) noexcept:
    return NULL if a is None else fptr(a)


cdef object grad_buffer(object given, cnp.npy_intp C, str name):
    """A gradient to accumulate into: `given` checked as an out= array of shape (C,),
    or a new zeroed one."""
    cdef cnp.npy_intp dims[1]
    dims[0] = C
    if given is None:
        g = new_float32_dims(1, dims)
        g.fill(0.0)
        return g
    check_out_dims(given, 1, dims, name)
    return given


cdef float norm_eps(object eps) except? -1.0:
    cdef double e = as_real(eps, "eps")
    if not (0.0 <= e < 3.4e38):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return <float>e


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, out=None, return_stats=False, activation=None):
    """torch.nn.functional.batch_norm over an input (N, C, *): per channel,

        training:  mean and biased variance of the batch (over N and *), and
                   running_mean / running_var, when given, updated in place:
                   r = (1 - momentum) * r + momentum * stat (running_var with the
                   unbiased variance); they must then be writeable aligned float32
                   C-contiguous (C,) arrays
        eval:      running_mean and running_var (required)
        out = (input - mean) / sqrt(var + eps) * weight + bias

    weight and bias (C,) or None (1 and 0). momentum is a number in [0, 1] (the
    layers pass 1 / num_batches_tracked for momentum=None). With return_stats=True
    returns (out, mean, invstd), the (C,) statistics used, which batch_norm_backward
    takes; else out. Statistics are float64 two-pass sums: a channel of equal
    values normalises to exactly 0. Training needs more than 1 value per channel.
    activation None or "relu": "relu" gives max(out, 0) in the same pass (pass that
    output as relu_output to batch_norm_backward).
    """
    xa = as_float32(input, "input")
    cdef int64_t N, C, S
    norm_layout(xa, "batch_norm", &N, &C, &S)
    cdef fnn_activation act = activation_code(activation)
    if act != FNN_ACT_NONE and act != FNN_ACT_RELU:
        raise ValueError(f"batch_norm: activation must be None or 'relu', got {activation!r}")
    cdef bint train = bool(training)
    cdef float e = norm_eps(eps)
    cdef double mom = as_real(momentum, "momentum")
    if not 0.0 <= mom <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: running_mean and running_var must be given together "
                         "(both arrays or both None)")
    cdef cnp.npy_intp dims[1]
    dims[0] = C
    if running_mean is not None:
        if train:  # updated in place
            check_out_dims(running_mean, 1, dims, "running_mean")
            check_out_dims(running_var, 1, dims, "running_var")
            if may_overlap(running_mean, running_var):
                raise ValueError("running_mean and running_var must not share memory")
        else:
            running_mean = channel_vector(running_mean, C, "running_mean", f"{C} channels")
            running_var = channel_vector(running_var, C, "running_var", f"{C} channels")
    elif not train:
        raise ValueError("batch_norm: running_mean and running_var are required when "
                         "training=False (eval mode uses them)")
    wa = channel_vector(weight, C, "weight", f"{C} channels")
    ba = channel_vector(bias, C, "bias", f"{C} channels")
    if train and N * S <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {xa.shape}")
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
        wa, ba = unshared_opt(wa, o), unshared_opt(ba, o)
        if running_mean is not None and (may_overlap(running_mean, o)
                                         or may_overlap(running_var, o)):
            raise ValueError("out must not share memory with running_mean or running_var")
    if train and running_mean is not None:
        xa, wa, ba = unshared(xa, running_mean), unshared_opt(wa, running_mean), unshared_opt(ba, running_mean)
        xa, wa, ba = unshared(xa, running_var), unshared_opt(wa, running_var), unshared_opt(ba, running_var)
    mean = new_float32_dims(1, dims)
    invstd = new_float32_dims(1, dims)
    cdef float *op = fptr(o)
    cdef float *mp = fptr(mean)
    cdef float *ip = fptr(invstd)
    cdef float *rmp = opt_ptr(running_mean)
    cdef float *rvp = opt_ptr(running_var)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = opt_cptr(wa)
    cdef const float *bp = opt_cptr(ba)
    cdef float fm = <float>mom
    cdef fnn_status st
    with nogil:
        st = fnn_batch_norm_forward(op, mp, ip, rmp, rvp, xp, wp, bp, N, C, S, e, fm, train, act)
    check_status(st, "batch_norm")
    return (o, mean, invstd) if return_stats else o


def batch_norm_backward(grad_out, input, mean, invstd, weight=None, training=True,
                        input_grad=True, grad_weight=None, grad_bias=None, relu_output=None):
    """The backward of batch_norm given the (mean, invstd) it returned with
    return_stats=True: returns (dx, dweight, dbias).

        dbias   = sum of grad_out over N and *            (C,)
        dweight = sum of grad_out * xhat                  (C,)
        dx      = weight * invstd * (g - mean(g) - xhat * mean(g * xhat))   training
                = weight * invstd * g                      training=False (fixed stats)

    with g = grad_out and xhat = (input - mean) * invstd. dweight and dbias are
    computed when weight is given (else None), added into grad_weight / grad_bias
    when those (C,) float32 arrays are passed (and returned), else into new zeros.
    dx is None without input_grad. relu_output: the output of
    batch_norm(..., activation="relu"), the ReLU's backward fused: g is then
    grad_out where relu_output > 0, else 0.
    """
    xa = as_float32(input, "input")
    cdef int64_t N, C, S
    norm_layout(xa, "batch_norm_backward", &N, &C, &S)
    g = as_float32(grad_out, "grad_out")
    check_same_shape(xa, "input", g, "grad_out")
    ya = None
    if relu_output is not None:
        ya = as_float32(relu_output, "relu_output")
        check_same_shape(xa, "input", ya, "relu_output")
    ma = channel_vector(mean, C, "mean", f"{C} channels")
    ia = channel_vector(invstd, C, "invstd", f"{C} channels")
    wa = channel_vector(weight, C, "weight", f"{C} channels")
    return norm_backward_call(g, xa, ma, ia, wa, N, C, S, 0, bool(training), input_grad,
                              grad_weight, grad_bias, "batch_norm_backward", ya)


cdef tuple norm_backward_call(object g, object xa, object ma, object ia, object wa, int64_t N,
                              int64_t C, int64_t S, int64_t G, bint train, object input_grad,
                              object grad_weight, object grad_bias, str name,
                              object ya=None):
    """The shared tail of batch_norm_backward (G == 0; ya its relu_output or None)
    and group_norm_backward."""
    gw = gb = None
    if wa is not None:
        gw = grad_buffer(grad_weight, C, "grad_weight")
        gb = grad_buffer(grad_bias, C, "grad_bias")
        if may_overlap(gw, gb):
            raise ValueError("grad_weight must not share memory with grad_bias")
        for dst in (gw, gb):
            g, xa, ma, ia, wa = (unshared(g, dst), unshared(xa, dst), unshared(ma, dst),
                                 unshared(ia, dst), unshared(wa, dst))
            if ya is not None:
                ya = unshared(ya, dst)
    dx = new_float32_dims(cnp.PyArray_NDIM(<cnp.ndarray>xa),
                          cnp.PyArray_DIMS(<cnp.ndarray>xa)) if input_grad else None
    cdef float *dxp = opt_ptr(dx)
    cdef float *gwp = opt_ptr(gw)
    cdef float *gbp = opt_ptr(gb)
    cdef const float *gp = cfptr(g)
    cdef const float *mp = cfptr(ma)
    cdef const float *ip = cfptr(ia)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = opt_cptr(wa)
    cdef const float *yp = opt_cptr(ya)
    cdef fnn_status st
    with nogil:
        if G == 0:
            st = fnn_batch_norm_backward(dxp, gwp, gbp, gp, mp, ip, xp, yp, wp, N, C, S, train, 0)
        else:
            st = fnn_group_norm_backward(dxp, gwp, gbp, gp, mp, ip, xp, wp, N, C, S, G, 0)
    check_status(st, name)
    return dx, gw, gb


cdef int64_t check_groups(object num_groups, int64_t C) except -1:
    cdef object G = as_int64(num_groups, "num_groups")
    if G < 1 or C % G != 0:
        raise ValueError(f"num_groups must be >= 1 and divide the {C} channels, got {G}")
    return G


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, out=None,
               return_stats=False):
    """torch.nn.functional.group_norm over an input (N, C, *): the C channels in
    num_groups groups; each (n, group) normalised with its mean and biased
    variance over its C / num_groups channels and *, then weight and bias (C,)
    per channel (None: 1 and 0). With return_stats=True returns (out, mean,
    invstd), mean and invstd (N, num_groups), which group_norm_backward takes.
    """
    xa = as_float32(input, "input")
    cdef int64_t N, C, S
    norm_layout(xa, "group_norm", &N, &C, &S)
    cdef int64_t G = check_groups(num_groups, C)
    cdef float e = norm_eps(eps)
    wa = channel_vector(weight, C, "weight", f"{C} channels")
    ba = channel_vector(bias, C, "bias", f"{C} channels")
    if S == 0 and N > 0 and C > 0:
        raise ValueError(f"group_norm: input of shape {xa.shape} has no values to normalise "
                         f"in each group")
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
        wa, ba = unshared_opt(wa, o), unshared_opt(ba, o)
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = N, G
    mean = new_float32_dims(2, dims)
    invstd = new_float32_dims(2, dims)
    cdef float *op = fptr(o)
    cdef float *mp = fptr(mean)
    cdef float *ip = fptr(invstd)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = opt_cptr(wa)
    cdef const float *bp = opt_cptr(ba)
    cdef fnn_status st
    with nogil:
        st = fnn_group_norm_forward(op, mp, ip, xp, wp, bp, N, C, S, G, e)
    check_status(st, "group_norm")
    return (o, mean, invstd) if return_stats else o


def group_norm_backward(grad_out, input, mean, invstd, num_groups, weight=None,
                        input_grad=True, grad_weight=None, grad_bias=None):
    """The backward of group_norm given its (mean, invstd) (N, num_groups):
    returns (dx, dweight, dbias), dweight and dbias (C,) when weight is given
    (added into grad_weight / grad_bias when passed), else None; dx None without
    input_grad."""
    xa = as_float32(input, "input")
    cdef int64_t N, C, S
    norm_layout(xa, "group_norm_backward", &N, &C, &S)
    cdef int64_t G = check_groups(num_groups, C)
    g = as_float32(grad_out, "grad_out")
    check_same_shape(xa, "input", g, "grad_out")
    ma = as_float32(mean, "mean")
    ia = as_float32(invstd, "invstd")
    for arr, nm in ((ma, "mean"), (ia, "invstd")):
        if arr.shape != (N, G):
            raise ValueError(f"{nm} must have shape ({N}, {G}) (N, num_groups), got {arr.shape}")
    wa = channel_vector(weight, C, "weight", f"{C} channels")
    return norm_backward_call(g, xa, ma, ia, wa, N, C, S, G, True, input_grad, grad_weight,
                              grad_bias, "group_norm_backward")
