"""fastnn._C: the one compiled module, Cython over the C kernels in csrc/.

Each family lives in its own .pxi, included here so that all of them share
one copy of the C library (and so one ISA choice and one thread setting):
  _runtime.pxi      ISA dispatch and threads
  _checks.pxi       input conversion, `out=` validation, status -> exception
  _activations.pxi  element-wise activations and their backward
  _softmax.pxi      softmax / log_softmax along an axis
  _losses.pxi       fused loss + gradient
  _gemm.pxi         matmul (SGEMM), the GEMM block sizes
  _linear.pxi       linear (SGEMM with fused epilogue), linear_backward, the bias gradient
  _optim.pxi        fused optimizer updates (SGD, Adam / AdamW, RMSprop), in place
  _fma_probe.pxi    the machine's FMA ceiling
Validation happens with the GIL held; every kernel call is inside `with nogil`.
Cython directives are set in one place, setup.py.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t
from fastnn._cfastnn cimport *

cnp.import_array()

include "_runtime.pxi"
include "_checks.pxi"
include "_activations.pxi"
include "_softmax.pxi"
include "_losses.pxi"
include "_gemm.pxi"
include "_linear.pxi"
include "_optim.pxi"
include "_fma_probe.pxi"
