# ISA dispatch and thread count (csrc/runtime/dispatch.c, csrc/runtime/threads.c).

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


def set_num_threads(int n):
    if fnn_set_num_threads(n) != FNN_OK:
        raise ValueError(f"number of threads must be >= 1, got {n}")


def get_num_threads():
    return fnn_get_num_threads()


def has_openmp():
    return bool(fnn_has_openmp())


def hardware_threads():
    return fnn_max_hardware_threads()
