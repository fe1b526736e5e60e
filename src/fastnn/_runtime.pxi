# ISA dispatch, the thread pool and the FP environment (csrc/runtime/dispatch.c, threads.c).

# the ISA names as csrc/runtime/dispatch.c defines them (the one list), index = fnn_isa
ISA_NAMES = tuple(fnn_isa_name(i).decode() for i in range(FNN_ISA_COUNT))


def init_isa(name):
    """Choose the ISA path: None for the best this CPU has, else a name in ISA_NAMES."""
    cdef int requested = -1
    if name is not None:
        if name not in ISA_NAMES:
            raise ValueError(f"FASTNN_ISA must be one of {', '.join(ISA_NAMES)}, got {name!r}")
        requested = ISA_NAMES.index(name)
    if fnn_init(requested) != FNN_OK:
        best = ISA_NAMES[fnn_best_isa()]
        raise RuntimeError(
            f"FASTNN_ISA={name!r} is not available: this CPU and build support at most {best!r}. "
            f"Unset FASTNN_ISA or choose one of {', '.join(ISA_NAMES[:fnn_best_isa() + 1])}.")


def active_isa():
    return ISA_NAMES[fnn_active_isa()]


def best_isa():
    return ISA_NAMES[fnn_best_isa()]


def compiled_isas():
    return tuple(n for i, n in enumerate(ISA_NAMES) if fnn_isa_compiled(i))


MAX_THREADS = FNN_MAX_THREADS


def set_num_threads(n):
    """n is a Python int in [1, MAX_THREADS] (checked here, before any C cast)."""
    if not 1 <= n <= FNN_MAX_THREADS:
        raise ValueError(f"number of threads must be between 1 and {FNN_MAX_THREADS}, got {n}")
    fnn_set_num_threads(n)


def get_num_threads():
    return fnn_get_num_threads()


def default_num_threads():
    return fnn_default_num_threads()


def spin_iterations():
    return fnn_spin_iterations()


def set_flush_denormal(bint on):
    fnn_set_flush_denormal(on)


def get_flush_denormal():
    return bool(fnn_get_flush_denormal())
