# Scaled dot-product attention (csrc/attention.c, attention_api.c), as
# torch.nn.functional.scaled_dot_product_attention. Operands (*, L, E), (*, S, E),
# (*, S, Ev) are read through their strides: views of one packed projection (a
# reshape and transpose of (B, T, 3, H, E)) go to C without copies, and out= and
# the grad_ buffers may be such views too. The leading axes are (batch..., heads):
# all but the last must merge into one stride, else inputs are copied.

cdef object SAVE_PROBS_MAX_BYTES = 256 << 20  # above this, backward recomputes them


cdef object strided_float32(object a, str name):
    """a as float32 with a contiguous last axis, aligned: strided views kept as they are."""
    if (type(a) is np.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a) and cnp.PyArray_ISALIGNED(<cnp.ndarray>a)
            and a.ndim >= 2 and a.strides[a.ndim - 1] == 4 and a.shape[a.ndim - 1] > 0):
        return a
    arr = as_float32(a, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (*, rows, features), got "
                         f"shape {arr.shape}")
    return arr


cdef bint head_strides(object a, fnn_attention_strides *st):
    """st = the (batch, head, row) element strides of a (*, rows, cols); False when the
    batch axes do not merge into one stride."""
    nd = a.ndim
    strides = [s // 4 for s in a.strides]
    st.row = strides[nd - 2]
    st.b, st.h = 0, 0
    if nd == 3:
        st.b = strides[0]
    if nd <= 3:
        return True
    st.h = strides[nd - 3]
    st.b = strides[nd - 4]
    for i in range(nd - 5, -1, -1):  # axis i must step over all of axis i + 1
        if a.shape[i] != 1 and strides[i] != strides[i + 1] * a.shape[i + 1]:
            return False
    return True


cdef object laid_out(object a, str name, fnn_attention_strides *st):
    """a (strided_float32) and its strides; copied when its batch axes do not merge."""
    a = strided_float32(a, name)
    if not head_strides(a, st):
        a = np.ascontiguousarray(a)
        head_strides(a, st)
    return a


cdef tuple batch_heads(tuple lead):
    """(B, H) of the leading axes: H the last one (1 for 3-D operands), B the rest."""
    if len(lead) == 0:
        return 1, 1
    if len(lead) == 1:
        return lead[0], 1
    B = 1
    for n in lead[:len(lead) - 1]:
        B *= n
    return B, lead[len(lead) - 1]


cdef object float_mask(object attn_mask, tuple lead, int64_t L, int64_t S,
                       fnn_attention_strides *st):
    """The additive float32 mask broadcast to (*lead, L, S), with its strides (S contiguous);
    bool masks: True may attend (0), False may not (-inf), as torch's SDPA."""
    m = np.asarray(attn_mask)
    if m.dtype == np.bool_:
        m = np.where(m, np.float32(0.0), np.float32(-np.inf))
    elif m.dtype.kind not in "iuf":
        raise TypeError(f"attn_mask must be a bool or float mask, got dtype {m.dtype}")
    m = np.asarray(m, np.float32)
    try:
        full = np.broadcast_to(m, lead + (L, S))
    except ValueError:
        raise ValueError(f"attn_mask of shape {m.shape} does not broadcast to the attention "
                         f"shape {lead + (L, S)} (*, L, S)") from None
    if full.strides[full.ndim - 1] != 4:
        full = np.ascontiguousarray(full)
    return laid_out(full, "attn_mask", st)


cdef object dropout_factors(double p, int64_t n_b, int64_t H, int64_t L, int64_t S):
    """(B, H, L, S) factors 0 or 1 / (1 - p) from fastnn's random stream."""
    from fastnn.random import generator
    if p >= 1.0:
        return np.zeros((n_b, H, L, S), np.float32)
    keep = generator().random((n_b, H, L, S), dtype=np.float32) >= np.float32(p)
    return keep * np.float32(1.0 / (1.0 - p))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, *, out=None,
                                 return_context=False, save_probs=None):
    """torch.nn.functional.scaled_dot_product_attention: softmax(q k^T * scale +
    mask) v over query (*, L, E), key (*, S, E), value (*, S, Ev) -> (*, L, Ev), the
    leading axes equal (batch..., heads). attn_mask broadcasts to (*, L, S): bool
    (True may attend) or float (added). is_causal: query i sees keys j <= i
    (top-left), computed only there; unlike torch it may be combined with attn_mask.
    A query that may see no key gets zeros (torch's CPU flash kernel; its math path
    gives NaN). dropout_p drops attention weights (pass p only in training).
    scale defaults to 1 / sqrt(E). Strided views are read in place; out= may be one.

    return_context=True returns (out, context): what
    scaled_dot_product_attention_backward takes (the rows' logsumexp, the
    probabilities when save_probs (None: when they take at most 256 MiB), the mask
    and dropout factors, scale, is_causal). context[1] is then the attention weights
    (*, L, S) before dropout, or None when not saved."""
    cdef fnn_attention_shape s
    q = laid_out(query, "query", &s.q)
    k = laid_out(key, "key", &s.k)
    v = laid_out(value, "value", &s.v)
    lead = tuple(q.shape[:q.ndim - 2])
    if tuple(k.shape[:k.ndim - 2]) != lead or tuple(v.shape[:v.ndim - 2]) != lead:
        raise ValueError(f"query, key and value must share their leading (batch, heads) axes, "
                         f"got shapes {q.shape}, {k.shape}, {v.shape}")
    nd = q.ndim
    s.L, s.E = q.shape[nd - 2], q.shape[nd - 1]
    s.S, s.Ev = k.shape[nd - 2], v.shape[nd - 1]
    if k.shape[nd - 1] != s.E:
        raise ValueError(f"key must have the query's feature size E={s.E}, got shape {k.shape}")
    if v.shape[nd - 2] != s.S:
        raise ValueError(f"value must have the key's length S={s.S}, got shape {v.shape}")
    if s.S < 1:
        raise ValueError(f"key must have at least one position, got shape {k.shape}")
    s.B, s.H = batch_heads(lead)
    p = as_real(dropout_p, "dropout_p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout_p must be in [0, 1], got {dropout_p!r}")
    sc = 1.0 / np.sqrt(s.E) if scale is None else as_real(scale, "scale")
    if not np.isfinite(sc):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    s.scale = <float>sc
    s.causal = bool(is_causal)
    mask = None
    if attn_mask is not None:
        mask = float_mask(attn_mask, lead, s.L, s.S, &s.mask)
    drop = dropout_factors(p, s.B, s.H, s.L, s.S) if p > 0.0 else None
    o_shape = lead + (s.L, s.Ev)
    if out is None:
        o = new_float32(o_shape)
    else:
        o = out
        if not (type(o) is np.ndarray and o.dtype == np.float32 and o.flags.writeable
                and o.ndim >= 2 and o.strides[o.ndim - 1] == 4 and o.flags.aligned):
            raise ValueError("out must be a writeable aligned float32 array with a "
                             "contiguous last axis")
        if tuple(o.shape) != o_shape:
            raise ValueError(f"out must have shape {o_shape}, got {o.shape}")
        for a in (q, k, v):
            if elements_overlap(a, o):
                raise ValueError("out must not share memory with query, key or value")
    if not head_strides(o, &s.out):
        raise ValueError("out's batch axes must merge into one stride")
    nbh = s.B * s.H
    lse = new_float32((nbh, s.L))
    if save_probs is None:
        save_probs = return_context and nbh * s.L * s.S * 4 <= SAVE_PROBS_MAX_BYTES
    probs = new_float32(lead + (s.L, s.S)) if save_probs else None
    cdef float *op = fptr(o)
    cdef float *lp = fptr(lse)
    cdef float *pp = opt_ptr(probs)
    cdef const float *qp = cfptr(q)
    cdef const float *kp = cfptr(k)
    cdef const float *vp = cfptr(v)
    cdef const float *mp = opt_cptr(mask)
    cdef const float *dp = opt_cptr(drop)
    cdef fnn_status st
    with nogil:
        st = fnn_attention_forward(op, lp, pp, qp, kp, vp, mp, dp, &s)
    check_status(st, "scaled_dot_product_attention")
    if not return_context:
        return o
    return o, (lse, probs, mask, drop, s.scale, bool(s.causal))


cdef bint elements_overlap(object a, object b):
    """True when a and b share an element (interleaved views of one buffer do not)."""
    if not may_overlap(a, b):
        return False
    try:
        return np.shares_memory(a, b, max_work=100000)
    except np.exceptions.TooHardError:
        return True


cdef object grad_like(object given, object a, str name):
    """a new float32 array of a's shape, or `given` checked to be a writeable view of it"""
    if given is None:
        return new_float32(tuple(a.shape))
    if not (type(given) is np.ndarray and given.dtype == np.float32 and given.flags.writeable
            and given.ndim >= 2 and given.strides[given.ndim - 1] == 4
            and given.flags.aligned):
        raise ValueError(f"{name} must be a writeable aligned float32 array with a contiguous "
                         f"last axis")
    if tuple(given.shape) != tuple(a.shape):
        raise ValueError(f"{name} must have shape {a.shape}, got {given.shape}")
    return given


def scaled_dot_product_attention_backward(grad_out, query, key, value, out, context,
                                          grad_query=None, grad_key=None, grad_value=None):
    """The backward of scaled_dot_product_attention(..., return_context=True): returns
    (grad_query, grad_key, grad_value), written into the grad_ arrays when given
    (strided views allowed, as for out=), else new."""
    cdef fnn_attention_shape s
    q = laid_out(query, "query", &s.q)
    k = laid_out(key, "key", &s.k)
    v = laid_out(value, "value", &s.v)
    o = laid_out(out, "out", &s.out)
    nd = q.ndim
    lead = tuple(q.shape[:nd - 2])
    if k.ndim != nd or v.ndim != nd or o.ndim != nd:
        raise ValueError(f"query, key, value and out must have the same number of dimensions, "
                         f"got shapes {q.shape}, {k.shape}, {v.shape}, {o.shape}")
    s.L, s.E, s.S, s.Ev = q.shape[nd - 2], q.shape[nd - 1], k.shape[nd - 2], v.shape[nd - 1]
    s.B, s.H = batch_heads(lead)
    if (tuple(k.shape) != lead + (s.S, s.E) or tuple(v.shape) != lead + (s.S, s.Ev)
            or tuple(o.shape) != lead + (s.L, s.Ev)):
        raise ValueError(f"query, key, value and out have inconsistent shapes {q.shape}, "
                         f"{k.shape}, {v.shape}, {o.shape}")
    g = laid_out(grad_out, "grad_out", &s.dout)
    if tuple(g.shape) != tuple(o.shape):
        raise ValueError(f"grad_out must have the output's shape {o.shape}, got {g.shape}")
    if not (isinstance(context, tuple) and len(context) == 6):
        raise ValueError("context must be the one scaled_dot_product_attention("
                         "return_context=True) returned")
    lse, probs, mask, drop, sc, causal = context
    nbh = s.B * s.H
    if not (isinstance(lse, np.ndarray) and lse.dtype == np.float32 and lse.shape == (nbh, s.L)
            and lse.flags.c_contiguous):
        raise ValueError(f"context does not belong to attention of shape {lead + (s.L, s.S)}")
    for a, nm in ((probs, "probs"), (drop, "dropout factors")):
        if a is not None and not (isinstance(a, np.ndarray) and a.dtype == np.float32 and
                                  a.size == nbh * s.L * s.S and a.flags.c_contiguous):
            raise ValueError(f"context's {nm} do not belong to attention of shape "
                             f"{lead + (s.L, s.S)}")
    if mask is not None:
        if tuple(mask.shape) != lead + (s.L, s.S) or mask.dtype != np.float32:
            raise ValueError("context's mask does not belong to this attention")
        head_strides(mask, &s.mask)
    s.scale = <float>sc
    s.causal = bool(causal)
    dq = grad_like(grad_query, q, "grad_query")
    dk = grad_like(grad_key, k, "grad_key")
    dv = grad_like(grad_value, v, "grad_value")
    if not (head_strides(dq, &s.dq) and head_strides(dk, &s.dk) and head_strides(dv, &s.dv)):
        raise ValueError("grad_query, grad_key and grad_value's batch axes must each merge "
                         "into one stride")
    for a, nm in ((dq, "grad_query"), (dk, "grad_key"), (dv, "grad_value")):
        for src in (q, k, v, o, g, lse, probs, mask, drop):
            if src is not None and elements_overlap(a, src):
                raise ValueError(f"{nm} must not share memory with the forward's arrays")
    if elements_overlap(dq, dk) or elements_overlap(dq, dv) or elements_overlap(dk, dv):
        raise ValueError("grad_query, grad_key and grad_value must not overlap")
    cdef float *dqp = fptr(dq)
    cdef float *dkp = fptr(dk)
    cdef float *dvp = fptr(dv)
    cdef const float *gp = cfptr(g)
    cdef const float *op = cfptr(o)
    cdef const float *lp = cfptr(lse)
    cdef const float *pp = opt_cptr(probs)
    cdef const float *qp = cfptr(q)
    cdef const float *kp = cfptr(k)
    cdef const float *vp = cfptr(v)
    cdef const float *mp = opt_cptr(mask)
    cdef const float *dp = opt_cptr(drop)
    cdef fnn_status st
    with nogil:
        st = fnn_attention_backward(dqp, dkp, dvp, gp, op, lp, pp, qp, kp, vp, mp, dp, &s)
    check_status(st, "scaled_dot_product_attention_backward")
    return dq, dk, dv
