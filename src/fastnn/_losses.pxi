# Fused loss + gradient (csrc/losses.c, losses_api.c), named and reduced as
# torch.nn.functional: each returns (loss, grad) shaped like the input, or
# (loss, grad_1, grad_2) for a loss of two differentiated inputs. loss is a float
# for reduction="mean" or "sum" and the array of per-element (per-row) losses for
# "none", in which case the gradients are each loss's own (d losses[i] / d input
# for the inputs that feed it), so that backward is grad_out times them.

# Not on a per-layer hot path (one call per step); the arguments are checked
# here, then one kernel call without the GIL.

cdef dict _REDUCTIONS = {"none": FNN_REDUCTION_NONE, "mean": FNN_REDUCTION_MEAN,
                         "sum": FNN_REDUCTION_SUM}


cdef fnn_reduction as_reduction(object reduction) except *:
    if isinstance(reduction, str) and reduction in _REDUCTIONS:
        return _REDUCTIONS[reduction]
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


cdef object reduced(fnn_reduction red, float loss, object losses):
    return losses if red == FNN_REDUCTION_NONE else float(loss)


cdef object loss_weight(object weight, tuple shape, str name):
    """weight (broadcastable to shape) as a float32 array of that shape, or None."""
    if weight is None:
        return None
    w = as_float32(weight, name)
    if w.shape == shape:
        return w
    try:
        return copy_float32(np.broadcast_to(w, shape))
    except ValueError:
        raise ValueError(f"{name} must broadcast to the input's shape {shape}, "
                         f"got {w.shape}") from None


cdef object class_weight(object weight, int64_t C):
    """a class weight (C,) as float32, or None."""
    if weight is None:
        return None
    w = as_float32(weight, "weight")
    if w.shape != (C,):
        raise ValueError(f"weight must have shape ({C},), one per class, got {w.shape}")
    return w


cdef float as_smoothing(object label_smoothing) except? -1.0:
    smoothing = as_real(label_smoothing, "label_smoothing")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {smoothing}")
    return smoothing


# ---- classification over rows: cross_entropy, nll_loss -----------------------

cdef tuple class_rows(object x, str name):
    """input (C,), (N, C) or (N, C, d1, ...) -> (rows (R, C) with the classes last, C)."""
    if x.ndim == 0:
        raise ValueError(f"{name} must have shape (C,), (N, C) or (N, C, d1, ...), "
                         f"got a 0-d array")
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    if C == 0:
        raise ValueError(f"{name} must have at least one class, got shape {x.shape}")
    if x.ndim == 1:
        return x.reshape(1, C), C
    if x.ndim == 2:
        return x, C
    return copy_float32(np.moveaxis(x, 1, -1)).reshape(-1, C), C


cdef object from_rows(object grad_rows, tuple shape):
    """the gradient of class_rows' rows back in the input's shape."""
    if grad_rows.shape == shape:
        return grad_rows  # (N, C): out= itself
    if len(shape) <= 2:
        return grad_rows.reshape(shape)
    moved = grad_rows.reshape(shape[:1] + shape[2:] + shape[1:2])
    return copy_float32(np.moveaxis(moved, -1, 1))


cdef tuple label_shape(tuple shape):
    """the labels' (and per-row losses') shape for an input of this shape"""
    return () if len(shape) == 1 else shape[:1] + shape[2:]


cdef object raise_label(object y, int64_t C, int64_t ignore_index):
    bad = y[(y != ignore_index) & ((y < 0) | (y >= C))]
    raise ValueError(f"target must hold class indices in [0, {C}) or ignore_index="
                     f"{ignore_index}, got {int(bad[0])}")


cdef tuple cross_entropy_rows(object rows, object target_rows, object weight, bint probs,
                              float smoothing, int64_t ignore_index, fnn_reduction red,
                              object grad, bint nll):
    """the kernel over rows (R, C): (loss, losses (R,) or None, grad (R, C))."""
    cdef int64_t R = rows.shape[0], C = rows.shape[1]
    losses = new_float32((R,)) if red == FNN_REDUCTION_NONE else None
    cdef float loss = 0.0
    cdef float *l_p = NULL if losses is None else fptr(losses)
    cdef float *g_p = fptr(grad)
    cdef const float *x_p = cfptr(rows)
    cdef const float *w_p = NULL if weight is None else cfptr(weight)
    cdef const float *t_p = cfptr(target_rows) if probs else NULL
    cdef const int64_t *y_p = NULL
    if not probs and R > 0:
        y_p = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>target_rows)
    cdef fnn_status st
    with nogil:
        if nll:
            st = fnn_nll_loss_forward_backward(&loss, l_p, g_p, x_p, y_p, w_p, R, C,
                                               ignore_index, red)
        elif probs:
            st = fnn_cross_entropy_probs_forward_backward(&loss, l_p, g_p, x_p, t_p, w_p, R, C,
                                                          smoothing, red)
        else:
            st = fnn_cross_entropy_forward_backward(&loss, l_p, g_p, x_p, y_p, w_p, R, C,
                                                    smoothing, ignore_index, red)
    if st == FNN_ERR_LABEL:
        raise_label(target_rows, C, ignore_index)
    check_status(st, "nll_loss" if nll else "cross_entropy")
    return loss, losses, grad


cdef tuple classification_loss(object input, object target, object weight, object ignore_index,
                               object reduction, object label_smoothing, object out, bint nll):
    name = "nll_loss" if nll else "cross_entropy"
    x = as_float32(input, "input")
    red = as_reduction(reduction)
    smoothing = 0.0 if nll else as_smoothing(label_smoothing)
    ignore = as_int64(ignore_index, "ignore_index")
    rows, C = class_rows(x, "input")
    w = class_weight(weight, C)
    try:
        t = target if isinstance(target, np.ndarray) else np.asarray(target)
    except (ValueError, TypeError) as err:
        raise TypeError(f"target must be an array-like of class indices or probabilities, "
                        f"got {type(target).__name__} that NumPy cannot convert ({err})") from None
    probs = not nll and t.dtype.kind == "f"
    if probs:
        if t.shape != x.shape:
            raise ValueError(f"target must have the input's shape {x.shape} for class "
                             f"probabilities (a float target), got {t.shape}")
        t_rows = class_rows(as_float32(t, "target"), "target")[0]
    else:
        y = as_labels(t, "target")
        if y.shape != label_shape(x.shape):
            raise ValueError(f"target must have shape {label_shape(x.shape)} for an input of "
                             f"shape {x.shape}, got {y.shape}")
        t_rows = y.reshape(-1)
    if out is None:
        grad = new_float32(rows.shape)
    else:
        if x.ndim != 2:
            raise ValueError(f"{name}: out= takes an input of shape (N, C), got {x.shape}")
        if out is input:
            check_out_dims(out, cnp.PyArray_NDIM(<cnp.ndarray>out),
                           cnp.PyArray_DIMS(<cnp.ndarray>out), "out")
        grad = make_out(out, tuple(x.shape))
        if grad is not x:
            rows = apart_from(rows, grad)
    loss, losses, grad = cross_entropy_rows(rows, t_rows, w, probs, smoothing, ignore, red,
                                            grad, nll)
    if losses is not None:
        losses = losses.reshape(label_shape(x.shape))
    return reduced(red, loss, losses), from_rows(grad, x.shape)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, out=None):
    """Cross-entropy of logits against class indices or class probabilities, and its
    gradient, as torch.nn.functional.cross_entropy.

    input (C,), (N, C) or (N, C, d1, ...); target int class indices shaped (), (N,)
    or (N, d1, ...), or float class probabilities shaped like input. weight (C,)
    scales each class; the mean then divides by the summed weight of the targets
    counted (over the rows for probabilities). Targets equal to ignore_index add
    nothing and are not counted; label_smoothing in [0, 1] mixes the target with the
    uniform distribution. Returns (loss, grad_input). out= (input (N, C) only)
    receives grad_input and may be the input array itself: the gradient then
    overwrites the logits in place, and a large vocabulary's (N, C) gradient needs
    no second array.
    """
    return classification_loss(input, target, weight, ignore_index, reduction,
                               label_smoothing, out, False)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log likelihood of log-probabilities input (C,), (N, C) or
    (N, C, d1, ...) against class indices, as torch.nn.functional.nll_loss (weight,
    ignore_index and the mean as cross_entropy's). Returns (loss, grad_input)."""
    return classification_loss(input, target, weight, ignore_index, reduction, 0.0, None,
                               True)


# ---- element-wise losses -------------------------------------------------------

def _pointwise_loss(int kind, str name, object input, object target, object reduction,
                    object weight=None, object pos_weight=None, double param=0.0,
                    bint log_space=False, bint full=False, object batch_divisor=None):
    """(loss, grad_input) of one of fnn_pointwise_loss; weight and pos_weight broadcast
    to the input's shape; batch_divisor, when given, replaces n as the mean's divisor."""
    x = as_float32(input, "input")
    t = as_float32(target, "target")
    check_same_shape(x, "input", t, "target")
    red = as_reduction(reduction) if batch_divisor is None else FNN_REDUCTION_MEAN
    shape = tuple(x.shape)
    w = loss_weight(weight, shape, "weight")
    pw = loss_weight(pos_weight, shape, "pos_weight")
    if not np.isfinite(param):
        raise ValueError(f"{name}: its parameter must be finite, got {param}")
    grad = new_float32(shape)
    losses = new_float32(shape) if red == FNN_REDUCTION_NONE else None
    cdef fnn_loss_options o
    o.weight = NULL if w is None else cfptr(w)
    o.pos_weight = NULL if pw is None else cfptr(pw)
    o.param = <float>param
    o.log_space = log_space
    o.full = full
    cdef double divisor = x.size if batch_divisor is None else batch_divisor
    cdef float loss = 0.0
    cdef float *l_p = NULL if losses is None else fptr(losses)
    cdef float *g_p = fptr(grad)
    cdef const float *x_p = cfptr(x)
    cdef const float *t_p = cfptr(t)
    cdef int64_t n = nelem(x)
    cdef fnn_status st
    with nogil:
        st = fnn_pointwise_loss_forward_backward(<fnn_pointwise_loss>kind, &loss, l_p, g_p, x_p, t_p, n, &o, red,
                                                 divisor)
    check_status(st, name)
    return reduced(red, loss, losses), grad


def mse_loss(input, target, reduction="mean"):
    """(input - target)**2, reduced; gradient 2 (input - target). input and target
    must have the same shape. Returns (loss, grad_input)."""
    return _pointwise_loss(FNN_LOSS_MSE, "mse_loss", input, target, reduction)


def l1_loss(input, target, reduction="mean"):
    """|input - target|, reduced; gradient sign(input - target), 0 at a tie (torch's
    sign). Returns (loss, grad_input)."""
    return _pointwise_loss(FNN_LOSS_L1, "l1_loss", input, target, reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """d**2 / (2 beta) where |d| < beta, else |d| - beta / 2 (d = input - target),
    reduced; beta = 0 is l1_loss. Returns (loss, grad_input)."""
    b = as_real(beta, "beta")
    if not 0.0 <= b < float("inf"):
        raise ValueError(f"beta must be finite and >= 0, got {b}")
    if b == 0.0:  # as torch: l1, whose gradient is 0 at NaN
        return _pointwise_loss(FNN_LOSS_L1, "smooth_l1_loss", input, target, reduction)
    return _pointwise_loss(FNN_LOSS_SMOOTH_L1, "smooth_l1_loss", input, target, reduction,
                          param=b)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """d**2 / 2 where |d| < delta, else delta (|d| - delta / 2) (d = input - target),
    reduced. Returns (loss, grad_input)."""
    d = as_real(delta, "delta")
    if not 0.0 < d < float("inf"):
        raise ValueError(f"delta must be finite and > 0, got {d}")
    return _pointwise_loss(FNN_LOSS_HUBER, "huber_loss", input, target, reduction, param=d)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)) of probabilities p = input in [0, 1], each log
    clamped at -100 as torch; weight broadcasts to the input's shape. Returns
    (loss, grad_input)."""
    x = as_float32(input, "input")
    if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError(f"binary_cross_entropy: input must hold probabilities in [0, 1], "
                         f"got values in [{x.min()}, {x.max()}]")
    return _pointwise_loss(FNN_LOSS_BCE, "binary_cross_entropy", x, target, reduction,
                          weight=weight)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """Binary cross-entropy of sigmoid(input) against targets in [0, 1], computed from
    the logits without overflow: softplus(x) - x t, with pos_weight p weighting the
    positive term (p t softplus(-x) + (1 - t) softplus(x)). weight and pos_weight
    broadcast to the input's shape (pos_weight (C,) is one per class of the last
    axis). Returns (loss, grad_input)."""
    return _pointwise_loss(FNN_LOSS_BCE_WITH_LOGITS, "binary_cross_entropy_with_logits", input,
                          target, reduction, weight=weight, pos_weight=pos_weight)


def soft_margin_loss(input, target, reduction="mean"):
    """log(1 + exp(-target * input)) for targets in {1, -1}, reduced. Returns
    (loss, grad_input)."""
    return _pointwise_loss(FNN_LOSS_SOFT_MARGIN, "soft_margin_loss", input, target, reduction)


def kl_div(input, target, reduction="mean", log_target=False):
    """Kullback-Leibler divergence of log-probabilities input against target (or
    log-probabilities with log_target): target (log target - input), 0 where target
    is 0. reduction "batchmean" divides the sum by the batch size input.shape[0] (the
    true KL divergence per sample); "mean" divides by the element count, as torch.
    Returns (loss, grad_input)."""
    if isinstance(reduction, str) and reduction == "batchmean":
        batch = np.shape(input)[0] if np.ndim(input) else 1
        return _pointwise_loss(FNN_LOSS_KL_DIV, "kl_div", input, target, "mean",
                              log_space=bool(log_target), batch_divisor=batch)
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'batchmean', 'mean' or 'sum', "
                         f"got {reduction!r}")
    return _pointwise_loss(FNN_LOSS_KL_DIV, "kl_div", input, target, reduction,
                          log_space=bool(log_target))


def poisson_nll_loss(input, target, log_input=True, full=False, eps=1e-8, reduction="mean"):
    """Poisson negative log likelihood: exp(input) - target input with log_input,
    else input - target log(input + eps); full adds Stirling's term target log target
    - target + log(2 pi target) / 2 where target > 1. Returns (loss, grad_input)."""
    return _pointwise_loss(FNN_LOSS_POISSON_NLL, "poisson_nll_loss", input, target, reduction,
                          param=as_real(eps, "eps"), log_space=bool(log_input),
                          full=bool(full))


def margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """max(0, -target (input1 - input2) + margin) for targets in {1, -1}, reduced.
    Returns (loss, grad_input1, grad_input2)."""
    x1 = as_float32(input1, "input1")
    x2 = as_float32(input2, "input2")
    check_same_shape(x1, "input1", x2, "input2")
    check_same_shape(x1, "input1", as_float32(target, "target"), "target")
    loss, grad = _pointwise_loss(FNN_LOSS_MARGIN_RANKING, "margin_ranking_loss", x1 - x2,
                                target, reduction, param=as_real(margin, "margin"))
    return loss, grad, np.negative(grad)


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):
    """Per row of input (N, C) or (C,) against 0/1 targets: the mean over the C classes
    of the binary cross-entropy of sigmoid(input), weight (C,) per class; then reduced
    over the rows. Returns (loss, grad_input)."""
    x = as_float32(input, "input")
    if x.ndim not in (1, 2):
        raise ValueError(f"input must have shape (C,) or (N, C), got {x.shape}")
    C = x.shape[x.ndim - 1]
    red = as_reduction(reduction)
    name = "multilabel_soft_margin_loss"
    if red == FNN_REDUCTION_NONE:
        terms, grad = _pointwise_loss(FNN_LOSS_BCE_WITH_LOGITS, name, x, target, "none",
                                     weight=weight)
        rows = np.asarray(terms.sum(axis=-1, dtype=np.float64) / C, np.float32) if C else \
            np.full(x.shape[:x.ndim - 1], np.nan, np.float32)
        return rows, grad / np.float32(C) if C else grad
    # the mean over rows of row means is the mean over all elements; the sum over
    # rows of row means is the sum over all elements / C
    divisor = x.size if red == FNN_REDUCTION_MEAN else C
    return _pointwise_loss(FNN_LOSS_BCE_WITH_LOGITS, name, x, target, "mean", weight=weight,
                          batch_divisor=divisor)


# ---- losses of two differentiated inputs ---------------------------------------

def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """1 - cos(input1, input2) where target is 1, max(0, cos - margin) where it is -1,
    per row of inputs (N, D) or (D,) with target (N,) or (). Returns
    (loss, grad_input1, grad_input2)."""
    x1 = as_float32(input1, "input1")
    x2 = as_float32(input2, "input2")
    check_same_shape(x1, "input1", x2, "input2")
    if x1.ndim not in (1, 2):
        raise ValueError(f"input1 must have shape (D,) or (N, D), got {x1.shape}")
    y = as_float32(target, "target")
    if y.shape != x1.shape[:x1.ndim - 1]:
        raise ValueError(f"target must have shape {x1.shape[:x1.ndim - 1]} for inputs of shape "
                         f"{x1.shape}, got {y.shape}")
    m = as_real(margin, "margin")
    if not np.isfinite(m):
        raise ValueError(f"margin must be finite, got {m}")
    red = as_reduction(reduction)
    cdef int64_t N = 1 if x1.ndim == 1 else x1.shape[0], D = x1.shape[x1.ndim - 1]
    g1 = new_float32(tuple(x1.shape))
    g2 = new_float32(tuple(x1.shape))
    losses = new_float32((N,)) if red == FNN_REDUCTION_NONE else None
    cdef float loss = 0.0, fm = m
    cdef float *l_p = NULL if losses is None else fptr(losses)
    cdef float *g1_p = fptr(g1)
    cdef float *g2_p = fptr(g2)
    cdef const float *a_p = cfptr(x1)
    cdef const float *b_p = cfptr(x2)
    cdef const float *y_p = cfptr(y)
    cdef fnn_status st
    with nogil:
        st = fnn_cosine_embedding_loss_forward_backward(&loss, l_p, g1_p, g2_p, a_p, b_p, y_p,
                                                        N, D, fm, red)
    check_status(st, "cosine_embedding_loss")
    if losses is not None:
        losses = losses.reshape(y.shape)
    return reduced(red, loss, losses), g1, g2


cdef object gaussian_var(object var, tuple shape):
    """var as torch accepts it: a float, an array shaped like the input, or one with
    a single axis of size 1 where the input's is not (or the input's shape without
    its last axis); returned as float32 of the input's shape, with the shape to
    reduce its gradient to (None for a float)."""
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        if var < 0:
            raise ValueError(f"var must be >= 0, got {var}")
        return np.full(shape, var, np.float32), None
    v = as_float32(var, "var")
    if v.shape != shape:
        if v.shape == shape[:len(shape) - 1]:
            v = v.reshape(shape[:len(shape) - 1] + (1,))
        elif not (v.ndim == len(shape)
                  and sum(b for a, b in zip(shape, v.shape) if a != b) == 1):
            raise ValueError(f"var must have the input's shape {shape}, that shape without "
                             f"its last axis, or one axis of size 1 where the input's is "
                             f"not, got {v.shape}")
    if v.size and v.min() < 0:
        raise ValueError(f"var must be >= 0 everywhere, got a minimum of {v.min()}")
    full = v if v.shape == shape else copy_float32(np.broadcast_to(v, shape))
    return full, np.shape(var)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """(log v + (input - target)**2 / v) / 2 with v = max(var, eps) (plus log(2 pi) / 2
    when full), var a float, shaped like input, or with one axis of size 1 (one
    variance shared along it). Returns (loss, grad_input, grad_var); grad_var is None
    for a float var, shaped like var for "mean" and "sum", and shaped like input for
    "none" (each element's own derivative: sum grad_out * grad_var over the shared
    axis to get var's gradient)."""
    x = as_float32(input, "input")
    t = as_float32(target, "target")
    check_same_shape(x, "input", t, "target")
    shape = tuple(x.shape)
    v, var_shape = gaussian_var(var, shape)
    e = as_real(eps, "eps")
    if not 0.0 < e < float("inf"):
        raise ValueError(f"eps must be finite and > 0, got {e}")
    red = as_reduction(reduction)
    g_in = new_float32(shape)
    g_var = new_float32(shape)
    losses = new_float32(shape) if red == FNN_REDUCTION_NONE else None
    cdef float loss = 0.0, fe = e
    cdef float *l_p = NULL if losses is None else fptr(losses)
    cdef float *gi_p = fptr(g_in)
    cdef float *gv_p = fptr(g_var)
    cdef const float *x_p = cfptr(x)
    cdef const float *t_p = cfptr(t)
    cdef const float *v_p = cfptr(v)
    cdef int64_t n = nelem(x)
    cdef int f = bool(full)
    cdef fnn_status st
    with nogil:
        st = fnn_gaussian_nll_loss_forward_backward(&loss, l_p, gi_p, gv_p, x_p, t_p, v_p, n,
                                                    fe, f, red)
    check_status(st, "gaussian_nll_loss")
    if var_shape is None:
        g_var = None
    elif var_shape != shape and red != FNN_REDUCTION_NONE:
        # one variance shared along an axis: its gradients summed (for "none" they stay
        # per element, to be multiplied by grad_out and then summed by the caller)
        kept = var_shape if len(var_shape) == len(shape) else var_shape + (1,)
        axes = tuple(i for i, (a, b) in enumerate(zip(shape, kept)) if a != b)
        g_var = g_var.sum(axis=axes, dtype=np.float64).astype(np.float32).reshape(var_shape)
    return reduced(red, loss, losses), g_in, g_var
