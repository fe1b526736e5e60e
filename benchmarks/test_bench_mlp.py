"""MLP training steps: fastnn vs NumPy (hand-written backprop,
fastnn.baselines.numpy_mlp) vs PyTorch with pytest-benchmark, on fastnn.bench's
MLP case table: 784-256-128-10 with SGD (lr 0.01, momentum 0.9) and Adam
(lr 1e-3) at batch 32, 64, 256 and 1024, and the per-layer overhead case
(8 x Linear(4, 4) with ReLUs, batch 1, SGD).

    pytest benchmarks/test_bench_mlp.py                  # time everything
    pytest benchmarks/test_bench_mlp.py -k "adam"        # a subset
    pytest benchmarks/ --benchmark-disable               # only check the results, fast
    FASTNN_BENCH_THREADS=4 pytest benchmarks/            # thread count (default 2)

One benchmark group per case ("<case> batch <N>"), holding its three
implementations; one timed call is one training step (forward, loss,
backward, optimizer step, zero_grad), and the model keeps training from call
to call. extra_info has batch, samples_per_s and, for the overhead case,
per_layer_us (step time / 8 layers, a layer being a Linear and its ReLU).
Every library starts from the case's weights, and the loss after two steps
is checked against fastnn's before timing.
"""
import pytest

from fastnn import bench

CASES = bench.build_mlp_cases()


@pytest.mark.parametrize("lib", bench.LIBS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mlp_step(benchmark, timed, case, lib, pinned_threads):
    benchmark.group = f"{case.name} batch {case.batch}"
    benchmark.extra_info.update(threads=pinned_threads, lib=lib, batch=case.batch,
                                model=case.shape_text, layers=case.layers)
    median = timed(case, lib)   # checks the loss against fastnn's, then times
    if median is not None:
        benchmark.extra_info["samples_per_s"] = round(case.batch / median, 1)
        if case.name == "overhead":
            benchmark.extra_info["per_layer_us"] = round(1e6 * median / case.layers, 3)
