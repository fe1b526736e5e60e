"""`fastnn bench --suite cnn` per-layer table: each Conv2d of the CNN cases forward,
input_grad and weight_grad in GFLOP/s and % of the FMA peak; torch's results are
checked against fastnn's before timing (exit code 1 on a mismatch)."""
import json

import numpy as np

from fastnn import cli, ops
from fastnn.bench.cases_conv import CONV_LAYER_OP_NAMES, LAYERS, build_conv_layer_cases


def test_layer_cases_cover_every_layer_and_direction():
    cases = build_conv_layer_cases()
    assert len(cases) == 3 * len(LAYERS)
    assert len({c.id for c in cases}) == len(cases)
    case = next(c for c in cases if c.id == "conv_forward/baseline.conv2")
    assert case.flops == 2 * 32 * 32 * 16 * 16 * 16 * 3 * 3
    assert case.name == "baseline.conv2 forward"
    inputs = case.inputs()
    assert inputs["x"].shape == (32, 16, 16, 16) and inputs["dy"].shape == (32, 32, 16, 16)
    assert [c.op.name for c in build_conv_layer_cases(["conv_weight_grad"])] == \
        ["conv_weight_grad"] * len(LAYERS)


def test_weight_grad_case_computes_dw_and_db():
    case = next(c for c in build_conv_layer_cases(["conv_weight_grad"])
                if c.size == "lenet5.conv2")
    inputs = case.inputs()
    dw, db = case.builder("fastnn")(inputs)()
    x, dy = inputs["x"].astype(np.float64), inputs["dy"].astype(np.float64)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    # dW[o, c, i, j] = sum over n, p, q of dy[n, o, p, q] x[n, c, p + i, q + j]
    want = np.einsum("nopq,ncpqij->ocij", dy, np.lib.stride_tricks.sliding_window_view(
        x, (5, 5), axis=(2, 3)))
    np.testing.assert_allclose(dw, want, rtol=1e-4, atol=1e-5)
    assert ops.conv2d(inputs["x"], inputs["w"]).shape == dy.shape


def test_bench_cnn_layers_table_and_json(tmp_path, capsys):
    path = tmp_path / "layers.json"
    code = cli.main(["bench", "--suite", "cnn", "--ops", ",".join(CONV_LAYER_OP_NAMES),
                     "--quick", "--rounds", "1", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "CNN layers (Conv2d, stride 1)" in out and "fastnn % peak" in out
    for case in build_conv_layer_cases():
        row = next(line for line in out.splitlines() if line.startswith(case.name + " "))
        assert case.shape_text in row
        assert float(row.split()[-1]) > 0, row  # fastnn's % of the peak
    doc = json.loads(path.read_text())
    rec = next(c for c in doc["cases"] if c["case"] == "conv_input_grad/resnet.block")
    assert rec["suite"] == "cnn_layers" and rec["layer"]["C"] == 32
    assert rec["times"]["fastnn"]["gflops"] > 0 and rec["fastnn_pct_peak"] > 0
