# Fresh float32 outputs, and the block cache behind the large ones
# (csrc/runtime/alloc.c) as a NumPy memory handler.
#
# Every array this module creates for a caller (outputs without `out=`, loss
# gradients, internal contiguous copies) comes from new_float32 / copy_float32.
# One of at least FNN_CACHE_MIN_BYTES (256 KiB) is allocated with NumPy's
# current memory handler switched to "fastnn_cache" for just that one
# allocation, then switched back: the array owns its data (flags.owndata,
# resize, pickle work as usual) and NumPy frees it through the handler it
# was made with, which puts the block back on its size class's free list.
# The next step's output of that size reuses it without page faults. Smaller
# arrays, and every array the user makes, stay on NumPy's default handler.
#
# Why a handler switch and not an array over a cached block with a base object:
# the switch (two PyDataMem_SetHandler calls, a context-variable set each) was
# measured at ~0.1 us per allocation, only for arrays of >= 256 KiB whose
# first touch alone costs ~130 us of page faults; a base object would make
# owndata False and break resize.
#
# GIL and threads: NumPy calls the handler's malloc/realloc when it creates or
# resizes an array and its free from array deallocation, all with the GIL
# held in CPython 3.11 (a refcount reaches zero only in a thread holding it);
# the C side still takes its own mutex, so it does not depend on that. The
# handler setting is a context variable, so per Python thread: a thread's
# switch never routes another thread's allocations through the cache.

from cpython.pycapsule cimport PyCapsule_New
from libc.string cimport strncpy

cdef cnp.PyDataMem_Handler _cache_handler
strncpy(<char *>_cache_handler.name, b"fastnn_cache", 127)
_cache_handler.version = 1
_cache_handler.allocator.ctx = NULL
_cache_handler.allocator.malloc = fnn_cache_malloc
_cache_handler.allocator.calloc = fnn_cache_calloc
_cache_handler.allocator.realloc = fnn_cache_realloc
_cache_handler.allocator.free = fnn_cache_free
fnn_cache_init()
cdef object _cache_capsule = PyCapsule_New(&_cache_handler, "mem_handler", NULL)

CACHE_HANDLER_NAME = "fastnn_cache"
CACHE_MIN_BYTES = FNN_CACHE_MIN_BYTES


cdef object new_float32_dims(int nd, cnp.npy_intp *dims):
    """A new C-contiguous float32 array of shape dims[:nd], large ones from the cache."""
    cdef size_t nbytes = 4
    cdef int i
    for i in range(nd):
        if dims[i] < 0 or (dims[i] > 0 and nbytes > (<size_t>-1) // <size_t>dims[i]):
            nbytes = 0  # NumPy raises for it below
            break
        nbytes *= <size_t>dims[i]
    if nbytes < FNN_CACHE_MIN_BYTES:
        return cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT32, 0)
    previous = cnp.PyDataMem_SetHandler(_cache_capsule)
    try:
        return cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT32, 0)
    finally:
        cnp.PyDataMem_SetHandler(previous)


cdef object new_float32(tuple shape):
    """A new float32 array of `shape` (new_float32_dims for a tuple of ints)."""
    cdef cnp.npy_intp dims[64]
    cdef Py_ssize_t nd = len(shape), i
    if nd > 64:
        raise ValueError(f"at most 64 dimensions, got shape {shape}")
    for i in range(nd):
        dims[i] = shape[i]
    return new_float32_dims(<int>nd, dims)


cdef object copy_float32(object a):
    """A C-contiguous float32 copy of the float32 ndarray a (any strides)."""
    cdef cnp.ndarray src = <cnp.ndarray?>a
    out = new_float32_dims(cnp.PyArray_NDIM(src), cnp.PyArray_DIMS(src))
    cnp.PyArray_CopyInto(<cnp.ndarray>out, src)
    return out


def new_float32_array(shape):
    """An uninitialised float32 C-contiguous array of `shape` whose memory, when large,
    comes from fastnn's block cache (a freed block is reused: no page faults); what
    fastnn.ops.empty gives the layers for their large temporaries."""
    return new_float32(tuple(shape))


def cache_empty():
    """Free every cached block; returns the bytes given back."""
    return fnn_cache_empty()


def cache_set_limit(size_t nbytes):
    """Cap the bytes the cache keeps (frees cached blocks down to it)."""
    fnn_cache_set_limit(nbytes)


def cache_stats():
    """The cache's counters: cached/live bytes and blocks, hits, misses, limit."""
    cdef fnn_cache_info info
    fnn_cache_stats(&info)
    return {"cached_bytes": info.cached_bytes, "cached_blocks": info.cached_blocks,
            "live_bytes": info.live_bytes, "live_blocks": info.live_blocks,
            "hits": info.hits, "misses": info.misses, "limit": info.limit}
