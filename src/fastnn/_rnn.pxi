# Recurrent layers (csrc/rnn/rnn_api.c): one layer and one direction over a whole
# time-major sequence per call, forward and backward, with torch.nn's weight layouts.
# Multi-layer and bidirectional models (fastnn.nn.RNN / LSTM / GRU) are several calls.
# Dimension letters: T steps, N batch, I input features, H hidden units, G gates.
# All validation happens here, before `with nogil`.

_RNN_MODES = {"rnn_tanh": FNN_RNN_TANH, "rnn_relu": FNN_RNN_RELU, "lstm": FNN_RNN_LSTM,
              "gru": FNN_RNN_GRU}
_RNN_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


cdef object rnn_lengths(object lengths, int64_t T, int64_t N, str name):
    """lengths as aligned int64 (N,), each in [1, T], longest first; None stays None."""
    if lengths is None:
        return None
    la = as_labels(lengths, "lengths")
    if la.shape != (N,):
        raise ValueError(f"{name}: lengths must have shape ({N},) (one per sequence), "
                         f"got {la.shape}")
    if N and (la.min() < 1 or la.max() > T):
        raise ValueError(f"{name}: lengths must be in [1, {T}] (the sequence length), "
                         f"got values in [{la.min()}, {la.max()}]")
    if N > 1 and np.any(la[1:] > la[:-1]):
        raise ValueError(f"{name}: lengths must be sorted longest first (non-increasing); "
                         f"sort the batch first, as pack_padded_sequence(enforce_sorted=True)")
    return la


cdef object rnn_matrix(object a, tuple shape, str what, str name):
    arr = as_float32(a, what)
    if arr.shape != shape:
        raise ValueError(f"{name}: {what} must have shape {shape}, got {arr.shape}")
    return arr


cdef int rnn_fill_shape(fnn_rnn_shape *s, str mode, int64_t T, int64_t N, int64_t I,
                        int64_t H, int64_t P, int64_t ldy, bint reverse) except -1:
    s.T, s.N, s.input_size, s.H, s.proj_size, s.ldy = T, N, I, H, P, ldy
    s.cell = _RNN_MODES[mode]
    s.reverse = reverse
    return 0


cdef tuple rnn_plan(object input, object w_ih, object w_hh, object w_hr, object b_ih,
                    object b_hh, str mode, str name):
    """(x (T, N, I), w_ih, w_hh, w_hr, b_ih, b_hh, H, P) validated; R = P or H is the
    state's width."""
    if mode not in _RNN_MODES:
        raise ValueError(f"{name}: mode must be one of {sorted(_RNN_MODES)}, got {mode!r}")
    x = as_float32(input, "input")
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"{name}: input must be (T, N, input_size) with every size positive, "
                         f"got shape {x.shape}")
    cdef int64_t G = _RNN_GATES[mode]
    wi = as_float32(w_ih, "w_ih")
    if wi.ndim != 2 or wi.shape[0] % G or wi.shape[0] == 0:
        raise ValueError(f"{name}: w_ih must be ({G}*hidden_size, input_size) for mode "
                         f"{mode!r}, got shape {wi.shape}")
    cdef int64_t H = wi.shape[0] // G
    if wi.shape[1] != x.shape[2]:
        raise ValueError(f"{name}: input has {x.shape[2]} features but w_ih {wi.shape} expects "
                         f"{wi.shape[1]}")
    cdef int64_t P = 0
    whr = None
    if w_hr is not None:
        if mode != "lstm":
            raise ValueError(f"{name}: w_hr (a projection) is only for mode='lstm'")
        whr = as_float32(w_hr, "w_hr")
        if whr.ndim != 2 or whr.shape[1] != H or not 0 < whr.shape[0] < H:
            raise ValueError(f"{name}: w_hr must be (proj_size, {H}) with 0 < proj_size < "
                             f"{H}, got shape {whr.shape}")
        P = whr.shape[0]
    wh = rnn_matrix(w_hh, (G * H, P or H), "w_hh", name)
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{name}: pass both b_ih and b_hh or neither")
    bi = None if b_ih is None else rnn_matrix(b_ih, (G * H,), "b_ih", name)
    bh = None if b_hh is None else rnn_matrix(b_hh, (G * H,), "b_hh", name)
    return x, wi, wh, whr, bi, bh, H, P


cdef object rnn_out_array(object out, int64_t T, int64_t N, int64_t H, int64_t offset,
                          str what, str name):
    """out (T, N, W) float32 C-contiguous with W >= offset + H, or a fresh (T, N, H)."""
    if out is None:
        if offset != 0:
            raise ValueError(f"{name}: {what}_offset needs {what}")
        return new_float32((T, N, H))
    if (type(out) is not np.ndarray or out.dtype != np.float32 or not out.flags.c_contiguous
            or not out.flags.writeable or not out.flags.aligned):
        raise TypeError(f"{name}: {what} must be a writeable aligned float32 C-contiguous "
                        f"ndarray")
    if out.ndim != 3 or out.shape[0] != T or out.shape[1] != N or offset < 0 \
            or out.shape[2] < offset + H:
        raise ValueError(f"{name}: {what} must be ({T}, {N}, W) with W >= {what}_offset + "
                         f"{H} = {offset + H}, got shape {out.shape}")
    return out


def rnn(input, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, mode="lstm",
        reverse=False, lengths=None, out=None, out_offset=0, keep_workspace=True, w_hr=None):
    """One recurrent layer, one direction, over a whole sequence in one C call.

    input (T, N, I) time-major; w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,) or
    both None, as torch.nn (gates: lstm i, f, g, o; gru r, z, n; rnn_tanh / rnn_relu
    one); h0, c0 (N, H) or None for zeros (c0 only for lstm). lengths (N,) int64,
    longest first: outputs past a sequence's length are 0 and its final state is the
    one after its last valid step (reverse: the sequence's last valid step runs
    first). out: a (T, N, W) float32 array to write the output into, at columns
    out_offset .. out_offset + R (a bidirectional layer's two halves). w_hr (P, H):
    an LSTM projection (torch's proj_size P): h = (o tanh(c)) w_hr^T, so the output,
    h0 and h_n have R = P columns and w_hh is (4H, P); else R = H.
    Returns (output, h_n, c_n or None, workspace or None); the workspace is what
    rnn_backward needs (one backward per forward: it is overwritten)."""
    name = "rnn"
    x, wi, wh, whr, bi, bh, H, P = rnn_plan(input, w_ih, w_hh, w_hr, b_ih, b_hh, mode, name)
    cdef int64_t T = x.shape[0], N = x.shape[1], I = x.shape[2], R = P or H
    cdef int64_t off = as_int64(out_offset, "out_offset")
    la = rnn_lengths(lengths, T, N, name)
    h0a = None if h0 is None else rnn_matrix(h0, (N, R), "h0", name)
    if c0 is not None and mode != "lstm":
        raise ValueError(f"{name}: c0 is only for mode='lstm', got mode {mode!r}")
    c0a = None if c0 is None else rnn_matrix(c0, (N, H), "c0", name)
    y = rnn_out_array(out, T, N, R, off, "out", name)
    cdef fnn_rnn_shape s
    rnn_fill_shape(&s, mode, T, N, I, H, P, y.shape[2], reverse)
    h_n = new_float32((N, R))
    c_n = new_float32((N, H)) if mode == "lstm" else None
    ws = new_float32((fnn_rnn_workspace_floats(&s),)) if keep_workspace else None
    cdef float *yp = fptr(y) + off
    cdef float *hnp = fptr(h_n)
    cdef float *cnp_ = NULL if c_n is None else fptr(c_n)
    cdef float *wsp = NULL if ws is None else fptr(ws)
    cdef const float *xp = cfptr(x)
    cdef const float *h0p = NULL if h0a is None else cfptr(h0a)
    cdef const float *c0p = NULL if c0a is None else cfptr(c0a)
    cdef const float *wip = cfptr(wi)
    cdef const float *whp = cfptr(wh)
    cdef const float *whrp = NULL if whr is None else cfptr(whr)
    cdef const float *bip = NULL if bi is None else cfptr(bi)
    cdef const float *bhp = NULL if bh is None else cfptr(bh)
    cdef const int64_t *lp = NULL if la is None else <const int64_t *>cnp.PyArray_DATA(la)
    cdef fnn_status status
    with nogil:
        status = fnn_rnn_forward(yp, hnp, cnp_, wsp, xp, h0p, c0p, wip, whp, whrp, bip, bhp, lp,
                                 &s)
    check_status(status, name)
    return y, h_n, c_n, ws


def rnn_backward(grad_output, grad_h_n, grad_c_n, workspace, input, w_ih, w_hh, mode="lstm",
                 reverse=False, lengths=None, grad_output_offset=0, input_grad=True,
                 input_grad_out=None, weight_grads=None, bias=True, w_hr=None):
    """Gradients of one rnn() call given its workspace (consumed: one backward per
    forward; it holds the forward's input, so `input` here only gives the shapes) and the gradients of its output (T, N, W) at columns grad_output_offset
    .. + R (or None) and of h_n (N, R), c_n (N, H) (or None). Returns (grad_input or
    None, grad_h0, grad_c0 or None, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh,
    grad_w_hr or None); w_hr as the forward's.
    input_grad_out (T, N, I): the input gradient is added into it instead of a fresh
    array (a bidirectional layer's two directions). weight_grads: four arrays
    (w_ih, w_hh, b_ih, b_hh shapes; the biases may be None) that the weight
    gradients are added into, returned as given; else fresh arrays (biases only when
    bias=True); a fifth array for w_hr with a projection."""
    name = "rnn_backward"
    x, wi, wh, whr, _, _, H, P = rnn_plan(input, w_ih, w_hh, w_hr, None, None, mode, name)
    cdef int64_t T = x.shape[0], N = x.shape[1], I = x.shape[2], R = P or H
    cdef int64_t G = _RNN_GATES[mode]
    cdef int64_t off = as_int64(grad_output_offset, "grad_output_offset")
    la = rnn_lengths(lengths, T, N, name)
    cdef fnn_rnn_shape s
    gy = None
    if grad_output is not None:
        gy = as_float32(grad_output, "grad_output")
        if gy.ndim != 3 or gy.shape[0] != T or gy.shape[1] != N or off < 0 \
                or gy.shape[2] < off + R:
            raise ValueError(f"{name}: grad_output must be ({T}, {N}, W) with W >= "
                             f"grad_output_offset + {R}, got shape {gy.shape}")
    rnn_fill_shape(&s, mode, T, N, I, H, P, R if gy is None else gy.shape[2], reverse)
    if (type(workspace) is not np.ndarray or workspace.dtype != np.float32
            or workspace.shape != (fnn_rnn_workspace_floats(&s),)
            or not workspace.flags.c_contiguous or not workspace.flags.writeable):
        raise ValueError(f"{name}: workspace must be the one rnn() returned for this input "
                         f"and mode")
    ghn = None if grad_h_n is None else rnn_matrix(grad_h_n, (N, R), "grad_h_n", name)
    if grad_c_n is not None and mode != "lstm":
        raise ValueError(f"{name}: grad_c_n is only for mode='lstm'")
    gcn = None if grad_c_n is None else rnn_matrix(grad_c_n, (N, H), "grad_c_n", name)
    if weight_grads is None:
        dwi, dwh = np.zeros((G * H, I), np.float32), np.zeros((G * H, R), np.float32)
        dbi = np.zeros(G * H, np.float32) if bias else None
        dbh = np.zeros(G * H, np.float32) if bias else None
        dwr = np.zeros((P, H), np.float32) if P else None
    else:
        dwi, dwh, dbi, dbh = weight_grads[:4]
        dwr = weight_grads[4] if len(weight_grads) > 4 else None
        for arr, shape, what in ((dwi, (G * H, I), "w_ih"), (dwh, (G * H, R), "w_hh"),
                                 (dbi, (G * H,), "b_ih"), (dbh, (G * H,), "b_hh"),
                                 (dwr, (P, H), "w_hr")):
            if arr is None:
                continue
            if (type(arr) is not np.ndarray or arr.dtype != np.float32 or arr.shape != shape
                    or not arr.flags.c_contiguous or not arr.flags.writeable):
                raise ValueError(f"{name}: the {what} gradient must be a writeable float32 "
                                 f"C-contiguous array of shape {shape}")
    dx = None
    cdef int accumulate = 0
    if input_grad_out is not None:
        dx = rnn_out_array(input_grad_out, T, N, I, 0, "input_grad_out", name)
        if dx.shape[2] != I:
            raise ValueError(f"{name}: input_grad_out must have the input's shape {x.shape}")
        accumulate = 1
    elif input_grad:
        dx = new_float32((T, N, I))
    dh0 = new_float32((N, R))
    dc0 = new_float32((N, H)) if mode == "lstm" else None
    cdef float *dxp = NULL if dx is None else fptr(dx)
    cdef float *dh0p = fptr(dh0)
    cdef float *dc0p = NULL if dc0 is None else fptr(dc0)
    cdef float *dwip = NULL if dwi is None else fptr(dwi)
    cdef float *dwhp = NULL if dwh is None else fptr(dwh)
    cdef float *dbip = NULL if dbi is None else fptr(dbi)
    cdef float *dbhp = NULL if dbh is None else fptr(dbh)
    cdef float *dwrp = NULL if dwr is None else fptr(dwr)
    cdef const float *whrp = NULL if whr is None else cfptr(whr)
    cdef const float *gyp = NULL if gy is None else cfptr(gy) + off
    cdef const float *ghp = NULL if ghn is None else cfptr(ghn)
    cdef const float *gcp = NULL if gcn is None else cfptr(gcn)
    cdef float *wsp = fptr(workspace)
    cdef const float *wip = cfptr(wi)
    cdef const float *whp = cfptr(wh)
    cdef const int64_t *lp = NULL if la is None else <const int64_t *>cnp.PyArray_DATA(la)
    cdef fnn_status status
    with nogil:
        status = fnn_rnn_backward(dxp, dh0p, dc0p, dwip, dwhp, dwrp, dbip, dbhp, gyp, ghp, gcp,
                                  wsp, wip, whp, whrp, lp, &s, accumulate)
    check_status(status, name)
    return dx, dh0, dc0, dwi, dwh, dbi, dbh, dwr
