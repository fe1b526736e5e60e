# Fused optimizer updates, in place (csrc/optim.c, optim_api.c): one step of torch.optim's
# SGD, Adam / AdamW, RMSprop, Adagrad, Adamax, RAdam, NAdam, Adadelta, ASGD and Rprop
# over a parameter and its state buffers.
# Every array must already be a float32, C-contiguous, aligned ndarray with
# param's number of elements (any shape); the ones updated must be writeable
# and no two may share memory; a per-parameter scalar of the state (NAdam's
# mu_product, ASGD's eta and mu, torch's 0-d tensors) is a writeable float32 array
# of one element, updated in place. Nothing is copied or converted: TypeError for
# a wrong type or dtype, ValueError for the rest. Functions return None.
# Hot path (one call per parameter per step): raw pointers, not typed memoryviews,
# which would add 0.4-0.6 us per call for its 3-5 arrays (tools/boundary_overhead.py).

from libc.float cimport FLT_MAX


cdef int check_buffer(object a, str name, object param, bint written) except -1:
    """a is usable as the buffer `name` of param's optimizer step."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype float32, "
                        f"got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name} must have dtype float32, got {a.dtype}")
    if cnp.PyArray_SIZE(arr) != cnp.PyArray_SIZE(<cnp.ndarray>param):
        raise ValueError(f"{name} must have {param.size} elements, as param {param.shape} has, "
                         f"got shape {a.shape} ({a.size} elements)")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous (it is used in place, never copied), "
                         f"got strides {a.strides}")
    check_aligned(arr, name, " (it is used in place, never copied)")
    if written and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writeable (it is updated in place), "
                         f"got a read-only array")
    return 0


cdef int check_scalar_state(object a, str name) except -1:
    """a is usable as the scalar state `name`: a writeable float32 array of one element."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        raise TypeError(f"{name} must be a numpy.ndarray of dtype float32 (one element), "
                        f"got {type(a).__name__ if not isinstance(a, np.ndarray) else a.dtype}")
    if a.size != 1:
        raise ValueError(f"{name} must have 1 element (a scalar of the state), got shape "
                         f"{a.shape}")
    check_aligned(<cnp.ndarray>a, name, " (it is used in place, never copied)")
    if not a.flags.writeable:
        raise ValueError(f"{name} must be writeable (it is updated in place), "
                         f"got a read-only array")
    return 0


cdef int check_apart(tuple arrays, tuple names) except -1:
    """No two of the arrays (None entries skipped) share memory."""
    cdef Py_ssize_t i, j
    for i in range(len(arrays)):
        for j in range(i):
            if arrays[i] is not None and arrays[j] is not None and may_overlap(arrays[i], arrays[j]):
                raise ValueError(f"{names[i]} must not share memory with {names[j]}")
    return 0


cdef float hyper(object value, str name, float lo, float hi, bint hi_open) except? -1.0:
    """value as a finite float32 in [lo, hi] ([lo, hi) when hi_open)."""
    cdef double v = as_real(value, name)
    cdef float f
    if -FLT_MAX <= v <= FLT_MAX:
        f = <float>v
        if lo <= f and (f < hi if hi_open else f <= hi):
            return f
    if lo == -FLT_MAX:
        expected = "a finite number"
    elif hi == FLT_MAX:
        expected = f"a finite number >= {lo:g}"
    else:
        expected = f"a number in [{lo:g}, {hi:g}{')' if hi_open else ']'}"
    raise ValueError(f"{name} must be {expected}, got {value!r}")


cdef inline float *opt_fptr(object a) noexcept:
    return NULL if a is None else fptr(a)


cdef int64_t step_count(object step) except -1:
    cdef int64_t step_ = as_int64(step, "step")
    if step_ < 1:
        raise ValueError(f"step must be >= 1 (the count of this step, 1 for the first), "
                         f"got {step_}")
    return step_


def sgd_step(param, grad, momentum_buf, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0, first_step=False, maximize=False):
    """One torch.optim.SGD step on param, in place.

    g = grad (-grad with maximize) + weight_decay * param; with momentum != 0,
    momentum_buf = g on the first step (first_step=True), else
    momentum * momentum_buf + (1 - dampening) * g, and g = momentum_buf (or
    g + momentum * momentum_buf with nesterov); then param -= lr * g.
    momentum_buf may be None when momentum == 0.
    """
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float momentum_ = hyper(momentum, "momentum", 0.0, FLT_MAX, False)
    cdef float dampening_ = hyper(dampening, "dampening", -FLT_MAX, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef bint nesterov_ = bool(nesterov), first_step_ = bool(first_step)
    cdef bint maximize_ = bool(maximize)
    if nesterov_ and (momentum_ == 0.0 or dampening_ != 0.0):
        raise ValueError(f"nesterov=True needs momentum > 0 and dampening == 0, "
                         f"got momentum={momentum!r}, dampening={dampening!r}")
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    if momentum_buf is not None:
        check_buffer(momentum_buf, "momentum_buf", param, True)
    elif momentum_ != 0.0:
        raise ValueError(f"momentum_buf must be a float32 array like param when momentum != 0, "
                         f"got None (momentum={momentum!r})")
    check_apart((param, grad, momentum_buf), ("param", "grad", "momentum_buf"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *buf = opt_fptr(momentum_buf)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_sgd_step(p, g, buf, n, lr_, momentum_, dampening_, nesterov_, weight_decay_,
                          first_step_, maximize_)
    check_status(st, "sgd_step")


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled=False, max_exp_avg_sq=None, maximize=False):
    """One torch.optim.Adam step (AdamW with decoupled=True; AMSGrad when
    max_exp_avg_sq is an array) on param, in place. step is this step's
    1-based count. exp_avg, exp_avg_sq (and max_exp_avg_sq) start as zeros.

    g = grad (-grad with maximize);
    decoupled: param *= 1 - lr * weight_decay, else g += weight_decay * param;
    exp_avg += (1 - beta1) * (g - exp_avg);
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g;
    v = exp_avg_sq, or max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq) with AMSGrad;
    param -= lr / (1 - beta1**step) * exp_avg / (sqrt(v) / sqrt(1 - beta2**step) + eps).
    """
    cdef int64_t step_ = step_count(step)
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float beta1_ = hyper(beta1, "beta1", 0.0, 1.0, True)
    cdef float beta2_ = hyper(beta2, "beta2", 0.0, 1.0, True)
    cdef float eps_ = hyper(eps, "eps", 0.0, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef bint decoupled_ = bool(decoupled), maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(exp_avg, "exp_avg", param, True)
    check_buffer(exp_avg_sq, "exp_avg_sq", param, True)
    if max_exp_avg_sq is not None:
        check_buffer(max_exp_avg_sq, "max_exp_avg_sq", param, True)
    check_apart((param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq),
                ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *m = fptr(exp_avg)
    cdef float *v = fptr(exp_avg_sq)
    cdef float *vmax = opt_fptr(max_exp_avg_sq)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_adam_step(p, g, m, v, vmax, n, lr_, beta1_, beta2_, eps_, weight_decay_,
                           decoupled_, step_, maximize_)
    check_status(st, "adam_step")


def rmsprop_step(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, grad_avg=None, momentum_buf=None, maximize=False):
    """One torch.optim.RMSprop step on param, in place; centered when grad_avg
    is an array. square_avg, grad_avg and momentum_buf start as zeros;
    momentum_buf may be None when momentum == 0.

    g = grad (-grad with maximize) + weight_decay * param;
    square_avg = alpha * square_avg + (1 - alpha) * g * g;
    centered: grad_avg += (1 - alpha) * (g - grad_avg),
              avg = sqrt(square_avg - grad_avg**2) + eps, else avg = sqrt(square_avg) + eps;
    momentum > 0: momentum_buf = momentum * momentum_buf + g / avg, param -= lr * momentum_buf;
    else param -= lr * g / avg.
    """
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float alpha_ = hyper(alpha, "alpha", 0.0, 1.0, False)
    cdef float eps_ = hyper(eps, "eps", 0.0, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef float momentum_ = hyper(momentum, "momentum", 0.0, FLT_MAX, False)
    cdef bint maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(square_avg, "square_avg", param, True)
    if grad_avg is not None:
        check_buffer(grad_avg, "grad_avg", param, True)
    if momentum_buf is not None:
        check_buffer(momentum_buf, "momentum_buf", param, True)
    elif momentum_ > 0.0:
        raise ValueError(f"momentum_buf must be a float32 array like param when momentum > 0, "
                         f"got None (momentum={momentum!r})")
    check_apart((param, grad, square_avg, grad_avg, momentum_buf),
                ("param", "grad", "square_avg", "grad_avg", "momentum_buf"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *s = fptr(square_avg)
    cdef float *ga = opt_fptr(grad_avg)
    cdef float *buf = opt_fptr(momentum_buf)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_rmsprop_step(p, g, s, ga, buf, n, lr_, alpha_, eps_, weight_decay_, momentum_,
                              maximize_)
    check_status(st, "rmsprop_step")



def adagrad_step(param, grad, sum, step, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 maximize=False):
    """One torch.optim.Adagrad step on param, in place; step is this step's 1-based
    count, sum starts as initial_accumulator_value.

    g = grad (-grad with maximize) + weight_decay * param;
    clr = lr / (1 + (step - 1) * lr_decay); sum += g * g;
    param -= clr * g / (sqrt(sum) + eps).
    """
    cdef int64_t step_ = step_count(step)
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float lr_decay_ = hyper(lr_decay, "lr_decay", 0.0, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef float eps_ = hyper(eps, "eps", 0.0, FLT_MAX, False)
    cdef bint maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(sum, "sum", param, True)
    check_apart((param, grad, sum), ("param", "grad", "sum"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *s = fptr(sum)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_adagrad_step(p, g, s, n, lr_, lr_decay_, weight_decay_, eps_, step_, maximize_)
    check_status(st, "adagrad_step")


def adamax_step(param, grad, exp_avg, exp_inf, step, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, maximize=False):
    """One torch.optim.Adamax step on param, in place; step is this step's 1-based
    count, exp_avg and exp_inf start as zeros.

    g = grad (-grad with maximize) + weight_decay * param;
    exp_avg += (1 - beta1) * (g - exp_avg); exp_inf = max(beta2 * exp_inf, |g| + eps);
    param -= lr / (1 - beta1**step) * exp_avg / exp_inf.
    """
    cdef int64_t step_ = step_count(step)
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float beta1_ = hyper(beta1, "beta1", 0.0, 1.0, True)
    cdef float beta2_ = hyper(beta2, "beta2", 0.0, 1.0, True)
    cdef float eps_ = hyper(eps, "eps", 0.0, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef bint maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(exp_avg, "exp_avg", param, True)
    check_buffer(exp_inf, "exp_inf", param, True)
    check_apart((param, grad, exp_avg, exp_inf), ("param", "grad", "exp_avg", "exp_inf"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *m = fptr(exp_avg)
    cdef float *u = fptr(exp_inf)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_adamax_step(p, g, m, u, n, lr_, beta1_, beta2_, eps_, weight_decay_, step_,
                             maximize_)
    check_status(st, "adamax_step")


def radam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
               eps=1e-8, weight_decay=0.0, decoupled=False, maximize=False):
    """One torch.optim.RAdam step on param, in place (decoupled weight decay with
    decoupled=True); step is this step's 1-based count, exp_avg and exp_avg_sq start
    as zeros.

    g = grad (-grad with maximize); decoupled: param *= 1 - lr * weight_decay, else
    g += weight_decay * param; exp_avg += (1 - beta1) * (g - exp_avg);
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g; mhat = exp_avg / (1 - beta1**step);
    once the variance is tractable (rho > 5, see fastnn.h) param -= lr * rect * mhat *
    sqrt(1 - beta2**step) / (sqrt(exp_avg_sq) + eps), before it param -= lr * mhat.
    """
    cdef int64_t step_ = step_count(step)
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float beta1_ = hyper(beta1, "beta1", 0.0, 1.0, True)
    cdef float beta2_ = hyper(beta2, "beta2", 0.0, 1.0, True)
    cdef float eps_ = hyper(eps, "eps", 0.0, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef bint decoupled_ = bool(decoupled), maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(exp_avg, "exp_avg", param, True)
    check_buffer(exp_avg_sq, "exp_avg_sq", param, True)
    check_apart((param, grad, exp_avg, exp_avg_sq), ("param", "grad", "exp_avg", "exp_avg_sq"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *m = fptr(exp_avg)
    cdef float *v = fptr(exp_avg_sq)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_radam_step(p, g, m, v, n, lr_, beta1_, beta2_, eps_, weight_decay_, decoupled_,
                            step_, maximize_)
    check_status(st, "radam_step")


def nadam_step(param, grad, exp_avg, exp_avg_sq, mu_product, step, lr=2e-3, beta1=0.9,
               beta2=0.999, eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, decoupled=False,
               maximize=False):
    """One torch.optim.NAdam step on param, in place (decoupled weight decay with
    decoupled=True); step is this step's 1-based count, exp_avg and exp_avg_sq start
    as zeros, mu_product (one float32 element) as 1 and is updated.

    g = grad (-grad with maximize); decoupled: param *= 1 - lr * weight_decay, else
    g += weight_decay * param; mu = beta1 * (1 - 0.5 * 0.96**(step * momentum_decay)),
    mu_next the same at step + 1; mu_product *= mu; exp_avg += (1 - beta1) * (g - exp_avg);
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g;
    denom = sqrt(exp_avg_sq / (1 - beta2**step)) + eps;
    param -= lr * (1 - mu) / (1 - mu_product) * g / denom
             + lr * mu_next / (1 - mu_product * mu_next) * exp_avg / denom.
    """
    cdef int64_t step_ = step_count(step)
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float beta1_ = hyper(beta1, "beta1", 0.0, 1.0, True)
    cdef float beta2_ = hyper(beta2, "beta2", 0.0, 1.0, True)
    cdef float eps_ = hyper(eps, "eps", 0.0, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef float momentum_decay_ = hyper(momentum_decay, "momentum_decay", 0.0, FLT_MAX, False)
    cdef bint decoupled_ = bool(decoupled), maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(exp_avg, "exp_avg", param, True)
    check_buffer(exp_avg_sq, "exp_avg_sq", param, True)
    check_scalar_state(mu_product, "mu_product")
    check_apart((param, grad, exp_avg, exp_avg_sq, mu_product),
                ("param", "grad", "exp_avg", "exp_avg_sq", "mu_product"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *m = fptr(exp_avg)
    cdef float *v = fptr(exp_avg_sq)
    cdef float *product = fptr(mu_product)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_nadam_step(p, g, m, v, product, n, lr_, beta1_, beta2_, eps_, weight_decay_,
                            momentum_decay_, decoupled_, step_, maximize_)
    check_status(st, "nadam_step")


def adadelta_step(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0, maximize=False):
    """One torch.optim.Adadelta step on param, in place; square_avg and acc_delta
    start as zeros.

    g = grad (-grad with maximize) + weight_decay * param;
    square_avg = rho * square_avg + (1 - rho) * g * g;
    delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g;
    acc_delta = rho * acc_delta + (1 - rho) * delta * delta; param -= lr * delta.
    """
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float rho_ = hyper(rho, "rho", 0.0, 1.0, False)
    cdef float eps_ = hyper(eps, "eps", 0.0, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef bint maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(square_avg, "square_avg", param, True)
    check_buffer(acc_delta, "acc_delta", param, True)
    check_apart((param, grad, square_avg, acc_delta),
                ("param", "grad", "square_avg", "acc_delta"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *s = fptr(square_avg)
    cdef float *acc = fptr(acc_delta)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_adadelta_step(p, g, s, acc, n, lr_, rho_, eps_, weight_decay_, maximize_)
    check_status(st, "adadelta_step")


def asgd_step(param, grad, ax, eta, mu, step, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6,
              weight_decay=0.0, maximize=False):
    """One torch.optim.ASGD step on param, in place; step is this step's 1-based
    count, ax starts as zeros; eta and mu (one float32 element each) start as lr and
    1, are this step's and are updated for the next.

    g = grad (-grad with maximize) + weight_decay * param;
    param *= 1 - lambd * eta; param -= eta * g;
    ax += (param - ax) * mu (ax = param while mu == 1);
    eta = lr / (1 + lambd * lr * step)**alpha; mu = 1 / max(1, step - t0).
    """
    cdef int64_t step_ = step_count(step)
    cdef float lr_ = hyper(lr, "lr", 0.0, FLT_MAX, False)
    cdef float lambd_ = hyper(lambd, "lambd", -FLT_MAX, FLT_MAX, False)
    cdef float alpha_ = hyper(alpha, "alpha", -FLT_MAX, FLT_MAX, False)
    cdef float t0_ = hyper(t0, "t0", -FLT_MAX, FLT_MAX, False)
    cdef float weight_decay_ = hyper(weight_decay, "weight_decay", 0.0, FLT_MAX, False)
    cdef bint maximize_ = bool(maximize)
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(ax, "ax", param, True)
    check_scalar_state(eta, "eta")
    check_scalar_state(mu, "mu")
    check_apart((param, grad, ax, eta, mu), ("param", "grad", "ax", "eta", "mu"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *a = fptr(ax)
    cdef float *eta_ = fptr(eta)
    cdef float *mu_ = fptr(mu)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_asgd_step(p, g, a, eta_, mu_, n, lr_, lambd_, alpha_, t0_, weight_decay_, step_,
                           maximize_)
    check_status(st, "asgd_step")


def rprop_step(param, grad, prev, step_size, etaminus=0.5, etaplus=1.2, step_size_min=1e-6,
               step_size_max=50.0, maximize=False):
    """One torch.optim.Rprop step on param, in place; prev starts as zeros and
    step_size as lr.

    g = grad (-grad with maximize); s = g * prev;
    step_size = clamp(step_size * (etaplus if s > 0, etaminus if s < 0, else 1),
                      step_size_min, step_size_max);
    g = 0 where s < 0; param -= sign(g) * step_size; prev = g.
    """
    cdef float etaminus_ = hyper(etaminus, "etaminus", 0.0, 1.0, True)
    cdef float etaplus_ = hyper(etaplus, "etaplus", 1.0, FLT_MAX, False)
    cdef float step_size_min_ = hyper(step_size_min, "step_size_min", 0.0, FLT_MAX, False)
    cdef float step_size_max_ = hyper(step_size_max, "step_size_max", 0.0, FLT_MAX, False)
    cdef bint maximize_ = bool(maximize)
    if etaminus_ == 0.0 or etaplus_ == 1.0:
        raise ValueError(f"etaminus and etaplus must satisfy 0 < etaminus < 1 < etaplus, "
                         f"got etaminus={etaminus!r}, etaplus={etaplus!r}")
    if step_size_min_ > step_size_max_:
        raise ValueError(f"step_size_min must be <= step_size_max, got "
                         f"step_size_min={step_size_min!r}, step_size_max={step_size_max!r}")
    check_buffer(param, "param", param, True)
    check_buffer(grad, "grad", param, False)
    check_buffer(prev, "prev", param, True)
    check_buffer(step_size, "step_size", param, True)
    check_apart((param, grad, prev, step_size), ("param", "grad", "prev", "step_size"))
    cdef float *p = fptr(param)
    cdef const float *g = cfptr(grad)
    cdef float *prev_ = fptr(prev)
    cdef float *size = fptr(step_size)
    cdef int64_t n = nelem(param)
    cdef fnn_status st
    with nogil:
        st = fnn_rprop_step(p, g, prev_, size, n, etaminus_, etaplus_, step_size_min_,
                            step_size_max_, maximize_)
    check_status(st, "rprop_step")
