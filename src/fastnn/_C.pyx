"""fastnn._C: the one compiled module, Cython over the C kernels in csrc/.

Each family lives in its own .pxi, included here so that all of them share
one copy of the C library (and so one ISA choice and one thread setting):
  _runtime.pxi      ISA dispatch and threads
  _memory.pxi       fresh float32 outputs, the block cache behind the large ones
  _checks.pxi       input conversion, `out=` validation, status -> exception
  _activations.pxi  element-wise activations and their backward
  _softmax.pxi      softmax / log_softmax along an axis
  _losses.pxi       fused loss + gradient
  _gemm.pxi         matmul (SGEMM), the GEMM block sizes
  _linear.pxi       linear (SGEMM with fused epilogue), linear_backward, the bias gradient
  _optim.pxi        fused optimizer updates (the torch.optim rules of fastnn.optim), in place
  _fma_probe.pxi    the machine's FMA ceiling
  _norm.pxi         batch norm and group norm, forward and backward
  _conv.pxi         convolution (conv1d/2d, transposed) on im2col + SGEMM
  _pool.pxi         max / average / adaptive pooling over NCHW and NCL, and backward
  _rnn.pxi          recurrent layers (RNN, LSTM, GRU): one layer and direction per call
  _embedding.pxi    embedding lookup and its scatter-add backward
Validation happens with the GIL held; every kernel call is inside `with nogil`.
Cython directives are set in one place, setup.py.

The boundary: typed memoryviews or raw pointers, by measurement.
A typed memoryview argument (`const float[::1]`, `float[:, ::1]`, ...) costs
its buffer acquisition on every call; tools/boundary_overhead.py times an
empty C call taking float32 ndarrays both ways (Cython 3, this 2-core
AVX-512 VM, min of 7 x 200k calls):
    arrays  pointer   memoryview  extra per call
    1       0.056 us  0.180 us    0.12 us
    2       0.058 us  0.312 us    0.25 us
    4       0.066 us  0.537 us    0.47 us
    2 (2-D) 0.054 us  0.344 us    0.29 us
So ~0.12 us per array. The paths a training step calls per layer keep raw
pointers taken after validation (activations: 2-3 arrays, +0.25-0.37 us;
linear: 3-5, +0.4-0.6 us; linear_backward: 5-7, +0.6-0.8 us; the optimizer
steps: 3-5, +0.4-0.6 us; against a budget of 3 us per layer); so does matmul,
whose operands are strided or transposed views a `::1` memoryview refuses.
Softmax and the losses (called once per step, not per layer) go through
memoryview kernel wrappers with `# IN` / `# OUT` arguments.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t
from fastnn._cfastnn cimport *

cnp.import_array()

include "_runtime.pxi"
include "_memory.pxi"
include "_checks.pxi"
include "_activations.pxi"
include "_softmax.pxi"
include "_losses.pxi"
include "_gemm.pxi"
include "_linear.pxi"
include "_optim.pxi"
include "_fma_probe.pxi"
include "_norm.pxi"
include "_layer_norm.pxi"
include "_conv.pxi"
include "_pool.pxi"
include "_rnn.pxi"
include "_embedding.pxi"
include "_attention.pxi"
