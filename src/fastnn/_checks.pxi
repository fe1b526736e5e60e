# Input conversion, `out=` validation and status codes -> exceptions.
# Everything here runs with the GIL, before any kernel is called.

import numbers

cdef object _float32 = np.dtype(np.float32)
cdef object _INT64_MIN = -(1 << 63)
cdef object _INT64_MAX = (1 << 63) - 1


cdef double as_real(object value, str name) except? -1.0:
    """value as a finite-or-infinite real number; TypeError for anything that is not one."""
    if type(value) is float:  # the common case, without the slow ABC check below
        return <double>value
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must fit in a float, got {value!r}") from None


cdef object as_int64(object value, str name):
    """value as a Python int in the int64 range; TypeError for non-integers."""
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError(f"{name} must fit in int64, got {v}")
    return v


cdef inline int check_aligned(object a, str name, str hint) except -1:
    """ValueError unless the ndarray a is aligned (data pointer and strides multiples
    of its itemsize, NumPy's flags.aligned): kernels read and write it in place
    (an output, an optimizer buffer), where a copy would not do. A flag test."""
    if not cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        raise ValueError(f"{name} must be aligned to {a.itemsize} bytes ({a.dtype} at an "
                         f"address that is a multiple of {a.itemsize}), got an unaligned view "
                         f"(such as np.frombuffer(..., offset=1)){hint}")
    return 0


cdef object aligned_copy(object a):
    """a (an ndarray), copied when it is not aligned: kernels may read an input
    only through aligned pointers (np.ascontiguousarray would keep it as it is)."""
    if cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        return a
    return copy_float32(a) if cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32 else a.copy()


cdef object as_float32(object x, str name):
    """x as an aligned float32 C-contiguous ndarray (no copy when it already is one)."""
    if (type(x) is np.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>x)):
        return x
    try:
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name} must be an array-like of real numbers, got {type(x).__name__} "
                        f"that NumPy cannot convert ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers convertible to float32, "
                        f"got dtype {arr.dtype}")
    return aligned_copy(np.asarray(arr, dtype=np.float32, order="C"))


cdef object as_labels(object y, str name):
    """y as an aligned int64 C-contiguous ndarray of class indices."""
    try:
        arr = y if isinstance(y, np.ndarray) else np.asarray(y)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name} must be an array-like of integer class indices, got "
                        f"{type(y).__name__} that NumPy cannot convert ({err})") from None
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices (int64), got dtype {arr.dtype}")
    return aligned_copy(np.asarray(arr, dtype=np.int64, order="C"))


cdef object make_out(object out, tuple shape, str name="out"):
    """A new float32 array of `shape`, or `out` checked to be a usable one."""
    if out is None:
        return new_float32(shape)
    cdef cnp.npy_intp dims[64]
    cdef Py_ssize_t nd = len(shape), i
    if nd > 64:
        raise ValueError(f"at most 64 dimensions, got shape {shape}")
    for i in range(nd):
        dims[i] = shape[i]
    check_out_dims(out, <int>nd, dims, name)
    return out


cdef int check_out_dims(object out, int nd, const cnp.npy_intp *dims, str name) except -1:
    """out checked to be a writeable, aligned, C-contiguous float32 ndarray of shape
    dims[:nd] (the shape compared in C: this runs on every layer's backward)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype float32, "
                        f"got {type(out).__name__}")
    cdef cnp.ndarray o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(o):
        raise TypeError(f"{name} must have dtype float32, got {out.dtype}")
    cdef bint same = cnp.PyArray_NDIM(o) == nd
    cdef int i
    for i in range(nd if same else 0):
        same = cnp.PyArray_DIMS(o)[i] == dims[i]
        if not same:
            break
    if not same:
        raise ValueError(f"{name} must have shape {tuple(dims[i] for i in range(nd))}, got "
                         f"{out.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(o):
        raise ValueError(f"{name} must be C-contiguous; pass np.ascontiguousarray({name}) "
                         f"or out=None")
    check_aligned(o, name, "; pass an aligned array (np.empty gives one) or out=None")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError(f"{name} must be writeable, got a read-only array")
    return 0


cdef inline object unshared(object a, object written):
    """a, copied if its memory overlaps `written` at all (a product reads a while
    it writes `written`: unlike the element-wise kernels, no aliasing is safe)."""
    return copy_float32(a) if may_overlap(a, written) else a


cdef inline object unshared_opt(object a, object written):
    """unshared for an optional input (None stays None)."""
    return None if a is None else unshared(a, written)


cdef void byte_extent(cnp.ndarray a, char **lo, char **hi) noexcept:
    """[*lo, *hi): the bytes a's elements can touch (empty for an empty array)."""
    cdef char *data = <char *>cnp.PyArray_DATA(a)
    cdef char *start = data
    cdef char *end = data
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef int d
    cdef cnp.npy_intp n, s
    for d in range(cnp.PyArray_NDIM(a)):  # (no PyArray_SIZE: one call per test adds up)
        n, s = dims[d], strides[d]
        if n == 0:
            lo[0] = hi[0] = data
            return
        if s < 0:
            start += s * (n - 1)
        else:
            end += s * (n - 1)
    lo[0], hi[0] = start, end + cnp.PyArray_ITEMSIZE(a)


cdef bint may_overlap(object a, object b):
    """True when the memory ranges of ndarrays a and b intersect: the bounds test
    np.may_share_memory does, without its Python call overhead."""
    cdef char *a_lo
    cdef char *a_hi
    cdef char *b_lo
    cdef char *b_hi
    byte_extent(<cnp.ndarray>a, &a_lo, &a_hi)
    byte_extent(<cnp.ndarray>b, &b_lo, &b_hi)
    return a_lo < a_hi and b_lo < b_hi and a_lo < b_hi and b_lo < a_hi


cdef object apart_from(object arr, object out):
    """arr, copied if it partly overlaps out (exact aliasing is fine for every kernel)."""
    if out is arr or not may_overlap(arr, out):
        return arr
    if (cnp.PyArray_DATA(<cnp.ndarray>arr) == cnp.PyArray_DATA(<cnp.ndarray>out)
            and arr.shape == out.shape):
        return arr
    return copy_float32(arr)


cdef check_same_shape(object a, str a_name, object b, str b_name):
    if a.shape != b.shape:
        raise ValueError(f"{b_name} must have the same shape as {a_name} {a.shape}, "
                         f"got {b.shape}")


cdef int check_status(fnn_status status, str what) except -1:
    if status == FNN_OK:
        return 0
    if status == FNN_ERR_NOMEM:
        raise MemoryError(f"{what}: out of memory for scratch space")
    raise ValueError(f"{what}: invalid arguments (status {<int>status})")


# Raw data pointers of C-contiguous float32 ndarrays (or subclasses) that the
# as_float32 / make_out checks above have vetted; NULL when empty.
cdef inline float *fptr(object a) noexcept:
    return <float *>cnp.PyArray_DATA(<cnp.ndarray>a) if cnp.PyArray_SIZE(<cnp.ndarray>a) > 0 else NULL


cdef inline const float *cfptr(object a) noexcept:
    return <const float *>cnp.PyArray_DATA(<cnp.ndarray>a) if cnp.PyArray_SIZE(<cnp.ndarray>a) > 0 else NULL


cdef inline int64_t nelem(object a) noexcept:
    return cnp.PyArray_SIZE(<cnp.ndarray>a)
