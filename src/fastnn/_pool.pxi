# Pooling (csrc/pool.c, pool_api.c): max, average and adaptive pooling over NCHW (2-D) and
# NCL (1-D) float32, and their backward. The batch and channel axes are folded into P planes
# (unbatched (C, H, W) / (C, L) inputs too); 1-D pooling is 2-D pooling with H = 1.
# Argument names, defaults, output sizes and errors follow torch.nn.functional.

cdef tuple pool_ints(object v, str name, int nd, int64_t low):
    """v (an int, or a tuple / list of nd ints) as a tuple of nd Python ints >= low."""
    if isinstance(v, (tuple, list)):
        vals = tuple(v)
        if len(vals) == 1 and nd > 1:
            vals = vals * nd
        if len(vals) != nd:
            raise ValueError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")
    else:
        vals = (v,) * nd
    out = []
    for x in vals:
        if isinstance(x, (bool, np.bool_)):
            raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")
        i = as_int64(x, name)
        if i < low:
            raise ValueError(f"{name} must be >= {low}, got {v!r}")
        out.append(i)
    return tuple(out)


cdef tuple pool_input(object x, int nd, str name):
    """(array, planes P, spatial dims): x as aligned float32 of rank nd + 1 or nd + 2."""
    xa = as_float32(x, "input")
    shape = xa.shape
    if len(shape) not in (nd + 1, nd + 2):
        want = "(N, C, L) or (C, L)" if nd == 1 else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{name}: input must be {want}, got shape {shape}")
    for s in shape[-nd:]:
        if s == 0:
            raise ValueError(f"{name}: input must have non-zero spatial sizes, got shape {shape}")
    P = 1
    for s in shape[:-nd]:
        P *= s
    return xa, P, shape[-nd:]


cdef int64_t pool_out_len(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d,
                          bint ceil_mode, str name) except -1:
    """Output length along an axis of size n (torch's rule): floor or ceil of
    (n + 2p - d(k-1) - 1) / s + 1, a ceil-mode window dropped if it starts in the right padding."""
    cdef int64_t eff = d * (k - 1) + 1
    cdef int64_t num = n + 2 * p - eff + (s - 1 if ceil_mode else 0)
    cdef int64_t o = (num // s if num >= 0 else -((-num + s - 1) // s)) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    if o < 1:
        raise ValueError(f"{name}: kernel_size {k} (dilation {d}: {eff} taps wide) is larger than "
                         f"the padded input {n} + 2 * padding {p} = {n + 2 * p}")
    return o


cdef tuple pool_geometry(tuple sp, int nd, object kernel_size, object stride, object padding,
                         object dilation, bint ceil_mode, str name, fnn_pool_geom *g):
    """Validate a fixed window over spatial sizes sp; fill g; return the output sizes."""
    k = pool_ints(kernel_size, "kernel_size", nd, 1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        s = k
    else:
        s = pool_ints(stride, "stride", nd, 1)
    p = pool_ints(padding, "padding", nd, 0)
    d = pool_ints(dilation, "dilation", nd, 1)
    for i in range(nd):
        if p[i] > k[i] // 2:
            raise ValueError(f"{name}: padding must be at most half of kernel_size, got padding="
                             f"{padding!r} with kernel_size={kernel_size!r}")
    outs = tuple(pool_out_len(sp[i], k[i], s[i], p[i], d[i], ceil_mode, name) for i in range(nd))
    if nd == 1:
        g.H, g.W, g.OH, g.OW = 1, sp[0], 1, outs[0]
        g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = 1, k[0], 1, s[0], 0, p[0], 1, d[0]
    else:
        g.H, g.W, g.OH, g.OW = sp[0], sp[1], outs[0], outs[1]
        g.kh, g.kw, g.sh, g.sw = k[0], k[1], s[0], s[1]
        g.ph, g.pw, g.dh, g.dw = p[0], p[1], d[0], d[1]
    return outs


cdef object pool_window(object x, int nd, object kernel_size, object stride, object padding,
                        object dilation, bint ceil_mode, str name, fnn_pool_geom *g):
    """Validate a fixed-window pooling; fill g; return (array, P, output shape)."""
    xa, P, sp = pool_input(x, nd, name)
    outs = pool_geometry(sp, nd, kernel_size, stride, padding, dilation, ceil_mode, name, g)
    return xa, P, xa.shape[:-nd] + outs


cdef tuple adaptive_sizes(object output_size, tuple sp, int nd):
    """output_size (an int, or a tuple where None keeps that axis) as nd ints >= 1."""
    if isinstance(output_size, (tuple, list)):
        vals = tuple(output_size)
        if len(vals) != nd:
            raise ValueError(f"output_size must be an int or a tuple of {nd}, got {output_size!r}")
    else:
        vals = (output_size,) * nd
    out = []
    for i in range(nd):
        if vals[i] is None:
            out.append(sp[i])
            continue
        if isinstance(vals[i], (bool, np.bool_)):
            raise TypeError(f"output_size must hold ints or None, got {output_size!r}")
        v = as_int64(vals[i], "output_size")
        if v < 1:
            raise ValueError(f"output_size must be >= 1, got {output_size!r}")
        out.append(v)
    return tuple(out)


cdef object pool_adaptive(object x, int nd, object output_size, str name, fnn_pool_geom *g):
    xa, P, sp = pool_input(x, nd, name)
    outs = adaptive_sizes(output_size, sp, nd)
    geom_planes(g, nd, sp, outs)
    return xa, P, xa.shape[:-nd] + outs


cdef void geom_planes(fnn_pool_geom *g, int nd, tuple sp, tuple outs):
    """g's plane sizes (the window fields set to 1 / 0: adaptive pooling ignores them)."""
    if nd == 1:
        g.H, g.W, g.OH, g.OW = 1, sp[0], 1, outs[0]
    else:
        g.H, g.W, g.OH, g.OW = sp[0], sp[1], outs[0], outs[1]
    g.kh = g.kw = g.sh = g.sw = g.dh = g.dw = 1
    g.ph = g.pw = 0


cdef object new_indices(tuple shape):
    return np.empty(shape, dtype=np.int64)


cdef object as_indices(object indices, tuple shape, str name):
    """indices as aligned C-contiguous int64 of `shape` (the forward's return_indices)."""
    try:
        arr = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name}: indices must be an int64 array, got {type(indices).__name__} "
                        f"({err})") from None
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: indices must be an int64 array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name}: indices must have the shape of grad_out {shape}, "
                         f"got {arr.shape}")
    return aligned_copy(np.asarray(arr, dtype=np.int64, order="C"))


cdef tuple backward_shapes(object grad_out, object input_shape, int nd, str name):
    """(grad_out array, P, input shape, spatial input sizes, spatial output sizes): grad_out
    must be input_shape with the spatial axes replaced."""
    ga = as_float32(grad_out, "grad_out")
    try:
        ishape = tuple(int(as_int64(s, "input_shape")) for s in input_shape)
    except TypeError:
        raise TypeError(f"{name}: input_shape must be a tuple of ints, got {input_shape!r}") from None
    if len(ishape) not in (nd + 1, nd + 2) or any(s < 0 for s in ishape):
        want = "(N, C, L) or (C, L)" if nd == 1 else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{name}: input_shape must be {want}, got {input_shape!r}")
    if ga.ndim != len(ishape) or ga.shape[:-nd] != ishape[:-nd]:
        raise ValueError(f"{name}: grad_out must have shape {ishape[:-nd]} + output sizes, "
                         f"got {ga.shape} for input_shape {ishape}")
    for s in ishape[-nd:]:
        if s == 0:
            raise ValueError(f"{name}: input_shape must have non-zero spatial sizes, "
                             f"got {ishape}")
    P = 1
    for s in ishape[:-nd]:
        P *= s
    return ga, P, ishape, ishape[-nd:], ga.shape[-nd:]


# ---- max pooling ------------------------------------------------------------------

cdef object max_pool_any(object input, int nd, object kernel_size, object stride, object padding,
                         object dilation, object ceil_mode, object return_indices, str name):
    cdef fnn_pool_geom g
    cdef fnn_status st
    cm = check_flag(ceil_mode, "ceil_mode")
    ri = check_flag(return_indices, "return_indices")
    xa, P, oshape = pool_window(input, nd, kernel_size, stride, padding, dilation, cm, name, &g)
    o = new_float32(oshape)
    ix = new_indices(oshape)
    cdef int64_t Pc = P
    cdef float *op = fptr(o)
    cdef const float *xp = cfptr(xa)
    cdef int64_t *ip = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>ix)
    if nelem(o) > 0:
        with nogil:
            st = fnn_max_pool2d_forward(op, ip, xp, Pc, &g)
        check_status(st, name)
    return (o, ix) if ri else o


cdef object adaptive_max_pool_any(object input, int nd, object output_size,
                                  object return_indices, str name):
    cdef fnn_pool_geom g
    cdef fnn_status st
    ri = check_flag(return_indices, "return_indices")
    xa, P, oshape = pool_adaptive(input, nd, output_size, name, &g)
    o = new_float32(oshape)
    ix = new_indices(oshape)
    cdef int64_t Pc = P
    cdef float *op = fptr(o)
    cdef const float *xp = cfptr(xa)
    cdef int64_t *ip = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>ix)
    if nelem(o) > 0:
        with nogil:
            st = fnn_adaptive_max_pool2d_forward(op, ip, xp, Pc, &g)
        check_status(st, name)
    return (o, ix) if ri else o


cdef object max_pool_backward_any(object grad_out, object indices, object input_shape, int nd,
                                  str name):
    cdef fnn_pool_geom g
    cdef fnn_status st
    ga, P, ishape, sp, outs = backward_shapes(grad_out, input_shape, nd, name)
    ia = as_indices(indices, ga.shape, name)
    geom_planes(&g, nd, sp, outs)
    cdef int64_t plane = g.H * g.W
    if ia.size and (ia.min() < 0 or ia.max() >= plane):
        raise ValueError(f"{name}: indices must be in [0, {plane}) (flat offsets into each "
                         f"plane of input_shape {ishape}), got values in "
                         f"[{ia.min()}, {ia.max()}]")
    d = new_float32(ishape)
    cdef int64_t Pc = P
    cdef float *dp = fptr(d)
    cdef const float *gp = cfptr(ga)
    cdef const int64_t *ip = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>ia)
    if nelem(d) > 0:
        if nelem(ga) == 0:
            d.fill(0)
            return d
        with nogil:
            st = fnn_max_pool2d_backward(dp, gp, ip, Pc, &g)
        check_status(st, name)
    return d


cdef bint check_flag(object v, str name) except -1:
    if not isinstance(v, (bool, np.bool_, int)) or isinstance(v, float):
        raise TypeError(f"{name} must be True or False, got {type(v).__name__} {v!r}")
    return bool(v)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (N, C, L) or (C, L); padding is -inf, at most kernel_size // 2.
    With return_indices, (out, indices): int64 offsets into each (n, c) row's L."""
    return max_pool_any(input, 1, kernel_size, stride, padding, dilation, ceil_mode,
                        return_indices, "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (N, C, H, W) or (C, H, W) (torch's argument order: ceil_mode before
    return_indices). With return_indices, (out, indices): int64 flat offsets into each plane's
    H*W. A NaN in a window is its max."""
    return max_pool_any(input, 2, kernel_size, stride, padding, dilation, ceil_mode,
                        return_indices, "max_pool2d")


def max_pool1d_backward(grad_out, indices, input_shape):
    """d input (input_shape): grad_out added at the forward's indices."""
    return max_pool_backward_any(grad_out, indices, input_shape, 1, "max_pool1d_backward")


def max_pool2d_backward(grad_out, indices, input_shape):
    """d input (input_shape): grad_out added at the forward's indices."""
    return max_pool_backward_any(grad_out, indices, input_shape, 2, "max_pool2d_backward")


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max over torch's adaptive bins [floor(i*L/out), ceil((i+1)*L/out))."""
    return adaptive_max_pool_any(input, 1, output_size, return_indices, "adaptive_max_pool1d")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over adaptive bins along H and W; output_size an int or (oh, ow), None keeping one."""
    return adaptive_max_pool_any(input, 2, output_size, return_indices, "adaptive_max_pool2d")


def adaptive_max_pool1d_backward(grad_out, indices, input_shape):
    return max_pool_backward_any(grad_out, indices, input_shape, 1,
                                 "adaptive_max_pool1d_backward")


def adaptive_max_pool2d_backward(grad_out, indices, input_shape):
    return max_pool_backward_any(grad_out, indices, input_shape, 2,
                                 "adaptive_max_pool2d_backward")


# ---- average pooling --------------------------------------------------------------

cdef int64_t check_divisor(object divisor_override) except -1:
    if divisor_override is None:
        return 0
    if isinstance(divisor_override, (bool, np.bool_)):
        raise TypeError(f"divisor_override must be an int or None, got {divisor_override!r}")
    v = as_int64(divisor_override, "divisor_override")
    if v < 1:
        raise ValueError(f"divisor_override must be >= 1 (or None), got {v}")
    return v


cdef object avg_pool_any(object input, int nd, object kernel_size, object stride, object padding,
                         object ceil_mode, object count_include_pad, object divisor_override,
                         str name):
    cdef fnn_pool_geom g
    cdef fnn_status st
    cm = check_flag(ceil_mode, "ceil_mode")
    cdef int cip = check_flag(count_include_pad, "count_include_pad")
    cdef int64_t div = check_divisor(divisor_override)
    xa, P, oshape = pool_window(input, nd, kernel_size, stride, padding, 1, cm, name, &g)
    o = new_float32(oshape)
    cdef int64_t Pc = P
    cdef float *op = fptr(o)
    cdef const float *xp = cfptr(xa)
    if nelem(o) > 0:
        with nogil:
            st = fnn_avg_pool2d_forward(op, xp, Pc, &g, cip, div)
        check_status(st, name)
    return o


cdef object avg_pool_backward_any(object grad_out, object input_shape, int nd, object kernel_size,
                                  object stride, object padding, object ceil_mode,
                                  object count_include_pad, object divisor_override, str name):
    cdef fnn_pool_geom g
    cdef fnn_status st
    cm = check_flag(ceil_mode, "ceil_mode")
    cdef int cip = check_flag(count_include_pad, "count_include_pad")
    cdef int64_t div = check_divisor(divisor_override)
    ga, P, ishape, sp, outs = backward_shapes(grad_out, input_shape, nd, name)
    oshape = pool_geometry(sp, nd, kernel_size, stride, padding, 1, cm, name, &g)
    if ga.shape[-nd:] != oshape:
        raise ValueError(f"{name}: grad_out must have shape {ishape[:-nd] + oshape} "
                         f"(the forward output), got {ga.shape}")
    d = new_float32(ishape)
    cdef int64_t Pc = P
    cdef float *dp = fptr(d)
    cdef const float *gp = cfptr(ga)
    if nelem(d) > 0:
        with nogil:
            st = fnn_avg_pool2d_backward(dp, gp, Pc, &g, cip, div)
        check_status(st, name)
    return d


cdef object adaptive_avg_pool_any(object input, int nd, object output_size, str name):
    cdef fnn_pool_geom g
    cdef fnn_status st
    xa, P, oshape = pool_adaptive(input, nd, output_size, name, &g)
    o = new_float32(oshape)
    cdef int64_t Pc = P
    cdef float *op = fptr(o)
    cdef const float *xp = cfptr(xa)
    if nelem(o) > 0:
        with nogil:
            st = fnn_adaptive_avg_pool2d_forward(op, xp, Pc, &g)
        check_status(st, name)
    return o


cdef object adaptive_avg_pool_backward_any(object grad_out, object input_shape, int nd, str name):
    cdef fnn_pool_geom g
    cdef fnn_status st
    ga, P, ishape, sp, outs = backward_shapes(grad_out, input_shape, nd, name)
    for s in outs:
        if s < 1:
            raise ValueError(f"{name}: grad_out must have spatial sizes >= 1, got {ga.shape}")
    geom_planes(&g, nd, sp, outs)
    d = new_float32(ishape)
    cdef int64_t Pc = P
    cdef float *dp = fptr(d)
    cdef const float *gp = cfptr(ga)
    if nelem(d) > 0:
        with nogil:
            st = fnn_adaptive_avg_pool2d_backward(dp, gp, Pc, &g)
        check_status(st, name)
    return d


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Mean over windows of (N, C, L) or (C, L); padding counts as zeros when
    count_include_pad (torch's default)."""
    return avg_pool_any(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        None, "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of (N, C, H, W) or (C, H, W): the window sum divided by
    divisor_override, else by the window's size with (count_include_pad) or without padding."""
    return avg_pool_any(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override, "avg_pool2d")


def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True):
    """d input (input_shape) of avg_pool1d with the same options."""
    return avg_pool_backward_any(grad_out, input_shape, 1, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, None, "avg_pool1d_backward")


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """d input (input_shape) of avg_pool2d with the same options."""
    return avg_pool_backward_any(grad_out, input_shape, 2, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, divisor_override,
                                 "avg_pool2d_backward")


def adaptive_avg_pool1d(input, output_size):
    """Mean over torch's adaptive bins [floor(i*L/out), ceil((i+1)*L/out))."""
    return adaptive_avg_pool_any(input, 1, output_size, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(input, output_size):
    """Mean over adaptive bins along H and W; output_size an int or (oh, ow), None keeping one."""
    return adaptive_avg_pool_any(input, 2, output_size, "adaptive_avg_pool2d")


def adaptive_avg_pool1d_backward(grad_out, input_shape):
    """d input (input_shape); the output size is grad_out's."""
    return adaptive_avg_pool_backward_any(grad_out, input_shape, 1,
                                          "adaptive_avg_pool1d_backward")


def adaptive_avg_pool2d_backward(grad_out, input_shape):
    """d input (input_shape); the output size is grad_out's."""
    return adaptive_avg_pool_backward_any(grad_out, input_shape, 2,
                                          "adaptive_avg_pool2d_backward")
