# Convolution (csrc/conv/conv_api.c): conv1d / conv2d and their transposes, forward and
# backward, with PyTorch's argument names. Everything is the one 2-D C kernel pair:
# 1-D is H = 1; a transposed convolution's forward is the convolution's backward-data,
# its backward-data the convolution's forward, its weight gradient the convolution's
# dW with input and output swapped. All validation happens here, before `with nogil`.
# Layouts: input (N, C, H, W) or unbatched (C, H, W); weight (O, C/groups, KH, KW);
# transposed weight (C_in, C_out/groups, KH, KW). Dimension letters as conv_api.c.


cdef tuple conv_tuple(object v, int n, str name, int64_t low):
    """v as a tuple of n ints >= low (an int is repeated n times)."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {v!r}")
        vals = tuple(as_int64(e, name) for e in v)
    else:
        vals = (as_int64(v, name),) * n
    for e in vals:
        if e < low:
            what = "positive" if low == 1 else "non-negative"
            raise ValueError(f"{name} must be {what}, got {v!r}")
    return vals


cdef tuple conv_padding(object padding, tuple ksize, tuple stride, tuple dilation, int n):
    """((top, bottom), (left, right)) per spatial axis for an int, tuple, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in range(n))
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' is not supported for strided convolutions, "
                                 f"got stride={stride}")
            pads = []
            for k, d in zip(ksize, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"padding must be an int, a tuple of ints, 'same' or 'valid', "
                         f"got {padding!r}")
    return tuple((p, p) for p in conv_tuple(padding, n, "padding", 0))


cdef tuple conv_inputs(object input, object weight, int n, str name):
    """(x as (N, C, H, W), weight as (O, Cg, KH, KW), batched) for an n-d convolution."""
    xa = as_float32(input, "input")
    w = as_float32(weight, "weight")
    if w.ndim != n + 2:
        raise ValueError(f"{name}: weight must be {n + 2}-D (out_channels, in_channels/groups, "
                         f"{'kH, kW' if n == 2 else 'kW'}), got shape {w.shape}")
    if xa.ndim not in (n + 1, n + 2):
        raise ValueError(f"{name}: input must be {n + 1}-D (unbatched) or {n + 2}-D (batched), "
                         f"got shape {xa.shape}")
    batched = xa.ndim == n + 2
    if not batched:
        xa = xa.reshape((1,) + xa.shape)
    if n == 1:
        xa = xa.reshape(xa.shape[0], xa.shape[1], 1, xa.shape[2])
        w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
    if any(s == 0 for s in xa.shape[1:]) or any(s == 0 for s in w.shape):
        raise ValueError(f"{name}: input {input.shape if hasattr(input, 'shape') else ''} and "
                         f"weight {w.shape} must have non-zero channel and spatial sizes")
    return xa, w, batched


cdef tuple spatial_params(int n, object stride, object padding, object dilation, tuple ksize):
    """(stride, pads, dilation) as 2-D tuples (1-D: the H axis is trivial)."""
    st = conv_tuple(stride, n, "stride", 1)
    dl = conv_tuple(dilation, n, "dilation", 1)
    pads = conv_padding(padding, ksize[2:][2 - n:], st, dl, n)
    if n == 1:
        return (1,) + st, ((0, 0),) + pads, (1,) + dl
    return st, pads, dl


cdef int check_conv_groups(int64_t groups, int64_t C, int64_t O, str cname, str oname,
                      str name) except -1:
    if groups < 1:
        raise ValueError(f"{name}: groups must be positive, got {groups}")
    if C % groups:
        raise ValueError(f"{name}: {cname} ({C}) must be divisible by groups ({groups})")
    if O % groups:
        raise ValueError(f"{name}: {oname} ({O}) must be divisible by groups ({groups})")
    return 0


cdef int fill_shape(fnn_conv2d_shape *s, tuple xshape, tuple wshape, tuple st, tuple pads,
                    tuple dl, int64_t groups, int64_t OH, int64_t OW) except -1:
    s.N, s.C, s.H, s.W = xshape
    s.O, _, s.KH, s.KW = wshape
    s.OH, s.OW = OH, OW
    s.sh, s.sw = st
    s.pt, s.pl = pads[0][0], pads[1][0]
    s.dh, s.dw = dl
    s.groups = groups
    return 0


cdef tuple conv_plan(object input, object weight, object stride, object padding,
                     object dilation, object groups, int n, str name):
    """Everything a convolution call needs, validated: (x, w, batched, shape tuple args)."""
    xa, w, batched = conv_inputs(input, weight, n, name)
    st, pads, dl = spatial_params(n, stride, padding, dilation, w.shape)
    g = as_int64(groups, "groups")
    N, C, H, W = xa.shape
    O, Cg, KH, KW = w.shape
    check_conv_groups(g, C, O, "input channels", "out_channels", name)
    if Cg * g != C:
        raise ValueError(f"{name}: expected input with {Cg * g} channels (weight {w.shape}, "
                         f"groups={g}), got {C} channels (input shape {xa.shape})")
    out_sizes = []
    for size, k, s, (p0, p1), d in zip((H, W), (KH, KW), st, pads, dl):
        span = d * (k - 1) + 1
        if size + p0 + p1 < span:
            raise ValueError(f"{name}: kernel size {k} (dilated {span}) is larger than the "
                             f"padded input size {size + p0 + p1} (input shape {xa.shape})")
        out_sizes.append((size + p0 + p1 - span) // s + 1)
    return xa, w, batched, st, pads, dl, g, out_sizes[0], out_sizes[1]


cdef object conv_result(object y, int n, bint batched):
    """(N, O, OH, OW) back to the caller's rank."""
    if n == 1:
        y = y.reshape(y.shape[0], y.shape[1], y.shape[3])
    return y if batched else y[0]


cdef object conv_grad_in(object g, tuple expect, int n, bint batched, str name):
    """grad_output as (N, O, OH, OW), checked against the forward's output shape."""
    ga = as_float32(g, "grad_output")
    shown = expect
    if n == 1:
        shown = (expect[0], expect[1], expect[3])
    if not batched:
        shown = shown[1:]
    if ga.shape != shown:
        raise ValueError(f"{name}: grad_output must have the forward output's shape {shown}, "
                         f"got {ga.shape}")
    return ga.reshape(expect)


cdef object conv_bias(object bias, int64_t O, str name):
    if bias is None:
        return None
    ba = as_float32(bias, "bias")
    if ba.shape != (O,):
        raise ValueError(f"{name}: bias must have shape ({O},), got {ba.shape}")
    return ba


cdef object conv_forward_core(object xa, object w, object ba, fnn_conv2d_shape *s,
                              fnn_activation act, str name):
    y = new_float32((int(s.N), int(s.O), int(s.OH), int(s.OW)))
    cdef float *yp = fptr(y)
    cdef const float *xp = cfptr(xa)
    cdef const float *wp = cfptr(w)
    cdef const float *bp = NULL if ba is None else cfptr(ba)
    cdef fnn_status status
    with nogil:
        status = fnn_conv2d_forward(yp, xp, wp, bp, s, act)
    check_status(status, name)
    return y


cdef tuple conv_backward_core(object ga, object xa, object w, fnn_conv2d_shape *s,
                              bint want_dx, bint want_dw, bint want_db, str name):
    dx = new_float32((int(s.N), int(s.C), int(s.H), int(s.W))) if want_dx else None
    dw = new_float32(w.shape) if want_dw else None
    db = new_float32((int(s.O),)) if want_db else None
    cdef float *dxp = NULL if dx is None else fptr(dx)
    cdef float *dwp = NULL if dw is None else fptr(dw)
    cdef float *dbp = NULL if db is None else fptr(db)
    cdef const float *gp = cfptr(ga)
    cdef const float *xp = NULL if xa is None else cfptr(xa)
    cdef const float *wp = cfptr(w)
    cdef fnn_status status = FNN_OK
    if s.N == 0 and dx is not None:
        dxp = NULL
    with nogil:
        if dxp != NULL or dwp != NULL or dbp != NULL:
            status = fnn_conv2d_backward(dxp, dwp, dbp, gp, xp, wp, s)
    check_status(status, name)
    return dx, dw, db


cdef object conv_any(object input, object weight, object bias, object stride, object padding,
                     object dilation, object groups, object activation, int n, str name):
    cdef fnn_activation act = activation_code(activation)
    xa, w, batched, st, pads, dl, g, OH, OW = conv_plan(input, weight, stride, padding,
                                                        dilation, groups, n, name)
    ba = conv_bias(bias, w.shape[0], name)
    cdef fnn_conv2d_shape s
    fill_shape(&s, xa.shape, w.shape, st, pads, dl, g, OH, OW)
    return conv_result(conv_forward_core(xa, w, ba, &s, act, name), n, batched)


cdef tuple conv_backward_any(object grad_output, object input, object weight, object stride,
                             object padding, object dilation, object groups, bint input_grad,
                             bint weight_grad, bint bias_grad, int n, str name):
    xa, w, batched, st, pads, dl, g, OH, OW = conv_plan(input, weight, stride, padding,
                                                        dilation, groups, n, name)
    N, C, H, W = xa.shape
    ga = conv_grad_in(grad_output, (N, w.shape[0], OH, OW), n, batched, name)
    cdef fnn_conv2d_shape s
    fill_shape(&s, xa.shape, w.shape, st, pads, dl, g, OH, OW)
    dx, dw, db = conv_backward_core(ga, xa, w, &s, input_grad, weight_grad, bias_grad, name)
    if dx is not None:
        dx = conv_result(dx, n, batched)
    if dw is not None and n == 1:
        dw = dw.reshape(dw.shape[0], dw.shape[1], dw.shape[3])
    return dx, dw, db


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           activation=None):
    """2-D convolution as torch.nn.functional.conv2d: input (N, C, H, W) or (C, H, W),
    weight (O, C/groups, kH, kW), bias (O,) or None; padding an int, a pair, 'same'
    (stride 1 only; an even kernel pads one more at the bottom / right, as torch) or
    'valid'. activation (None or "relu", ...) runs in the GEMM epilogue."""
    return conv_any(input, weight, bias, stride, padding, dilation, groups, activation, 2,
                    "conv2d")


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           activation=None):
    """1-D convolution as torch.nn.functional.conv1d: input (N, C, L) or (C, L), weight
    (O, C/groups, kW); the 2-D kernel with H = 1."""
    return conv_any(input, weight, bias, stride, padding, dilation, groups, activation, 1,
                    "conv1d")


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    input_grad=True, weight_grad=True, bias_grad=True):
    """(grad_input or None, grad_weight or None, grad_bias or None) of
    conv2d(input, weight, bias, stride, padding, dilation, groups) given grad_output;
    each gradient is a fresh array, skipped (None) when its flag is False."""
    return conv_backward_any(grad_output, input, weight, stride, padding, dilation, groups,
                             input_grad, weight_grad, bias_grad, 2, "conv2d_backward")


def conv1d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    input_grad=True, weight_grad=True, bias_grad=True):
    """conv2d_backward for conv1d."""
    return conv_backward_any(grad_output, input, weight, stride, padding, dilation, groups,
                             input_grad, weight_grad, bias_grad, 1, "conv1d_backward")


# ---- transposed convolution ---------------------------------------------------

cdef tuple convt_plan(object input, object weight, object stride, object padding,
                      object output_padding, object groups, object dilation, object output_size,
                      int n, str name):
    """(x, w, batched, conv shape args) of a transposed convolution, whose output is the
    input of the convolution with the same weight."""
    xa, w, batched = conv_inputs(input, weight, n, name)
    st = conv_tuple(stride, n, "stride", 1)
    dl = conv_tuple(dilation, n, "dilation", 1)
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding must be an int or a tuple of ints, got {padding!r}")
    pd = conv_tuple(padding, n, "padding", 0)
    op = conv_tuple(output_padding, n, "output_padding", 0)
    g = as_int64(groups, "groups")
    N, Cin, H, W = xa.shape
    Cin_w, Cog, KH, KW = w.shape
    if g < 1:
        raise ValueError(f"{name}: groups must be positive, got {g}")
    if Cin_w != Cin:
        raise ValueError(f"{name}: expected input with {Cin_w} channels (weight {w.shape}), "
                         f"got {Cin} channels (input shape {xa.shape})")
    check_conv_groups(g, Cin, Cog * g, "input channels", "out_channels", name)
    ks = (KW,) if n == 1 else (KH, KW)
    ins = (W,) if n == 1 else (H, W)
    outs = []
    for i in range(n):
        if op[i] >= max(st[i], dl[i]):
            raise ValueError(f"{name}: output_padding {op} must be smaller than stride {st} "
                             f"or dilation {dl}")
        outs.append((ins[i] - 1) * st[i] - 2 * pd[i] + dl[i] * (ks[i] - 1) + op[i] + 1)
    if output_size is not None:
        sizes = list(output_size)[-n:]
        if len(sizes) != n:
            raise ValueError(f"{name}: output_size must end with {n} sizes, got {output_size!r}")
        for i in range(n):
            lo = (ins[i] - 1) * st[i] - 2 * pd[i] + dl[i] * (ks[i] - 1) + 1
            size = as_int64(sizes[i], "output_size")
            if not lo <= size < lo + max(st[i], dl[i]):
                raise ValueError(f"{name}: requested output_size {tuple(sizes)} is not "
                                 f"reachable: each size must be in [{lo}, "
                                 f"{lo + max(st[i], dl[i]) - 1}] for axis {i}")
            outs[i] = size
    for o in outs:
        if o < 1:
            raise ValueError(f"{name}: the output size {tuple(outs)} would be empty for "
                             f"input shape {xa.shape}, weight {w.shape} and padding {pd}")
    if n == 1:
        st, pd, dl, outs = (1,) + st, (0,) + pd, (1,) + dl, [1] + outs
    pads = tuple((p, p) for p in pd)
    return xa, w, batched, st, pads, dl, g, outs[0], outs[1]


cdef int fill_transposed(fnn_conv2d_shape *s, object xa, object w, tuple st, tuple pads,
                         tuple dl, int64_t g, int64_t OH, int64_t OW) except -1:
    """The convolution whose input is the transposed output (N, Cout, OH, OW)."""
    N, Cin, H, W = xa.shape
    fill_shape(s, (N, w.shape[1] * g, OH, OW), w.shape, st, pads, dl, g, H, W)
    return 0


cdef object convt_any(object input, object weight, object bias, object stride, object padding,
                      object output_padding, object groups, object dilation, object output_size,
                      int n, str name):
    xa, w, batched, st, pads, dl, g, OH, OW = convt_plan(
        input, weight, stride, padding, output_padding, groups, dilation, output_size, n, name)
    Cout = w.shape[1] * g
    ba = conv_bias(bias, Cout, name)
    cdef fnn_conv2d_shape s
    fill_transposed(&s, xa, w, st, pads, dl, g, OH, OW)
    y, _, _ = conv_backward_core(xa, None, w, &s, True, False, False, name)
    if s.N == 0:
        y = new_float32((0, int(Cout), int(OH), int(OW)))
    if ba is not None:
        y += ba[:, None, None]
    return conv_result(y, n, batched)


cdef tuple convt_backward_any(object grad_output, object input, object weight, object stride,
                              object padding, object output_padding, object groups,
                              object dilation, object output_size, bint input_grad,
                              bint weight_grad, bint bias_grad, int n, str name):
    xa, w, batched, st, pads, dl, g, OH, OW = convt_plan(
        input, weight, stride, padding, output_padding, groups, dilation, output_size, n, name)
    N = xa.shape[0]
    Cout = w.shape[1] * g
    ga = conv_grad_in(grad_output, (N, Cout, OH, OW), n, batched, name)
    cdef fnn_conv2d_shape s
    fill_transposed(&s, xa, w, st, pads, dl, g, OH, OW)
    dx = dw = db = None
    if input_grad:
        dx = conv_result(conv_forward_core(ga, w, None, &s, FNN_ACT_NONE, name), n, batched)
    if weight_grad:
        # dW of the convolution whose input is grad_output and whose output is input
        _, dw, _ = conv_backward_core(xa, ga, w, &s, False, True, False, name)
        if n == 1:
            dw = dw.reshape(dw.shape[0], dw.shape[1], dw.shape[3])
    if bias_grad:
        db = ga.sum(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)
    return dx, dw, db


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, output_size=None):
    """Transposed 2-D convolution as torch.nn.functional.conv_transpose2d (same argument
    order): input (N, C_in, H, W) or (C_in, H, W), weight (C_in, C_out/groups, kH, kW).
    output_size (optional, trailing sizes) picks the output size as ConvTranspose2d's
    forward(input, output_size) does, in place of output_padding."""
    return convt_any(input, weight, bias, stride, padding, output_padding, groups, dilation,
                     output_size, 2, "conv_transpose2d")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, output_size=None):
    """Transposed 1-D convolution: input (N, C_in, L) or (C_in, L), weight
    (C_in, C_out/groups, kW)."""
    return convt_any(input, weight, bias, stride, padding, output_padding, groups, dilation,
                     output_size, 1, "conv_transpose1d")


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1, output_size=None,
                              input_grad=True, weight_grad=True, bias_grad=True):
    """(grad_input or None, grad_weight or None, grad_bias or None) of conv_transpose2d."""
    return convt_backward_any(grad_output, input, weight, stride, padding, output_padding,
                              groups, dilation, output_size, input_grad, weight_grad, bias_grad,
                              2, "conv_transpose2d_backward")


def conv_transpose1d_backward(grad_output, input, weight, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1, output_size=None,
                              input_grad=True, weight_grad=True, bias_grad=True):
    """(grad_input or None, grad_weight or None, grad_bias or None) of conv_transpose1d."""
    return convt_backward_any(grad_output, input, weight, stride, padding, output_padding,
                              groups, dilation, output_size, input_grad, weight_grad, bias_grad,
                              1, "conv_transpose1d_backward")
