# Embedding lookup (csrc/embedding_api.c): a row gather forward and a scatter-add
# backward, with torch.nn.functional.embedding's semantics. Validation (the index
# range included) happens here, before `with nogil`.

cdef object embedding_indices(object indices, str name):
    try:
        arr = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name}: input must be an array-like of integer indices, got "
                        f"{type(indices).__name__} ({err})") from None
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: input must hold integer indices (int64), got dtype "
                        f"{arr.dtype}")
    return aligned_copy(np.asarray(arr, dtype=np.int64, order="C"))


cdef int check_embedding_range(object idx, int64_t V, str name) except -1:
    if idx.size and (idx.min() < 0 or idx.max() >= V):
        bad = idx[(idx < 0) | (idx >= V)].flat[0]
        raise ValueError(f"{name}: index {bad} is out of range for an embedding table of "
                         f"{V} rows (valid: 0 .. {V - 1})")
    return 0


def embedding(input, weight):
    """weight[input]: input an integer array of any shape, weight (V, E); the result
    has shape input.shape + (E,). An index outside [0, V) raises ValueError."""
    name = "embedding"
    idx = embedding_indices(input, name)
    w = as_float32(weight, "weight")
    if w.ndim != 2:
        raise ValueError(f"{name}: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {w.shape}")
    cdef int64_t V = w.shape[0], E = w.shape[1], L = idx.size
    check_embedding_range(idx, V, name)
    out = new_float32(tuple(idx.shape) + (E,))
    cdef float *op = fptr(out)
    cdef const float *wp = cfptr(w)
    cdef const int64_t *ip = <const int64_t *>cnp.PyArray_DATA(idx)
    cdef fnn_status status = FNN_OK
    with nogil:
        if L and E:
            status = fnn_embedding_forward(op, wp, ip, L, V, E)
    check_status(status, name)
    return out


def embedding_backward(grad_output, input, num_embeddings, padding_idx=None,
                       scale_grad_by_freq=False, grad_weight=None):
    """The gradient of embedding(input, weight) w.r.t. weight (num_embeddings, E):
    each grad_output row added at its index, in index order; rows at padding_idx get
    nothing; scale_grad_by_freq divides by each index's count in input. Added into
    grad_weight when given (returned), else a fresh zero array."""
    name = "embedding_backward"
    idx = embedding_indices(input, name)
    cdef int64_t V = as_int64(num_embeddings, "num_embeddings")
    g = as_float32(grad_output, "grad_output")
    if g.shape[:-1] != idx.shape or g.ndim != idx.ndim + 1:
        raise ValueError(f"{name}: grad_output must have shape input.shape + (E,) = "
                         f"{tuple(idx.shape)} + (E,), got {g.shape}")
    cdef int64_t E = g.shape[g.ndim - 1], L = idx.size
    cdef int64_t pad = -1 if padding_idx is None else as_int64(padding_idx, "padding_idx")
    if pad < -1 or pad >= V:
        raise ValueError(f"{name}: padding_idx must be in [0, {V}) after wrapping, got {pad}")
    check_embedding_range(idx, V, name)
    if grad_weight is None:
        dw = np.zeros((V, E), np.float32)
    else:
        dw = grad_weight
        if (type(dw) is not np.ndarray or dw.dtype != np.float32 or dw.shape != (V, E)
                or not dw.flags.c_contiguous or not dw.flags.writeable):
            raise ValueError(f"{name}: grad_weight must be a writeable float32 C-contiguous "
                             f"array of shape {(V, E)}")
    cdef float *dwp = fptr(dw)
    cdef const float *gp = cfptr(g)
    cdef const int64_t *ip = <const int64_t *>cnp.PyArray_DATA(idx)
    cdef int freq = 1 if scale_grad_by_freq else 0
    cdef fnn_status status = FNN_OK
    with nogil:
        if L and E:
            status = fnn_embedding_backward(dwp, gp, ip, L, V, E, pad, freq)
    check_status(status, name)
    return dw
