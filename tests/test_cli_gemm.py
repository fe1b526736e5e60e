"""`fastnn bench --suite gemm`: the GEMM table (GFLOP/s, speed-ups, % of the
measured FMA peak), its JSON, and the --suite / --ops checks."""
import json

import pytest

from fastnn import bench, cli


def _rows(out, names):
    return [line for line in out.splitlines() if line.split(" ", 1)[0] in names]


def test_bench_gemm_quick_prints_gflops_table(tmp_path, capsys):
    path = tmp_path / "gemm.json"
    code = cli.main(["bench", "--suite", "gemm", "--quick", "--rounds", "1",
                     "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FMA peak: " in out and " GFLOP/s on 2 threads" in out
    header = next(line for line in out.splitlines() if line.startswith("case "))
    libs = [lib for lib in bench.LIBS if f"{lib} GFLOP/s" in header]
    assert libs[:2] == ["fastnn", "numpy"]
    for column in ("shape", "vs numpy", "fastnn % peak"):
        assert column in header
    assert "fastnn GB/s" not in header                              # GEMM suite only
    assert not _rows(out, bench.OP_NAMES)

    expected = bench.build_gemm_cases(quick=True)
    rows = _rows(out, bench.GEMM_OP_NAMES)
    assert len(rows) == len(expected) and "(2048,2048)" not in out   # --quick: no 2048^3
    for case, row in zip(expected, rows):
        assert case.shape_text in row
        cells = row[row.index(case.shape_text) + len(case.shape_text):].split()
        assert len(cells) == 2 * len(libs)           # GFLOP/s per lib, vs other libs, % peak
        gflops, ratios, pct = cells[:len(libs)], cells[len(libs):-1], cells[-1]
        assert all(float(g) > 0 for g in gflops), row
        assert all(r.startswith("x") and float(r[1:]) > 0 for r in ratios), row
        assert float(pct) > 0, row  # how high is a timing: benchmarks/RESULTS.md

    doc = json.loads(path.read_text())
    assert doc["suite"] == "gemm" and doc["fma_peak"]["gflops"] > 0
    assert doc["fma_peak"]["threads"] == 2
    assert [c["case"] for c in doc["cases"]] == [c.id for c in expected]
    rec = next(c for c in doc["cases"] if c["case"] == "mlp_dW/256x784x64")
    assert (rec["m"], rec["n"], rec["k"], rec["flops"]) == (256, 784, 64, 2 * 256 * 784 * 64)
    assert rec["times"]["fastnn"]["gflops"] > 0 and rec["fastnn_pct_peak"] > 0
    if "numpy" in doc["info"]:
        assert doc["info"]["numpy"]["blas_threads"] in (None, 2)   # env pinned the BLAS


def test_gemm_case_table_shapes():
    cases = {c.id: c for c in bench.build_gemm_cases()}
    assert [c.shape for c in bench.build_gemm_cases(["square"])] == [
        (1, n, n, n) for n in (32, 64, 128, 256, 512, 1024, 2048)]
    assert cases["attn_qk/32x128x128x32"].flops == 2 * 32 * 128 * 128 * 32
    inputs = cases["attn_qk/32x128x128x32"].inputs()
    assert inputs["q"].shape == inputs["k"].shape == (32, 128, 32)
    inputs = cases["mlp_dW/256x784x64"].inputs()
    assert inputs["dy"].shape == (64, 256) and inputs["x"].shape == (64, 784)
    assert cases["linear_relu/256x1024x1024"].inputs()["w"].shape == (1024, 1024)


@pytest.mark.parametrize("argv", [["bench", "--suite", "gemm", "--ops", "relu"],
                                  ["bench", "--suite", "elementwise", "--ops", "square"],
                                  ["bench", "--ops", "nope"]])
def test_bench_rejects_ops_outside_the_suite(argv, capsys):
    assert cli.main(argv) == 2
    assert "fastnn bench:" in capsys.readouterr().err


def test_bench_suite_must_be_known(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--suite", "conv"])
    assert exc.value.code == 2
