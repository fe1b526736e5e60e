# Fused loss + gradient with mean reduction (csrc/losses.c, losses_api.c). Each returns
# (loss: float, grad: ndarray shaped like the prediction).


# Not on a per-layer hot path (one call per step): the kernel wrappers take
# typed memoryviews (about 0.12 us per array per call, tools/boundary_overhead.py).
cdef fnn_status cross_entropy_kernel(float[:, ::1] dlogits,        # OUT (N, C)
                                     const float[:, ::1] logits,   # IN  (N, C)
                                     const int64_t[::1] labels,    # IN  (N,)
                                     float smoothing, int64_t ignore_index,
                                     float *loss):                 # OUT scalar
    cdef int64_t N = logits.shape[0], C = logits.shape[1]
    cdef fnn_status st
    with nogil:
        st = fnn_cross_entropy_forward_backward(loss, &dlogits[0, 0] if N > 0 else NULL,
                                                &logits[0, 0] if N > 0 else NULL,
                                                &labels[0] if N > 0 else NULL, N, C,
                                                smoothing, ignore_index)
    return st


cdef object cross_entropy_2d(object x, object y, float smoothing, int64_t ignore_index,
                             object grad=None):
    """x (N, C) float32, y (N,) int64 -> (loss, dlogits (N, C)), into grad when given."""
    if grad is None:
        grad = new_float32(x.shape)
    cdef float loss = 0.0
    cdef fnn_status st = cross_entropy_kernel(grad, x, y, smoothing, ignore_index, &loss)
    if st == FNN_ERR_LABEL:
        C = x.shape[1]
        bad = y[(y != ignore_index) & ((y < 0) | (y >= C))]
        raise ValueError(f"labels must be in [0, {C}) or equal ignore_index={ignore_index}, "
                         f"got {int(bad[0])}")
    check_status(st, "cross_entropy")
    return float(loss), grad


def cross_entropy(logits, labels, label_smoothing=0.0, ignore_index=-100, out=None):
    """Mean cross-entropy of logits against integer class labels, and its gradient.

    Shapes as torch.nn.functional.cross_entropy: logits (N, C) with labels (N,),
    logits (C,) with a scalar label, or logits (N, C, d1, ...) with labels
    (N, d1, ...). Labels equal to ignore_index add nothing and are not counted;
    label_smoothing in [0, 1] mixes the target with the uniform distribution.
    Returns (loss, grad_logits), grad_logits shaped like logits. out= (logits
    (N, C) only) receives grad_logits and may be the logits array itself: the
    gradient then overwrites the logits in place, and a large vocabulary's
    (N, C) gradient needs no second array.
    """
    if out is not None:
        if out is logits:
            check_out_dims(out, cnp.PyArray_NDIM(<cnp.ndarray>out),
                           cnp.PyArray_DIMS(<cnp.ndarray>out), "out")
        x = as_float32(logits, "logits")
        y = as_labels(labels, "labels")
        if x.ndim != 2:
            raise ValueError(f"cross_entropy: out= takes logits of shape (N, C), got {x.shape}")
        g = make_out(out, tuple(x.shape))
        if g is not x:
            x = apart_from(x, g)
        if y.shape != x.shape[:1]:
            raise ValueError(f"labels must have shape {x.shape[:1]} for logits of shape "
                             f"{x.shape}, got {y.shape}")
        smoothing = as_real(label_smoothing, "label_smoothing")
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {smoothing}")
        if x.shape[1] == 0:
            raise ValueError(f"logits must have at least one class, got shape {x.shape}")
        return cross_entropy_2d(x, y, smoothing, as_int64(ignore_index, "ignore_index"), g)
    x = as_float32(logits, "logits")
    y = as_labels(labels, "labels")
    smoothing = as_real(label_smoothing, "label_smoothing")
    ignore = as_int64(ignore_index, "ignore_index")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {smoothing}")
    if x.ndim == 0:
        raise ValueError("logits must have shape (C,), (N, C) or (N, C, d1, ...), got a 0-d array")
    expected = () if x.ndim == 1 else x.shape[:1] + x.shape[2:]
    if y.shape != expected:
        raise ValueError(f"labels must have shape {expected} for logits of shape {x.shape}, "
                         f"got {y.shape}")
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    if C == 0:
        raise ValueError(f"logits must have at least one class, got shape {x.shape}")
    if x.ndim == 1:
        loss, grad = cross_entropy_2d(x.reshape(1, C), y.reshape(1), smoothing, ignore)
        return loss, grad.reshape(C)
    if x.ndim == 2:
        return cross_entropy_2d(x, y, smoothing, ignore)
    # (N, C, d...) -> (N * prod(d), C), and the gradient back
    rows = copy_float32(np.moveaxis(x, 1, -1)).reshape(-1, C)
    loss, grad = cross_entropy_2d(rows, y.reshape(-1), smoothing, ignore)
    grad = grad.reshape(x.shape[:1] + x.shape[2:] + (C,))
    return loss, copy_float32(np.moveaxis(grad, -1, 1))


cdef fnn_status pointwise_loss_kernel(float[::1] dpred,          # OUT (n,)
                                      const float[::1] pred,      # IN  (n,)
                                      const float[::1] target,    # IN  (n,)
                                      bint bce, float *loss):     # OUT scalar
    cdef int64_t n = pred.shape[0]
    cdef float *d_p = &dpred[0] if n > 0 else NULL
    cdef const float *p_p = &pred[0] if n > 0 else NULL
    cdef const float *t_p = &target[0] if n > 0 else NULL
    cdef fnn_status st
    with nogil:
        if bce:
            st = fnn_bce_with_logits_forward_backward(loss, d_p, p_p, t_p, n)
        else:
            st = fnn_mse_loss_forward_backward(loss, d_p, p_p, t_p, n)
    return st


cdef tuple pointwise_loss(object pred, object target, str pred_name, bint bce, str name):
    p = as_float32(pred, pred_name)
    t = as_float32(target, "target")
    check_same_shape(p, pred_name, t, "target")
    grad = new_float32(p.shape)
    cdef float loss = 0.0
    check_status(pointwise_loss_kernel(grad.reshape(-1), p.reshape(-1), t.reshape(-1), bce,
                                       &loss), name)
    return float(loss), grad


def mse_loss(pred, target):
    """mean((pred - target)**2) and its gradient 2 (pred - target) / n.
    pred and target must have the same shape. Returns (loss, grad_pred)."""
    return pointwise_loss(pred, target, "pred", False, "mse_loss")


def binary_cross_entropy_with_logits(logits, target):
    """mean(softplus(x) - x * t) for logits x and targets t in [0, 1], computed
    without overflow, and its gradient (sigmoid(x) - t) / n. Returns (loss, grad_logits)."""
    return pointwise_loss(logits, target, "logits", True, "binary_cross_entropy_with_logits")
