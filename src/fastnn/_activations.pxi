# Element-wise activations and their backward (csrc/activations.c, activations_api.c).
# Hot path (a training step calls these per layer): raw pointers, not typed
# memoryviews, which cost 0.12 us each per call (tools/boundary_overhead.py, _C.pyx).
# Forward: out = f(x). Backward: out = grad_out * f'(...), from the forward
# input x (relu, leaky_relu, gelu, silu) or the forward output y (sigmoid, tanh).

cdef enum Op:
    RELU, LEAKY_RELU, SIGMOID, TANH, GELU_ERF, GELU_TANH, SILU, EXP, ERF

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


cdef object forward(Op op, object x, object out, float param, str name):
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
            st = fnn_leaky_relu_forward(o_p, x_p, n, param)
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
        elif op == ERF:
            st = fnn_erf(o_p, x_p, n)
    check_status(st, name)
    return o


cdef object backward(Op op, object grad_out, object saved, str saved_name, object out,
                     float param, str name):
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
            st = fnn_leaky_relu_backward(o_p, g_p, s_p, n, param, 0)
        elif op == SIGMOID:
            st = fnn_sigmoid_backward(o_p, g_p, s_p, n, 0)
        elif op == TANH:
            st = fnn_tanh_backward(o_p, g_p, s_p, n, 0)
        elif op == GELU_ERF or op == GELU_TANH:
            st = fnn_gelu_backward(o_p, g_p, s_p, n, op == GELU_TANH, 0)
        elif op == SILU:
            st = fnn_silu_backward(o_p, g_p, s_p, n, 0)
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
    return forward(RELU, x, out, 0.0, "relu")


def relu_backward(grad_out, x, out=None):
    """grad_out * (x > 0), given the forward input x."""
    return backward(RELU, grad_out, x, "x", out, 0.0, "relu_backward")


def leaky_relu(x, negative_slope=0.01, out=None):
    """x where x > 0, else negative_slope * x."""
    return forward(LEAKY_RELU, x, out, as_real(negative_slope, "negative_slope"), "leaky_relu")


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_out where x > 0, else negative_slope * grad_out, given the forward input x."""
    return backward(LEAKY_RELU, grad_out, x, "x", out, as_real(negative_slope, "negative_slope"),
                    "leaky_relu_backward")


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), computed without overflow for any x."""
    return forward(SIGMOID, x, out, 0.0, "sigmoid")


def sigmoid_backward(grad_out, y, out=None):
    """grad_out * y * (1 - y), given the forward OUTPUT y = sigmoid(x)."""
    return backward(SIGMOID, grad_out, y, "y", out, 0.0, "sigmoid_backward")


def tanh(x, out=None):
    """Hyperbolic tangent, element-wise."""
    return forward(TANH, x, out, 0.0, "tanh")


def tanh_backward(grad_out, y, out=None):
    """grad_out * (1 - y**2), given the forward OUTPUT y = tanh(x)."""
    return backward(TANH, grad_out, y, "y", out, 0.0, "tanh_backward")


def gelu(x, approximate="none", out=None):
    """x * Phi(x) (approximate='none', erf form, as torch's default) or
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) (approximate='tanh')."""
    return forward(gelu_op(approximate), x, out, 0.0, "gelu")


def gelu_backward(grad_out, x, approximate="none", out=None):
    """grad_out * gelu'(x), given the forward input x."""
    return backward(gelu_op(approximate), grad_out, x, "x", out, 0.0, "gelu_backward")


def silu(x, out=None):
    """x * sigmoid(x) (also called swish)."""
    return forward(SILU, x, out, 0.0, "silu")


def silu_backward(grad_out, x, out=None):
    """grad_out * s * (1 + x * (1 - s)) with s = sigmoid(x), given the forward input x."""
    return backward(SILU, grad_out, x, "x", out, 0.0, "silu_backward")


def exp(x, out=None):
    """exp(x) by fastnn's vector approximation (the one softmax and sigmoid use)."""
    return forward(EXP, x, out, 0.0, "exp")


def erf(x, out=None):
    """erf(x) by fastnn's vector approximation (the one GELU uses)."""
    return forward(ERF, x, out, 0.0, "erf")
