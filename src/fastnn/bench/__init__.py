"""Benchmark cases and timing harness shared by ``fastnn bench`` and ``benchmarks/``.

Modules
    core               settings (FULL / QUICK), sizes, ``Op`` / ``Case``, the result check
    cases_elementwise  element-wise activations, softmax and losses: ``build_cases(sizes)``
    cases_gemm         matmul / linear: ``build_gemm_cases()`` (square, MLP, im2col,
                       batched attention, linear+relu shapes)
    cases_mlp          MLP training steps: ``build_mlp_cases()`` (784-256-128-10 with
                       SGD and Adam at batch 32-1024; the per-layer overhead case)
    cases_cnn          CNN training steps and inference: ``build_cnn_cases()`` (the baseline
                       CNN, LeNet-5, a small ResNet, LeNet-5 batch-1 inference)
    cases_conv         their Conv2d layers forward / input_grad / weight_grad in GFLOP/s:
                       ``build_conv_layer_cases()`` (part of the CNN suite)
    cases_rnn          RNN training steps and inference: ``build_rnn_cases()`` (LSTM, GRU,
                       a 2-layer LSTM, its batch-1 inference over 64 steps)
    cases_transformer  transformer cases in tokens/s: ``build_transformer_cases()`` (a
                       pre-LN block, the GPT, causal attention at T=128 and 512,
                       generation with the KV cache)
    torch_models       torch twins of fastnn models (nanoGPT's GPT, the SDPA block)
    (fastnn.baselines.numpy_mlp.NumpyMLP is the hand-written NumPy trainer the MLP
                       cases time; it lives in the product: fastnn demo uses it too)
    timing             ``prepare`` (build, check, pick the fastest formulation),
                       ``time_call``, ``measure_fma_peak``
    machine            CPU model, /proc/pressure/cpu, steal (/proc/stat), library
                       versions and threads
    workers            one worker process per library and the parent-side ``WorkerPool``
                       (``python -m fastnn.bench --worker LIB --threads N``)
    report             ``fastnn bench``'s options (``add_arguments``), the run and its
                       tables and JSON (``run``)

The product never imports this package: only the CLI's bench command does
(tests/test_layering.py checks), and it reads runtime facts (ISA, threads, the
FMA probe, GEMM blocking) through fastnn._config, never fastnn._C.

A case knows how to make its inputs (seeded from the case id, so every process
builds identical arrays) and has one builder per library (fastnn, numpy,
torch). Before anything is timed, each implementation's result is compared
with fastnn's (``np.allclose`` with per-case tolerances); a mismatch raises
``CheckError``. Element-wise cases report GB/s of compulsory memory traffic;
GEMM cases GFLOP/s (2 M N K batch / time) and, for fastnn, the percentage of
the FMA peak measured with ``fastnn._config.fma_probe`` on the same thread count;
MLP cases the time per training step and samples per second.
"""
from .cases_elementwise import (CLASSES, DEFAULT_SIZES, ELEMENTWISE, LOSS_SIZE, OP_NAMES, OPS,
                                ROWS, build_cases)
from .cases_gemm import (GEMM_OP_NAMES, GEMM_OPS, SQUARE_SIZES, GemmCase, GemmOp,
                         build_gemm_cases)
from .cases_cnn import CNN_OP_NAMES, CNN_OPS, CnnCase, CnnOp, build_cnn_cases
from .cases_rnn import RNN_OP_NAMES, RNN_OPS, RnnCase, RnnOp, build_rnn_cases
from .cases_transformer import (TRANSFORMER_OP_NAMES, TRANSFORMER_OPS, TransformerCase,
                                TransformerOp, build_transformer_cases)
from .cases_mlp import MLP_OP_NAMES, MLP_OPS, MlpCase, MlpOp, build_mlp_cases
from .core import (DEFAULT_THREADS, FULL, LIBS, QUICK, Case, CheckError, Op, check_result,
                   format_size, parse_size)
from .machine import (cpu_model, cpu_pressure, cpu_stall_total, cpu_steal_ticks,
                      library_versions, numpy_blas_threads)
from .timing import (Prepared, library_context, measure_fma_peak, prepare, reference_result,
                     set_threads, time_call)
from .workers import BLAS_THREAD_VARS, Worker, WorkerPool, worker_cases, worker_main
from .report import SUITES, add_arguments, run

__all__ = [
    "BLAS_THREAD_VARS", "CLASSES", "CNN_OPS", "CNN_OP_NAMES", "CnnCase", "CnnOp",
    "build_cnn_cases", "build_rnn_cases", "RNN_OP_NAMES", "RNN_OPS", "RnnCase", "RnnOp",
    "build_transformer_cases", "TRANSFORMER_OP_NAMES", "TRANSFORMER_OPS", "TransformerCase",
    "TransformerOp", "Case", "CheckError", "DEFAULT_SIZES", "DEFAULT_THREADS",
    "ELEMENTWISE", "FULL", "GEMM_OPS", "GEMM_OP_NAMES", "GemmCase", "GemmOp", "LIBS",
    "LOSS_SIZE", "MLP_OPS", "MLP_OP_NAMES", "MlpCase", "MlpOp", "OPS", "OP_NAMES", "Op",
    "Prepared", "QUICK", "ROWS", "SQUARE_SIZES", "SUITES", "Worker", "WorkerPool",
    "build_cases", "build_gemm_cases", "build_mlp_cases", "check_result", "cpu_model",
    "cpu_pressure", "cpu_stall_total", "cpu_steal_ticks", "format_size", "library_context",
    "library_versions",
    "measure_fma_peak", "numpy_blas_threads", "parse_size", "prepare", "reference_result",
    "set_threads", "time_call", "worker_cases", "worker_main", "add_arguments", "run",
]
