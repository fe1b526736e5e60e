"""GEMM: fastnn vs NumPy (OpenBLAS) vs PyTorch with pytest-benchmark, on
fastnn.bench's GEMM case table (square, MLP layer, im2col, batched attention,
linear+relu shapes).

    pytest benchmarks/test_bench_gemm.py                  # time everything
    pytest benchmarks/test_bench_gemm.py -k "square"      # a subset
    pytest benchmarks/ --benchmark-disable                # only check the results, fast
    FASTNN_BENCH_THREADS=4 pytest benchmarks/             # thread count (default 2)

One benchmark group per case ("<case> <shape>"), holding its three
implementations. extra_info has flops, gflops (2 M N K batch / median time)
and, for fastnn, pct_peak: the share of the FMA peak measured once per
session with fastnn._config.fma_probe. Results are checked against fastnn's first.
"""
import pytest

from fastnn import bench

CASES = bench.build_gemm_cases()


@pytest.mark.parametrize("lib", bench.LIBS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gemm(benchmark, case, lib, case_data, pinned_threads, fma_peak):
    if lib == "torch":
        pytest.importorskip("torch")
    inputs, reference = case_data.get(case)

    prepared = bench.prepare(case, lib, inputs, reference)  # raises CheckError if wrong
    batch, m, n, k = case.shape
    benchmark.group = f"{case.name} {case.shape_text}"
    benchmark.extra_info.update(
        threads=pinned_threads, lib=lib, batch=batch, m=m, n=n, k=k, flops=case.flops,
        formulation=prepared.formulation)
    if lib == "numpy":
        benchmark.extra_info["blas_threads"] = bench.numpy_blas_threads()

    with bench.library_context(lib):
        benchmark(prepared.fn)

    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None with --benchmark-disable
        gflops = case.flops / stats.stats.median / 1e9
        benchmark.extra_info["gflops"] = round(gflops, 2)
        if lib == "fastnn" and fma_peak:
            benchmark.extra_info["fma_peak_gflops"] = round(fma_peak["gflops"], 1)
            benchmark.extra_info["pct_peak"] = round(100.0 * gflops / fma_peak["gflops"], 1)
