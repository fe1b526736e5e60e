# The machine's FMA ceiling (csrc/fma_probe.c, fma_probe_api.c).


def fma_probe(int64_t iters):
    """Floating-point operations done by fnn_fma_probe(iters) on the active ISA
    and thread count (time it to get the machine's FMA ceiling)."""
    cdef double flops = 0.0
    with nogil:
        fnn_fma_probe(iters, &flops)
    return flops
