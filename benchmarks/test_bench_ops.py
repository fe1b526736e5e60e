"""fastnn vs NumPy vs PyTorch with pytest-benchmark, on fastnn.bench's case table.

    pytest benchmarks/                          # time everything
    pytest benchmarks/ -k "gelu and 1M"         # a subset
    pytest benchmarks/ --benchmark-disable      # only check the results, fast
    FASTNN_BENCH_THREADS=4 pytest benchmarks/   # thread count (default 2)

Each test times one implementation of one case; the three implementations
of a case share a benchmark group ("<op> <size>"), so pytest-benchmark prints
them in one table. Results are checked against fastnn's before timing.
Not part of the default test run (pyproject's testpaths is ["tests"]).
"""
import pytest

from fastnn import bench

CASES = bench.build_cases()


@pytest.mark.parametrize("lib", bench.LIBS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op(benchmark, case, lib, case_data, pinned_threads):
    if lib == "torch":
        pytest.importorskip("torch")
    if case.builder(lib) is None:
        pytest.skip(f"no {lib} implementation of {case.name}")
    inputs, reference = case_data.get(case)

    prepared = bench.prepare(case, lib, inputs, reference)  # raises CheckError if wrong
    traffic = case.traffic_bytes(inputs)
    benchmark.group = f"{case.name} {case.size}"
    benchmark.extra_info.update(
        threads=pinned_threads, lib=lib, elements=case.elements, bytes=traffic,
        formulation=prepared.formulation)

    with bench.library_context(lib):
        benchmark(prepared.fn)

    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None with --benchmark-disable
        median = stats.stats.median
        benchmark.extra_info["gb_per_s"] = round(traffic / median / 1e9, 2)
        benchmark.extra_info["elements_per_s"] = case.elements / median
