# Element-wise activations and their backward (csrc/activations.c, activations_api.c).
# Hot path (a training step calls these per layer): raw pointers, not typed
# memoryviews, which cost 0.12 us each per call (tools/boundary_overhead.py, _C.pyx).
# Forward: out = f(x). Backward: out = grad_out * f'(...), from the forward
# output y (sigmoid, tanh) or else the forward input x. An op's options go to C
# as the floats a, b (0 where it has fewer). GLU and PReLU, which are not
# element-wise maps, follow at the end.

cdef enum Op:
    RELU, LEAKY_RELU, SIGMOID, TANH, GELU_ERF, GELU_TANH, SILU, EXP, EXPM1, LOG, ERF,
    ELU, SELU, CELU, SOFTPLUS, MISH, LOG_SIGMOID, SOFTSIGN, TANHSHRINK,
    HARDTANH, RELU6, HARDSIGMOID, HARDSWISH, THRESHOLD, SOFTSHRINK, HARDSHRINK

# The activations a GEMM epilogue fuses (linear(..., activation=)), named by C
# (fnn_activation_name, the one list); index = fnn_activation code.
ACTIVATIONS = tuple(fnn_activation_name(i).decode() for i in range(FNN_ACT_COUNT))
cdef dict _ACTIVATIONS = {None: FNN_ACT_NONE, **{name: i for i, name in enumerate(ACTIVATIONS)}}
cdef str _ACTIVATION_CHOICES = ", ".join(["None"] + [repr(n) for n in ACTIVATIONS if n != "none"])


cdef fnn_activation activation_code(object activation) except *:
    """The fnn_activation code of an activation name (or None)."""
    try:
        return _ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be one of {_ACTIVATION_CHOICES}, "
                         f"got {activation!r}") from None


cdef object forward(Op op, object x, object out, float a, float b, str name):
    xa = as_float32(x, "x")
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
    cdef const float *x_p = cfptr(xa)
    cdef float *o_p = fptr(o)
    cdef int64_t n = nelem(xa)
    cdef fnn_status st = FNN_OK
    if n == 0:
        return o
    with nogil:
        if op == RELU:
            st = fnn_relu_forward(o_p, x_p, n)
        elif op == LEAKY_RELU:
            st = fnn_leaky_relu_forward(o_p, x_p, n, a)
        elif op == SIGMOID:
            st = fnn_sigmoid_forward(o_p, x_p, n)
        elif op == TANH:
            st = fnn_tanh_forward(o_p, x_p, n)
        elif op == GELU_ERF or op == GELU_TANH:
            st = fnn_gelu_forward(o_p, x_p, n, op == GELU_TANH)
        elif op == SILU:
            st = fnn_silu_forward(o_p, x_p, n)
        elif op == EXP:
            st = fnn_exp(o_p, x_p, n)
        elif op == EXPM1:
            st = fnn_expm1(o_p, x_p, n)
        elif op == LOG:
            st = fnn_log(o_p, x_p, n)
        elif op == ERF:
            st = fnn_erf(o_p, x_p, n)
        elif op == ELU:
            st = fnn_elu_forward(o_p, x_p, n, a)
        elif op == SELU:
            st = fnn_selu_forward(o_p, x_p, n)
        elif op == CELU:
            st = fnn_celu_forward(o_p, x_p, n, a)
        elif op == SOFTPLUS:
            st = fnn_softplus_forward(o_p, x_p, n, a, b)
        elif op == MISH:
            st = fnn_mish_forward(o_p, x_p, n)
        elif op == LOG_SIGMOID:
            st = fnn_log_sigmoid_forward(o_p, x_p, n)
        elif op == SOFTSIGN:
            st = fnn_softsign_forward(o_p, x_p, n)
        elif op == TANHSHRINK:
            st = fnn_tanhshrink_forward(o_p, x_p, n)
        elif op == HARDTANH:
            st = fnn_hardtanh_forward(o_p, x_p, n, a, b)
        elif op == RELU6:
            st = fnn_relu6_forward(o_p, x_p, n)
        elif op == HARDSIGMOID:
            st = fnn_hardsigmoid_forward(o_p, x_p, n)
        elif op == HARDSWISH:
            st = fnn_hardswish_forward(o_p, x_p, n)
        elif op == THRESHOLD:
            st = fnn_threshold_forward(o_p, x_p, n, a, b)
        elif op == SOFTSHRINK:
            st = fnn_softshrink_forward(o_p, x_p, n, a)
        elif op == HARDSHRINK:
            st = fnn_hardshrink_forward(o_p, x_p, n, a)
    check_status(st, name)
    return o


cdef object backward(Op op, object grad_out, object saved, str saved_name, object out,
                     float a, float b, str name):
    ga = as_float32(grad_out, "grad_out")
    sa = as_float32(saved, saved_name)
    check_same_shape(sa, saved_name, ga, "grad_out")
    o = make_out(out, sa.shape)
    if out is not None:
        ga = apart_from(ga, o)
        sa = apart_from(sa, o)
    cdef const float *g_p = cfptr(ga)
    cdef const float *s_p = cfptr(sa)
    cdef float *o_p = fptr(o)
    cdef int64_t n = nelem(sa)
    cdef fnn_status st = FNN_OK
    if n == 0:
        return o
    with nogil:
        if op == RELU:
            st = fnn_relu_backward(o_p, g_p, s_p, n, 0)
        elif op == LEAKY_RELU:
            st = fnn_leaky_relu_backward(o_p, g_p, s_p, n, a, 0)
        elif op == SIGMOID:
            st = fnn_sigmoid_backward(o_p, g_p, s_p, n, 0)
        elif op == TANH:
            st = fnn_tanh_backward(o_p, g_p, s_p, n, 0)
        elif op == GELU_ERF or op == GELU_TANH:
            st = fnn_gelu_backward(o_p, g_p, s_p, n, op == GELU_TANH, 0)
        elif op == SILU:
            st = fnn_silu_backward(o_p, g_p, s_p, n, 0)
        elif op == ELU:
            st = fnn_elu_backward(o_p, g_p, s_p, n, a, 0)
        elif op == SELU:
            st = fnn_selu_backward(o_p, g_p, s_p, n, 0)
        elif op == CELU:
            st = fnn_celu_backward(o_p, g_p, s_p, n, a, 0)
        elif op == SOFTPLUS:
            st = fnn_softplus_backward(o_p, g_p, s_p, n, a, b, 0)
        elif op == MISH:
            st = fnn_mish_backward(o_p, g_p, s_p, n, 0)
        elif op == LOG_SIGMOID:
            st = fnn_log_sigmoid_backward(o_p, g_p, s_p, n, 0)
        elif op == SOFTSIGN:
            st = fnn_softsign_backward(o_p, g_p, s_p, n, 0)
        elif op == TANHSHRINK:
            st = fnn_tanhshrink_backward(o_p, g_p, s_p, n, 0)
        elif op == HARDTANH:
            st = fnn_hardtanh_backward(o_p, g_p, s_p, n, a, b, 0)
        elif op == RELU6:
            st = fnn_relu6_backward(o_p, g_p, s_p, n, 0)
        elif op == HARDSIGMOID:
            st = fnn_hardsigmoid_backward(o_p, g_p, s_p, n, 0)
        elif op == HARDSWISH:
            st = fnn_hardswish_backward(o_p, g_p, s_p, n, 0)
        elif op == THRESHOLD:
            st = fnn_threshold_backward(o_p, g_p, s_p, n, a, b, 0)
        elif op == SOFTSHRINK:
            st = fnn_softshrink_backward(o_p, g_p, s_p, n, a, 0)
        elif op == HARDSHRINK:
            st = fnn_hardshrink_backward(o_p, g_p, s_p, n, a, 0)
    check_status(st, name)
    return o


cdef Op gelu_op(object approximate) except *:
    if approximate == "none":
        return GELU_ERF
    if approximate == "tanh":
        return GELU_TANH
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def relu(x, out=None):
    """max(x, 0), element-wise. NaN stays NaN."""
    return forward(RELU, x, out, 0.0, 0.0, "relu")


def relu_backward(grad_out, x, out=None):
    """grad_out * (x > 0), given the forward input x."""
    return backward(RELU, grad_out, x, "x", out, 0.0, 0.0, "relu_backward")


def leaky_relu(x, negative_slope=0.01, out=None):
    """x where x > 0, else negative_slope * x."""
    return forward(LEAKY_RELU, x, out, as_real(negative_slope, "negative_slope"), 0.0,
                   "leaky_relu")


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_out where x > 0, else negative_slope * grad_out, given the forward input x."""
    return backward(LEAKY_RELU, grad_out, x, "x", out, as_real(negative_slope, "negative_slope"),
                    0.0, "leaky_relu_backward")


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), computed without overflow for any x."""
    return forward(SIGMOID, x, out, 0.0, 0.0, "sigmoid")


def sigmoid_backward(grad_out, y, out=None):
    """grad_out * y * (1 - y), given the forward OUTPUT y = sigmoid(x)."""
    return backward(SIGMOID, grad_out, y, "y", out, 0.0, 0.0, "sigmoid_backward")


def tanh(x, out=None):
    """Hyperbolic tangent, element-wise."""
    return forward(TANH, x, out, 0.0, 0.0, "tanh")


def tanh_backward(grad_out, y, out=None):
    """grad_out * (1 - y**2), given the forward OUTPUT y = tanh(x)."""
    return backward(TANH, grad_out, y, "y", out, 0.0, 0.0, "tanh_backward")


def gelu(x, approximate="none", out=None):
    """x * Phi(x) (approximate='none', erf form, as torch's default) or
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) (approximate='tanh')."""
    return forward(gelu_op(approximate), x, out, 0.0, 0.0, "gelu")


def gelu_backward(grad_out, x, approximate="none", out=None):
    """grad_out * gelu'(x), given the forward input x."""
    return backward(gelu_op(approximate), grad_out, x, "x", out, 0.0, 0.0, "gelu_backward")


def silu(x, out=None):
    """x * sigmoid(x) (also called swish)."""
    return forward(SILU, x, out, 0.0, 0.0, "silu")


def silu_backward(grad_out, x, out=None):
    """grad_out * s * (1 + x * (1 - s)) with s = sigmoid(x), given the forward input x."""
    return backward(SILU, grad_out, x, "x", out, 0.0, 0.0, "silu_backward")


def exp(x, out=None):
    """exp(x) by fastnn's vector approximation (the one softmax and sigmoid use)."""
    return forward(EXP, x, out, 0.0, 0.0, "exp")


def expm1(x, out=None):
    """exp(x) - 1 by fastnn's vector approximation (the one the ELU family uses),
    accurate near 0."""
    return forward(EXPM1, x, out, 0.0, 0.0, "expm1")


def log(x, out=None):
    """log(x) by fastnn's vector approximation (the one the losses use): -inf at 0,
    NaN below 0."""
    return forward(LOG, x, out, 0.0, 0.0, "log")


def erf(x, out=None):
    """erf(x) by fastnn's vector approximation (the one GELU uses)."""
    return forward(ERF, x, out, 0.0, 0.0, "erf")


# ---- the ELU family, softplus and the other smooth maps (activations.c) ----

cdef float nonzero_alpha(object alpha) except? -1.0:
    cdef double a = as_real(alpha, "alpha")
    if a == 0.0:
        raise ValueError("alpha must not be 0 for celu (it divides x), got 0.0")
    return <float>a


cdef float nonnegative_lambd(object lambd) except? -1.0:
    cdef double v = as_real(lambd, "lambd")
    if not v >= 0.0:
        raise ValueError(f"lambd must be >= 0, got {v!r}")
    return <float>v


def elu(x, alpha=1.0, out=None):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return forward(ELU, x, out, as_real(alpha, "alpha"), 0.0, "elu")


def elu_backward(grad_out, x, alpha=1.0, out=None):
    """grad_out where x > 0, else grad_out * alpha * exp(x), given the forward input x."""
    return backward(ELU, grad_out, x, "x", out, as_real(alpha, "alpha"), 0.0, "elu_backward")


def selu(x, out=None):
    """scale * elu(x, alpha) with PyTorch's alpha = 1.6732632... and scale = 1.0507009..."""
    return forward(SELU, x, out, 0.0, 0.0, "selu")


def selu_backward(grad_out, x, out=None):
    """grad_out * selu'(x), given the forward input x."""
    return backward(SELU, grad_out, x, "x", out, 0.0, 0.0, "selu_backward")


def celu(x, alpha=1.0, out=None):
    """x where x > 0, else alpha * (exp(x / alpha) - 1); alpha must not be 0."""
    return forward(CELU, x, out, nonzero_alpha(alpha), 0.0, "celu")


def celu_backward(grad_out, x, alpha=1.0, out=None):
    """grad_out where x > 0, else grad_out * exp(x / alpha), given the forward input x."""
    return backward(CELU, grad_out, x, "x", out, nonzero_alpha(alpha), 0.0, "celu_backward")


def softplus(x, beta=1.0, threshold=20.0, out=None):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (as
    PyTorch); never overflows."""
    return forward(SOFTPLUS, x, out, as_real(beta, "beta"), as_real(threshold, "threshold"),
                   "softplus")


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0, out=None):
    """grad_out * sigmoid(beta * x) (grad_out where beta * x > threshold), given the
    forward input x."""
    return backward(SOFTPLUS, grad_out, x, "x", out, as_real(beta, "beta"),
                    as_real(threshold, "threshold"), "softplus_backward")


def mish(x, out=None):
    """x * tanh(softplus(x))."""
    return forward(MISH, x, out, 0.0, 0.0, "mish")


def mish_backward(grad_out, x, out=None):
    """grad_out * (t + x * sigmoid(x) * (1 - t**2)), t = tanh(softplus(x)), given the
    forward input x."""
    return backward(MISH, grad_out, x, "x", out, 0.0, 0.0, "mish_backward")


def log_sigmoid(x, out=None):
    """log(sigmoid(x)) = -softplus(-x), stable for any x."""
    return forward(LOG_SIGMOID, x, out, 0.0, 0.0, "log_sigmoid")


def log_sigmoid_backward(grad_out, x, out=None):
    """grad_out * sigmoid(-x), given the forward input x."""
    return backward(LOG_SIGMOID, grad_out, x, "x", out, 0.0, 0.0, "log_sigmoid_backward")


def softsign(x, out=None):
    """x / (1 + |x|); +-1 at +-inf."""
    return forward(SOFTSIGN, x, out, 0.0, 0.0, "softsign")


def softsign_backward(grad_out, x, out=None):
    """grad_out / (1 + |x|)**2, given the forward input x."""
    return backward(SOFTSIGN, grad_out, x, "x", out, 0.0, 0.0, "softsign_backward")


def tanhshrink(x, out=None):
    """x - tanh(x), by its series near 0 where the difference would cancel."""
    return forward(TANHSHRINK, x, out, 0.0, 0.0, "tanhshrink")


def tanhshrink_backward(grad_out, x, out=None):
    """grad_out * tanh(x)**2, given the forward input x."""
    return backward(TANHSHRINK, grad_out, x, "x", out, 0.0, 0.0, "tanhshrink_backward")


# ---- the piecewise-linear maps (activations_piecewise.c) -------------------
# Every backward takes the forward input x; its masks are strict comparisons.

cdef tuple hardtanh_range(object min_val, object max_val):
    cdef double lo = as_real(min_val, "min_val"), hi = as_real(max_val, "max_val")
    if not lo < hi:
        raise ValueError(f"max_val must be greater than min_val, got min_val={lo!r} "
                         f"and max_val={hi!r}")
    return lo, hi


def hardtanh(x, min_val=-1.0, max_val=1.0, out=None):
    """x clamped to [min_val, max_val]; NaN stays NaN."""
    lo, hi = hardtanh_range(min_val, max_val)
    return forward(HARDTANH, x, out, lo, hi, "hardtanh")


def hardtanh_backward(grad_out, x, min_val=-1.0, max_val=1.0, out=None):
    """grad_out where min_val < x < max_val, else 0, given the forward input x."""
    lo, hi = hardtanh_range(min_val, max_val)
    return backward(HARDTANH, grad_out, x, "x", out, lo, hi, "hardtanh_backward")


def relu6(x, out=None):
    """min(max(x, 0), 6) = hardtanh(x, 0, 6)."""
    return forward(RELU6, x, out, 0.0, 0.0, "relu6")


def relu6_backward(grad_out, x, out=None):
    """grad_out where 0 < x < 6, else 0, given the forward input x."""
    return backward(RELU6, grad_out, x, "x", out, 0.0, 0.0, "relu6_backward")


def hardsigmoid(x, out=None):
    """min(max(x + 3, 0), 6) / 6."""
    return forward(HARDSIGMOID, x, out, 0.0, 0.0, "hardsigmoid")


def hardsigmoid_backward(grad_out, x, out=None):
    """grad_out / 6 where -3 < x < 3, else 0, given the forward input x."""
    return backward(HARDSIGMOID, grad_out, x, "x", out, 0.0, 0.0, "hardsigmoid_backward")


def hardswish(x, out=None):
    """x * min(max(x + 3, 0), 6) / 6."""
    return forward(HARDSWISH, x, out, 0.0, 0.0, "hardswish")


def hardswish_backward(grad_out, x, out=None):
    """grad_out * (0 below -3, x / 3 + 1/2 on [-3, 3], 1 above), given the forward input x."""
    return backward(HARDSWISH, grad_out, x, "x", out, 0.0, 0.0, "hardswish_backward")


def threshold(x, threshold, value, out=None):
    """x where x > threshold, else value; NaN stays NaN."""
    return forward(THRESHOLD, x, out, as_real(threshold, "threshold"), as_real(value, "value"),
                   "threshold")


def threshold_backward(grad_out, x, threshold, out=None):
    """grad_out where x > threshold, else 0, given the forward input x."""
    return backward(THRESHOLD, grad_out, x, "x", out, as_real(threshold, "threshold"), 0.0,
                    "threshold_backward")


def softshrink(x, lambd=0.5, out=None):
    """x - lambd above lambd, x + lambd below -lambd, else 0; lambd >= 0."""
    return forward(SOFTSHRINK, x, out, nonnegative_lambd(lambd), 0.0, "softshrink")


def softshrink_backward(grad_out, x, lambd=0.5, out=None):
    """grad_out where |x| > lambd, else 0, given the forward input x."""
    return backward(SOFTSHRINK, grad_out, x, "x", out, nonnegative_lambd(lambd), 0.0,
                    "softshrink_backward")


def hardshrink(x, lambd=0.5, out=None):
    """x where |x| > lambd, else 0."""
    return forward(HARDSHRINK, x, out, as_real(lambd, "lambd"), 0.0, "hardshrink")


def hardshrink_backward(grad_out, x, lambd=0.5, out=None):
    """grad_out where |x| > lambd, else 0, given the forward input x."""
    return backward(HARDSHRINK, grad_out, x, "x", out, as_real(lambd, "lambd"), 0.0,
                    "hardshrink_backward")


# ---- GLU: halves along one axis --------------------------------------------

cdef tuple glu_split(tuple shape, object dim, str name):
    """(outer, half, inner) of a GLU along `dim` of `shape`."""
    if len(shape) == 0:
        raise ValueError(f"{name}: x must have at least one dimension, got a 0-d array")
    outer, size, inner = split_axis(shape, dim, name)
    if size % 2:
        raise ValueError(f"{name}: the size of x along dim must be even, got {size} "
                         f"(shape {shape}, dim {dim})")
    return outer, size // 2, inner


def glu(x, dim=-1, out=None):
    """a * sigmoid(b), where a and b are the first and second halves of x along dim."""
    xa = as_float32(x, "x")
    outer, half, inner = glu_split(xa.shape, dim, "glu")
    shape = list(xa.shape)
    shape[as_int64(dim, "dim") % xa.ndim] = half
    o = make_out(out, tuple(shape))
    if out is not None:
        xa = apart_from(xa, o)
    cdef const float *x_p = cfptr(xa)
    cdef float *o_p = fptr(o)
    cdef int64_t n_outer = outer, n_half = half, n_inner = inner
    cdef fnn_status st
    with nogil:
        st = fnn_glu_forward(o_p, x_p, n_outer, n_half, n_inner)
    check_status(st, "glu")
    return o


def glu_backward(grad_out, x, dim=-1, out=None):
    """d/dx of glu(x, dim): [grad_out * sigmoid(b), grad_out * a * s * (1 - s)] along
    dim, s = sigmoid(b), given the forward input x."""
    xa = as_float32(x, "x")
    ga = as_float32(grad_out, "grad_out")
    outer, half, inner = glu_split(xa.shape, dim, "glu_backward")
    shape = list(xa.shape)
    shape[as_int64(dim, "dim") % xa.ndim] = half
    if ga.shape != tuple(shape):
        raise ValueError(f"grad_out must have shape {tuple(shape)} (x's with dim halved), "
                         f"got {ga.shape}")
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
        ga = apart_from(ga, o)
    cdef const float *x_p = cfptr(xa)
    cdef const float *g_p = cfptr(ga)
    cdef float *o_p = fptr(o)
    cdef int64_t n_outer = outer, n_half = half, n_inner = inner
    cdef fnn_status st
    with nogil:
        st = fnn_glu_backward(o_p, g_p, x_p, n_outer, n_half, n_inner, 0)
    check_status(st, "glu_backward")
    return o


# ---- PReLU: a learnable slope per channel (axis 1) --------------------------

cdef tuple prelu_split(object xa, object wa):
    """(outer, C, inner) of x for weight wa: the channels are x's axis 1 (all of x
    is one channel when weight has one element or x has fewer than 2 axes)."""
    if wa.ndim != 1 or wa.shape[0] < 1:
        raise ValueError(f"weight must be 1-d with at least one element, got shape {wa.shape}")
    cdef int64_t C = wa.shape[0]
    n = nelem(xa)
    if C == 1:
        return 1, 1, n
    if xa.ndim < 2 or xa.shape[1] != C:
        raise ValueError(f"x must have {C} channels on axis 1 (weight's length), got shape "
                         f"{xa.shape}")
    inner = 1
    for s in xa.shape[2:]:
        inner *= s
    return xa.shape[0], C, inner


def prelu(x, weight, out=None):
    """x where x > 0, else weight[c] * x, c the channel (axis 1) of the element."""
    xa = as_float32(x, "x")
    wa = as_float32(weight, "weight")
    outer, C, inner = prelu_split(xa, wa)
    o = make_out(out, xa.shape)
    if out is not None:
        xa = apart_from(xa, o)
        wa = apart_from(wa, o)
    cdef const float *x_p = cfptr(xa)
    cdef const float *w_p = cfptr(wa)
    cdef float *o_p = fptr(o)
    cdef int64_t n_outer = outer, n_c = C, n_inner = inner
    cdef fnn_status st
    with nogil:
        st = fnn_prelu_forward(o_p, x_p, w_p, n_outer, n_c, n_inner)
    check_status(st, "prelu")
    return o


def prelu_backward(grad_out, x, weight, grad_weight=None, input_grad=True, out=None):
    """d/dx of prelu(x, weight) (None when input_grad is false), and, when
    grad_weight (weight's shape, float32) is given, grad_weight += the sum of
    grad_out * x over the elements of each channel where x <= 0. The sums run in
    a fixed order: the same bits on any number of threads."""
    xa = as_float32(x, "x")
    wa = as_float32(weight, "weight")
    ga = as_float32(grad_out, "grad_out")
    check_same_shape(ga, "grad_out", xa, "x")
    outer, C, inner = prelu_split(xa, wa)
    o = make_out(out, xa.shape) if input_grad else None
    if grad_weight is not None:
        make_out(grad_weight, wa.shape, "grad_weight")
    for written in (o, grad_weight):
        if written is not None:
            xa = apart_from(xa, written)
            wa = apart_from(wa, written)
            ga = apart_from(ga, written)
    cdef const float *x_p = cfptr(xa)
    cdef const float *w_p = cfptr(wa)
    cdef const float *g_p = cfptr(ga)
    cdef float *o_p = NULL if o is None else fptr(o)
    cdef float *dw_p = NULL if grad_weight is None else fptr(grad_weight)
    cdef int64_t n_outer = outer, n_c = C, n_inner = inner
    cdef fnn_status st
    with nogil:
        st = fnn_prelu_backward(o_p, dw_p, g_p, x_p, w_p, n_outer, n_c, n_inner, 0)
    check_status(st, "prelu_backward")
    return o
