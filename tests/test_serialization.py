"""fastnn.save / load / load_state_dict / save_checkpoint / load_checkpoint /
register_module: round trips for every layer, atomic writes, hostile files
(loaded in a child interpreter, so a crash fails the test instead of pytest),
bitwise-exact resumed training, and PyTorch interop through files."""
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy

import fastnn
from fastnn import models, nn, optim, serialization
from fastnn.optim import lr_scheduler


@pytest.fixture
def registry(monkeypatch):
    """A fresh register_module registry for the test."""
    monkeypatch.setattr(serialization.registry, "_registered", {})


def every_layer_model():
    fastnn.manual_seed(3)
    inner = nn.Sequential(OrderedDict(act=nn.GELU(approximate="tanh"), same=nn.Identity()))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(6, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.LeakyReLU(0.2),
        nn.Linear(16, 16, bias=False), nn.Sigmoid(), nn.Dropout(0.3), nn.Linear(16, 12),
        nn.Tanh(), nn.GELU(), nn.SiLU(), inner, nn.Softmax(dim=1), nn.Linear(12, 5),
        nn.LogSoftmax(-1), nn.BatchNorm1d(5, momentum=None, affine=False),
        nn.BatchNorm1d(5, track_running_stats=False))


def train_one_step(model, x):
    model.train()
    opt = optim.SGD(model.parameters(), lr=0.1)
    y = model(x)
    model.backward(np.ones_like(y) / y.size)
    opt.step()


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_round_trip_every_layer(tmp_path):
    x = fastnn.random.generator().standard_normal((8, 2, 3)).astype(np.float32)
    model = every_layer_model()
    train_one_step(model, x)  # running statistics and weights away from their initial values
    assert int(model[3].num_batches_tracked) == 1
    path = tmp_path / "model.safetensors"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert loaded.training and all(m.training for m in loaded.modules())
    assert repr(loaded) == repr(model)
    assert_same_state(loaded, model)
    assert loaded.state_dict()["3.num_batches_tracked"].dtype == np.int64
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded(x), model(x))
    with safetensors.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "fastnn" and meta["content"] == "model"
    arch = json.loads(meta["architecture"])
    assert arch["class"] == "Sequential" and arch["children"][1] == [
        "1", {"class": "Linear", "config": {"in_features": 6, "out_features": 16, "bias": True}}]
    umask = os.umask(0o22)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as open() would make it


def test_round_trip_residual_and_concat(tmp_path):
    fastnn.manual_seed(4)
    model = nn.Sequential(
        nn.Residual(nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6), nn.ReLU())),
        nn.Residual(nn.Sequential(nn.Linear(6, 4), nn.Tanh()), shortcut=nn.Linear(6, 4)),
        nn.Concat(nn.Linear(4, 3), nn.Sequential(nn.Linear(4, 2), nn.GELU()), dim=-1),
        nn.Linear(5, 2))
    x = fastnn.random.generator().standard_normal((7, 6)).astype(np.float32)
    train_one_step(model, x)
    path = tmp_path / "blocks.safetensors"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert repr(loaded) == repr(model)
    assert_same_state(loaded, model)
    assert loaded[0].shortcut is None and loaded[2].dim == -1
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded(x), model(x))
    loaded.train()
    train_one_step(loaded, x)  # and it trains: backward through the rebuilt containers


def test_registered_module_holding_a_module_list(tmp_path, registry):
    @fastnn.register_module
    class Tower(nn.Module):
        def __init__(self, sizes, scale=1.0):
            super().__init__()
            self.sizes, self.scale = list(sizes), scale
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x * np.float32(self.scale)

        def get_config(self):
            return {"sizes": self.sizes, "scale": self.scale}

    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), Tower((4, 6, 2), scale=0.5))
    fastnn.save(model, tmp_path / "m.safetensors")
    loaded = fastnn.load(tmp_path / "m.safetensors")
    assert type(loaded[2]) is Tower and loaded[2].sizes == [4, 6, 2]
    assert_same_state(loaded, model)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(loaded(x), model(x))
    # a registered class at the root, and the same class defined again (a re-run cell)
    fastnn.save(Tower([2, 2]), tmp_path / "t.safetensors")
    assert type(fastnn.load(tmp_path / "t.safetensors")) is Tower
    assert fastnn.register_module(Tower) is Tower


def test_containers_follow_the_protocol(tmp_path, registry):
    """A container is any class inheriting nn.container_protocol.Container: saved
    from named_children() and container_config(), rebuilt by from_children()."""
    from fastnn.nn.container_protocol import Container

    @fastnn.register_module
    class Sum(Container, nn.Module):
        def __init__(self, *branches, scale=1.0):
            super().__init__()
            self.scale = scale
            for i, branch in enumerate(branches):
                self.add_module(f"b{i}", branch)

        def container_config(self):
            return {"scale": self.scale}

        @classmethod
        def from_children(cls, children, **config):
            return cls(*(m for _, m in children), **config)

        def forward(self, x):
            return sum(m(x) for m in self.children()) * np.float32(self.scale)

    fastnn.manual_seed(0)
    model = nn.Sequential(Sum(nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 2), nn.Tanh()),
                              scale=0.5), nn.ModuleList([nn.ReLU()]))
    path = tmp_path / "m.safetensors"
    fastnn.save(model, path)
    with safetensors.safe_open(str(path), framework="np") as f:
        arch = json.loads(f.metadata()["architecture"])
    assert arch["children"][0][1]["class"] == "Sum"
    assert arch["children"][0][1]["config"] == {"scale": 0.5}
    assert "config" not in arch and "config" not in arch["children"][1][1]  # {} is left out
    loaded = fastnn.load(path)
    assert type(loaded[0]) is Sum and loaded[0].scale == 0.5
    assert [n for n, _ in loaded[0].named_children()] == ["b0", "b1"]
    assert_same_state(loaded, model)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded[0](x), model[0](x))

    @fastnn.register_module
    class Lossy(Sum):  # rebuilds without its last child: refused
        @classmethod
        def from_children(cls, children, **config):
            return cls(*(m for _, m in children[:-1]), **config)

    fastnn.save(Lossy(nn.ReLU(), nn.Tanh()), path)
    with pytest.raises(ValueError, match="did not rebuild the children"):
        fastnn.load(path)

    class Unregistered(nn.Sequential):
        pass

    with pytest.raises(TypeError, match="register_module"):
        fastnn.save(Unregistered(nn.ReLU()), path)
    bad = {"class": "Sequential", "config": {"x": 1}, "children": [["0", {
        "class": "ReLU", "config": {}}]]}
    safetensors.numpy.save_file({}, str(path), metadata={
        "format": "fastnn", "format_version": "1", "content": "model",
        "architecture": json.dumps(bad)})
    with pytest.raises(ValueError, match=r"takes no argument\(s\) 'x'"):
        fastnn.load(path)


def test_register_module_checks(registry):
    with pytest.raises(TypeError, match="subclass of fastnn.nn.Module"):
        fastnn.register_module(dict)
    with pytest.raises(TypeError, match="subclass of fastnn.nn.Module"):
        fastnn.register_module(nn.Linear(2, 2))
    assert fastnn.register_module(nn.Linear) is nn.Linear

    class Linear(nn.Module):
        pass

    with pytest.raises(ValueError, match="is fastnn.nn.Linear"):
        fastnn.register_module(Linear)

    def make():
        class Block(nn.Module):
            pass
        return Block

    first = fastnn.register_module(make())
    second = make()
    second.__qualname__ = "Other.Block"
    with pytest.raises(ValueError, match="already registered"):
        fastnn.register_module(second)
    assert serialization.registry._registered["Block"] is first


def test_module_without_get_config_cannot_be_saved(tmp_path, registry):
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

    class Configured(nn.Module):
        def get_config(self):
            return {}

    path = tmp_path / "m.safetensors"
    for model, where in [(nn.Sequential(nn.ReLU(), Custom()), "model.1"),
                         (nn.Sequential(nn.ModuleList([Configured()])), "model.0.0")]:
        with pytest.raises(TypeError, match=rf"{where} .*get_config.*register_module"):
            fastnn.save(model, path)
    fastnn.register_module(Custom)
    with pytest.raises(TypeError, match="define get_config"):
        fastnn.save(Custom(), path)
    assert list(tmp_path.iterdir()) == []


def test_tied_weights_are_refused(tmp_path):
    shared = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="tied weights"):
        fastnn.save(nn.Sequential(shared, nn.ReLU(), shared), tmp_path / "m.safetensors")
    other = nn.Linear(3, 3)
    other.weight = shared.weight
    with pytest.raises(ValueError, match="tied weights"):
        fastnn.save(nn.Sequential(shared, other), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    fastnn.save(nn.Sequential(nn.Linear(3, 2)), path)
    old = path.read_bytes()
    real = safetensors.numpy.save_file

    def half_then_fail(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:  # a partial write, then the disk fills up
            f.truncate(20)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        fastnn.save(nn.Sequential(nn.Linear(30, 20)), path)
    with pytest.raises(OSError, match="No space left"):
        fastnn.save_checkpoint(path, nn.Linear(30, 20), epoch=1)
    monkeypatch.setattr(safetensors.numpy, "save_file", real)
    with pytest.raises(TypeError):  # fails before writing
        fastnn.save_checkpoint(path, nn.Linear(3, 2), epoch=object())
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert fastnn.load(path)[0].in_features == 3


SAVER = r"""
import sys
import fastnn
from fastnn import nn
model = nn.Linear(2048, 2048)  # 16 MiB of weights: a save long enough to be killed in
checkpoint = sys.argv[2] == "checkpoint"
print("ready", flush=True)
while True:
    if checkpoint:
        fastnn.save_checkpoint(sys.argv[1], model, epoch=1)
    else:
        fastnn.save(model, sys.argv[1])
"""


def kill_mid_save(path, kind, attempts=20):
    """Start a process saving to path over and over and SIGKILL it while its
    temporary exists; returns the temporaries it left (retries if the kill came
    just after a rename)."""
    folder = path.parent
    for _ in range(attempts):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path), kind],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 30
            while not list(folder.glob(f".{path.name}.fastnn-{proc.pid}-*.tmp")):
                assert time.monotonic() < deadline, "the saver wrote no temporary"
                time.sleep(0.0005)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()  # reaped: its PID no longer exists
            proc.stdout.close()
        left = list(folder.glob(f".{path.name}.fastnn-{proc.pid}-*.tmp"))
        if left:
            return left
    raise AssertionError(f"no kill in {attempts} tries left a temporary")


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="PIDs are judged with os.kill(pid, 0)")
@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_temporaries_of_killed_writers_are_removed(tmp_path, kind):
    """kill -9 mid-save leaves its temporary behind and the old file whole; the next
    save into the folder removes the temporaries of dead writers only."""
    path = tmp_path / "model.safetensors"
    small = nn.Linear(3, 2)
    if kind == "model":
        fastnn.save(small, path)
    else:
        fastnn.save_checkpoint(path, small, epoch=0)
    left = kill_mid_save(path, kind)
    if kind == "model":  # the old file or the new one, whole
        assert fastnn.load(path).in_features in (3, 2048)
    else:
        assert fastnn.load_state_dict(path)["weight"].shape in ((2, 3), (2048, 2048))

    tag = left[0].name.split("-")[-2]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".other.safetensors.fastnn-{dead_pid()}-{tag}-{'a' * 12}.tmp",
            "live": f".other.safetensors.fastnn-{live.pid}-{tag}-{'b' * 12}.tmp",
            "mine": f".other.safetensors.fastnn-{os.getpid()}-{tag}-{'c' * 12}.tmp",
            "other_machine": f".x.fastnn-{dead_pid()}-{'0' * 8 if tag != '0' * 8 else '1' * 8}"
                             f"-{'d' * 12}.tmp",
            "not_ours": f".x.{dead_pid()}.tmp", "old_style": ".x.0123456789ab.tmp",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        (tmp_path / "sub").mkdir()
        fastnn.save(nn.Linear(1, 1), tmp_path / "sub" / "elsewhere.safetensors")
        assert all(p.exists() for p in left)  # only a save into the same folder cleans
        fastnn.save(nn.Linear(1, 1), tmp_path / "another.safetensors")
        assert not any(p.exists() for p in left)
        kept = {k for k, name in names.items() if (tmp_path / name).exists()}
        assert kept == {"live", "mine", "other_machine", "not_ours", "old_style"}
    finally:
        live.kill()
        live.wait()
    if kind == "model":
        assert fastnn.load(path).in_features in (3, 2048)


def test_load_state_dict_from_files(tmp_path):
    fastnn.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    fastnn.save(model, tmp_path / "m.safetensors")
    fastnn.save_checkpoint(tmp_path / "c.safetensors", model, epoch=0)
    safetensors.numpy.save_file(model.state_dict(), str(tmp_path / "plain.safetensors"))
    for name in ("m", "c", "plain"):
        sd = fastnn.load_state_dict(tmp_path / f"{name}.safetensors")
        assert sorted(sd) == sorted(model.state_dict())
        other = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        other.load_state_dict(sd)
        assert_same_state(other, model)
        assert sd["1.num_batches_tracked"].dtype == np.int64 and sd["0.weight"].flags.writeable
    with pytest.raises(ValueError, match="not one fastnn wrote.*load_state_dict"):
        fastnn.load(tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="load_checkpoint"):
        fastnn.load(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match=r"fastnn\.load\(path\)"):
        fastnn.load_checkpoint(tmp_path / "m.safetensors", model)
    with pytest.raises(FileNotFoundError):
        fastnn.load_state_dict(tmp_path / "missing.safetensors")


def implied_state(layer):
    """What layer's class says a layer with layer's config holds (the config as the file
    stores it: through JSON, tuples become lists)."""
    config = json.loads(json.dumps(layer.get_config()))
    args = serialization.architecture._arguments(type(layer), config, True,
                                                 type(layer).__name__).arguments
    return type(layer).state_shapes(dict(args))


def test_every_builtin_layer_describes_its_state():
    """fastnn.load compares the sizes a config implies before building: every
    fastnn.nn layer (every Module class in nn.__all__ but the containers)
    defines the classmethod state_shapes, and what it implies is what a layer
    built with that config holds."""
    from fastnn.nn.container_protocol import Container
    layers = {name: cls for name, cls in serialization.registry.builtins().items()
              if not issubclass(cls, Container)}
    assert {"Linear", "BatchNorm1d", "ReLU", "CrossEntropyLoss"} <= set(layers)
    undescribed = [name for name, cls in layers.items()
                   if cls.state_shapes.__func__ is nn.Module.state_shapes.__func__]
    assert not undescribed, f"define state_shapes on {undescribed}"
    cases = [nn.Linear(3, 5), nn.Linear(0, 2, bias=False), nn.BatchNorm1d(4),
             nn.BatchNorm1d(2, affine=False), nn.BatchNorm1d(3, track_running_stats=False)]
    cases += [nn.BatchNorm2d(3), nn.BatchNorm2d(2, bias=False), nn.GroupNorm(2, 4),
              nn.GroupNorm(1, 3, affine=False)]  # the norm family (constructors need sizes)
    cases += [nn.Conv1d(2, 4, 3), nn.Conv2d(3, 4, 3, bias=False), nn.ConvTranspose1d(2, 4, 3),
              nn.ConvTranspose2d(3, 4, 2)]  # the conv family
    cases += [nn.MaxPool1d(2), nn.MaxPool2d(3, stride=2, padding=1, return_indices=True),
              nn.AvgPool1d(3), nn.AvgPool2d(2, ceil_mode=True, divisor_override=3),
              nn.AdaptiveAvgPool1d(4), nn.AdaptiveAvgPool2d((None, 2)), nn.AdaptiveMaxPool1d(3),
              nn.AdaptiveMaxPool2d(2), nn.ZeroPad2d((1, 0, 2, -1)), nn.ConstantPad2d(1, 0.5),
              nn.Upsample(scale_factor=2)]  # pooling, padding, upsampling
    cases += [nn.RNN(3, 4, nonlinearity="relu"), nn.LSTM(3, 5, num_layers=2, proj_size=2),
              nn.GRU(2, 3, bias=False, bidirectional=True), nn.RNNCell(2, 3),
              nn.LSTMCell(2, 3), nn.GRUCell(2, 3, bias=False),
              nn.Embedding(7, 3, padding_idx=1)]  # the recurrent family
    cases += [nn.Threshold(0.1, 20.0), nn.PReLU(), nn.PReLU(3, init=0.1)]  # activations
    cases += [nn.CrossEntropyLoss(weight=[1.0, 2.0, 0.5]), nn.NLLLoss(weight=[3.0]),
              nn.BCEWithLogitsLoss(pos_weight=[[2.0, 1.0]]),
              nn.BCEWithLogitsLoss(weight=[1.0], pos_weight=[2.0, 1.0])]  # weighted losses
    cases += [nn.LayerNorm((2, 3)), nn.LayerNorm(4, bias=False), nn.RMSNorm(3),
              nn.MultiheadAttention(8, 2), nn.MultiheadAttention(4, 2, bias=False, kdim=3,
                                                                 vdim=5, add_bias_kv=True),
              nn.TransformerEncoderLayer(8, 2, 16),
              nn.TransformerEncoderLayer(8, 2, 12, bias=False),
              nn.TransformerDecoderLayer(8, 2, 16), models.GPT(11, 6, 2, 2, 8),
              models.GPT(5, 4, 1, 1, 4, bias=False)]  # the transformer family
    for name, cls in layers.items():
        try:
            cases.append(cls())  # every layer constructible without arguments
        except (TypeError, ValueError):  # (Upsample needs size or scale_factor)
            assert any(type(c) is cls for c in cases), f"add a {name} to the cases"
    for layer in cases:
        assert implied_state(layer) == serialization.files.state_signature(layer), layer
    with pytest.raises(ValueError, match="true or false"):
        nn.Linear.state_shapes({"in_features": 2, "out_features": 3, "bias": "no"})
    with pytest.raises(ValueError, match="int >= 0"):
        nn.BatchNorm1d.state_shapes({"num_features": 2.0, "affine": True,
                                     "track_running_stats": True})


def test_models_with_losses_save_and_load(tmp_path):
    """A loss is a module like any other: its options go through get_config."""
    losses = [nn.CrossEntropyLoss(ignore_index=3, reduction="sum", label_smoothing=0.1),
              nn.MSELoss(reduction="sum"), nn.BCEWithLogitsLoss(), nn.L1Loss(),
              nn.HuberLoss(delta=0.5), nn.CrossEntropyLoss(weight=[0.1, 2.0, 1 / 3]),
              nn.BCEWithLogitsLoss(weight=[1.0, 0.5], pos_weight=[3.0, 1 / 7]),
              nn.MultiLabelSoftMarginLoss(weight=[2.0, 1.0], reduction="none")]
    model = nn.Sequential(nn.Linear(3, 4), nn.ModuleList(losses))
    fastnn.save(model, tmp_path / "m.safetensors")
    loaded = fastnn.load(tmp_path / "m.safetensors")
    assert repr(loaded) == repr(model)
    for a, b in zip(loaded[1], losses):
        assert type(a) is type(b) and a.get_config() == b.get_config()
        assert a.state_dict().keys() == b.state_dict().keys()
        for key, value in b.state_dict().items():  # class weights are buffers, bit for bit
            np.testing.assert_array_equal(a.state_dict()[key], value)
    assert loaded[1][0].ignore_index == 3 and loaded[1][0].label_smoothing == 0.1
    assert loaded[1][4].delta == 0.5 and loaded[1][1].reduction == "sum"
    assert_same_state(loaded, model)
    fastnn.save(nn.CrossEntropyLoss(), tmp_path / "loss.safetensors")
    assert type(fastnn.load(tmp_path / "loss.safetensors")) is nn.CrossEntropyLoss


# ---- hostile files, loaded in a child interpreter -----------------------------------

CHILD = r"""
import json, sys, faulthandler, resource
faulthandler.enable()
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
import fastnn
from fastnn import nn, optim
cases = json.loads(sys.argv[1])
for name, path in cases:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = optim.Adam(model.parameters())
    calls = [("load", lambda: fastnn.load(path)),
             ("load_checkpoint", lambda: fastnn.load_checkpoint(path, model, opt)),
             ("load_state_dict", lambda: fastnn.load_state_dict(path))]
    for fn, call in calls:
        try:
            call()
            kind, msg = "returned", ""
        except BaseException as err:
            kind, msg = type(err).__name__, str(err)
        print(json.dumps([name, fn, kind, msg[:400]]), flush=True)
print("done")
"""


def raw_file(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def nested(depth):
    spec = {"class": "Identity", "config": {}}
    text = json.dumps(spec)
    for _ in range(depth):
        text = '{"class":"Sequential","children":[["0",' + text + ']]}'
    return text


def hostile_files(tmp_path, marker):
    """{case name: path}: broken, foreign and malicious files."""
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    good_path = tmp_path / "good.safetensors"
    fastnn.save(model, good_path)
    good = good_path.read_bytes()
    header_len = struct.unpack("<Q", good[:8])[0]
    with safetensors.safe_open(str(good_path), framework="np") as f:
        meta = f.metadata()
    tensors = model.state_dict()
    files = {}

    def put(name, content):
        files[name] = tmp_path / f"{name}.safetensors"
        files[name].write_bytes(content)

    def with_meta(name, arch=None, tensors=tensors, **changes):
        m = {**meta, **changes}
        if arch is not None:
            m["architecture"] = arch if isinstance(arch, str) else json.dumps(arch)
        m = {k: v for k, v in m.items() if v is not None}
        files[name] = tmp_path / f"{name}.safetensors"
        safetensors.numpy.save_file(tensors, str(files[name]), metadata=m)

    def seq(*children):
        return {"class": "Sequential", "children": [[str(i), c] for i, c in enumerate(children)]}

    lin = {"class": "Linear", "config": {"in_features": 3, "out_features": 4, "bias": True}}
    bn = {"class": "BatchNorm1d", "config": {"num_features": 4}}

    def lin_with(**config):
        return seq({"class": "Linear", "config": {**lin["config"], **config}}, bn)

    for cut in (0, 4, 7, 8, 9, 20, 8 + header_len // 2, 8 + header_len, 8 + header_len + 10,
                len(good) - 1):
        put(f"truncated_{cut}", good[:cut])
    rng = np.random.default_rng(0)
    put("random_bytes", rng.bytes(4096))
    put("random_after_good_length", good[:8] + rng.bytes(len(good) - 8))
    put("header_length_huge", struct.pack("<Q", 2**63) + good[8:])
    put("header_length_max", b"\xff" * 8 + good[8:])
    put("header_length_past_end", struct.pack("<Q", len(good)) + good[8:])
    put("header_garbage", struct.pack("<Q", 12) + b"{garbage!!!}")
    put("header_not_object", raw_file([1, 2]))
    put("header_bad_offsets", raw_file({"w": {"dtype": "F32", "shape": [4],
                                              "data_offsets": [0, 400]}}, b"\0" * 16))
    put("header_huge_shape", raw_file({"w": {"dtype": "F32", "shape": [10**12, 10**12],
                                             "data_offsets": [0, 4]}}, b"\0" * 4))
    put("bfloat16", raw_file({"__metadata__": meta, "0.weight": {
        "dtype": "BF16", "shape": [4, 3], "data_offsets": [0, 24]}}, b"\0" * 24))
    files["missing"] = tmp_path / "missing.safetensors"
    safetensors.numpy.save_file(tensors, str(tmp_path / "plain.safetensors"))
    files["no_metadata"] = tmp_path / "plain.safetensors"
    with_meta("other_metadata", format="someone-else")
    with_meta("newer_version", format_version="99")
    with_meta("no_architecture", architecture=None)
    with_meta("content_checkpoint", content="checkpoint")
    with_meta("architecture_not_json", "{{{")
    with_meta("architecture_not_object", "[]")
    with_meta("architecture_huge_number", '{"class": "Linear", "config": {"in_features": '
              + "9" * 5000 + "}}")
    with_meta("os_system", {"class": "os.system", "config": {"command": f"touch {marker}"}})
    with_meta("import", {"class": "__import__", "config": {"name": "os"}})
    with_meta("eval", seq({"class": "eval", "config": {"source": f"open('{marker}', 'w')"}}))
    with_meta("base_module", {"class": "Module", "config": {}})
    with_meta("unknown_class", seq(lin, {"class": "Conv9d", "config": {}}))
    with_meta("class_not_string", {"class": ["Linear"], "config": {}})
    with_meta("unexpected_kwarg", lin_with(evil=1))
    with_meta("identity_kwargs", seq(lin, bn, {"class": "Identity", "config": {"x": 1}}))
    with_meta("dunder_kwarg", seq({"class": "Linear", "config": {
        **lin["config"], "__class__": "x"}}, bn))
    with_meta("missing_kwarg", seq({"class": "Linear", "config": {"in_features": 3}}, bn))
    with_meta("features_as_string", lin_with(in_features="3"))
    with_meta("features_as_float", lin_with(in_features=3.0))
    with_meta("features_as_bool", lin_with(in_features=True))
    with_meta("features_negative", lin_with(out_features=-4))
    with_meta("bias_as_string", lin_with(bias="no"))
    with_meta("relu_inplace_as_string", seq(lin, bn, {"class": "ReLU",
                                                      "config": {"inplace": "no"}}))
    with_meta("dropout_p_as_string", seq(lin, bn, {"class": "Dropout", "config": {"p": "1"}}))
    with_meta("config_dict_value", seq(lin, bn, {"class": "GELU",
                                                 "config": {"approximate": {"a": 1}}}))
    with_meta("config_not_object", seq({"class": "Linear", "config": [3, 4]}, bn))
    with_meta("leaf_with_children", seq({**lin, "children": []}, bn))
    with_meta("sequential_with_config", {"class": "Sequential", "config": {}})
    with_meta("children_not_pairs", {"class": "Sequential", "children": [lin, bn]})
    for child_name in ("__class__", "training", "a.b", "forward", "", 7):
        with_meta(f"child_named_{child_name}", {"class": "Sequential",
                                                "children": [[child_name, lin], ["1", bn]]})
    with_meta("duplicate_children", {"class": "Sequential", "children": [["0", lin], ["0", bn]]})
    with_meta("modulelist_renamed", {"class": "ModuleList", "children": [["x", lin], ["1", bn]]})
    with_meta("features_10e12", lin_with(out_features=10**12))
    with_meta("in_and_out_10e12", lin_with(in_features=10**12, out_features=10**12))
    with_meta("batchnorm_10e12", seq(lin, {"class": "BatchNorm1d",
                                           "config": {"num_features": 10**12}}))
    with_meta("nesting_10000", nested(10_000))
    with_meta("nesting_70", nested(70))
    with_meta("deep_config_list", seq(lin, bn, {"class": "Identity", "config": {
        "x": json.loads("[" * 200 + "]" * 200)}}))
    with_meta("deep_config_list_10000", '{"class":"Identity","config":{"x":'
              + "[" * 10_000 + "]" * 10_000 + "}}")
    with_meta("many_modules", {"class": "Sequential", "children": [
        [str(i), {"class": "Identity", "config": {}}] for i in range(100_001)]})
    with_meta("architecture_17MB", " " * (17 << 20) + json.dumps(seq(lin, bn)))
    with_meta("weight_misshaped", tensors={**tensors, "0.weight": np.zeros((4, 2), np.float32)})
    with_meta("weight_transposed", tensors={**tensors, "0.weight": np.zeros((3, 4), np.float32)})
    with_meta("weight_missing", tensors={k: v for k, v in tensors.items() if k != "0.weight"})
    with_meta("tensor_extra", tensors={**tensors, "2.weight": np.zeros(4, np.float32)})
    with_meta("weight_float64", tensors={**tensors, "0.weight": np.zeros((4, 3))})
    with_meta("counter_as_float", tensors={**tensors, "1.num_batches_tracked":
                                           np.zeros((), np.float32)})
    # hostile checkpoints for load_checkpoint
    ck_path = tmp_path / "ck.safetensors"
    opt = optim.Adam(model.parameters())
    opt.step()
    fastnn.save_checkpoint(ck_path, model, opt, epoch=1)
    with safetensors.safe_open(str(ck_path), framework="np") as f:
        ck_meta = f.metadata()
        ck_tensors = {k: f.get_tensor(k) for k in f.keys()}

    def checkpoint(name, tensors=ck_tensors, **changes):
        files[name] = tmp_path / f"ck_{name}.safetensors"
        m = {k: v for k, v in {**ck_meta, **changes}.items() if v is not None}
        safetensors.numpy.save_file(tensors, str(files[name]), metadata=m)

    opt_meta = json.loads(ck_meta["optimizer"])
    checkpoint("ck_optimizer_sgd", optimizer=json.dumps({**opt_meta, "class": "SGD"}))
    checkpoint("ck_optimizer_garbage", optimizer="[1, {")
    checkpoint("ck_optimizer_not_object", optimizer="[]")
    checkpoint("ck_no_optimizer", optimizer=None)
    checkpoint("ck_two_groups", optimizer=json.dumps(
        {**opt_meta, "param_groups": opt_meta["param_groups"] * 2}))
    checkpoint("ck_lr_string", optimizer=json.dumps(
        {**opt_meta, "param_groups": [{**opt_meta["param_groups"][0], "lr": "fast"}]}))
    checkpoint("ck_steps_bad", optimizer=json.dumps({**opt_meta, "steps": {"x": 1}}))
    checkpoint("ck_state_misshaped", tensors={
        **ck_tensors, "optimizer.state.0.exp_avg": np.zeros((2, 2), np.float32)})
    checkpoint("ck_state_stray", tensors={**ck_tensors, "optimizer.state.9.x": np.zeros(1)})
    checkpoint("ck_other_tensor", tensors={**ck_tensors, "junk": np.zeros(1)})
    checkpoint("ck_rng_garbage", rng='{"bit_generator": "MT19937"}')
    checkpoint("ck_extra_not_object", extra="[1]")
    checkpoint("ck_model_misshaped", tensors={**ck_tensors,
                                              "model.0.bias": np.zeros(5, np.float32)})
    return files


def test_hostile_files_raise_value_error_only(tmp_path):
    marker = tmp_path / "pwned"
    files = hostile_files(tmp_path, marker)
    cases = [[name, str(path)] for name, path in files.items()]
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.rstrip().endswith("done"), proc.stdout[-2000:] + proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()[:-1]]
    assert len(results) == 3 * len(cases)
    bad = []
    for name, fn, kind, msg in results:
        if fn == "load_state_dict" and kind == "returned":
            continue  # a valid safetensors file has arrays, whatever its metadata says
        wanted = "FileNotFoundError" if name == "missing" else "ValueError"
        if kind != wanted or str(files[name]) not in msg:
            bad.append(f"{name}: {fn} -> {kind}: {msg}")
    assert not bad, "\n".join(bad)
    assert not marker.exists()
    messages = {(name, fn): msg for name, fn, _, msg in results}
    expected = {"os_system": "unknown class 'os.system'", "import": "'__import__'",
                "unexpected_kwarg": "takes no argument(s) 'evil'",
                "identity_kwargs": "takes no argument(s) 'x'",
                "features_10e12": "0.weight is F32 (4, 3), expected F32 (1000000000000, 3)",
                "batchnorm_10e12": "1.weight is F32 (4,), expected F32 (1000000000000,)",
                "nesting_10000": "nests more than", "nesting_70": "containers deep",
                "many_modules": "more than 100000 modules", "bias_as_string": "true or false",
                "relu_inplace_as_string": "does not accept inplace='no'",
                "weight_float64": "0.weight is F64", "no_metadata": "not one fastnn wrote",
                "architecture_17MB": "characters long", "truncated_20": "not a readable"}
    for name, text in expected.items():
        assert text in messages[name, "load"], (name, messages[name, "load"])
    ck_expected = {"ck_optimizer_sgd": "optimizer class 'SGD'; the optimizer given is Adam",
                   "ck_two_groups": "2 param groups", "ck_lr_string": "lr",
                   "ck_no_optimizer": "holds no optimizer state",
                   "ck_model_misshaped": "0.bias is F32 (5,)",
                   "ck_rng_garbage": "PCG64", "ck_state_misshaped": "exp_avg"}
    for name, text in ck_expected.items():
        assert text in messages[name, "load_checkpoint"], (name, messages[name,
                                                                           "load_checkpoint"])


# ---- checkpoints: resumed training equals the uninterrupted run ---------------------

def make_run(opt_name, seed):
    fastnn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 3))
    if opt_name == "adam":
        opt = optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    return model, opt, sched


DATA_RNG = np.random.default_rng(7)
X = DATA_RNG.standard_normal((48, 6)).astype(np.float32)
Y = DATA_RNG.integers(0, 3, 48).astype(np.int64)


def train_epochs(model, opt, sched, epochs):
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = fastnn.random.generator().permutation(len(X))
        for start in range(0, len(X), 12):
            idx = order[start:start + 12]
            opt.zero_grad()
            loss_fn(model(X[idx]), Y[idx])
            model.backward(loss_fn.backward())
            opt.step()
        sched.step()


@pytest.mark.parametrize("opt_name", ["adam", "sgd_momentum"])
def test_resumed_training_is_bitwise_identical(tmp_path, opt_name):
    model, opt, sched = make_run(opt_name, seed=0)
    train_epochs(model, opt, sched, 4)

    model, opt, sched = make_run(opt_name, seed=0)
    train_epochs(model, opt, sched, 2)
    path = tmp_path / "ckpt.safetensors"
    fastnn.save_checkpoint(path, model, opt, sched, epoch=2, history=[0.5, 0.25],
                           note="half way", best=np.float32(0.25))
    fastnn.random.generator().random(100)  # what happens after a save must not matter
    del model, opt, sched

    resumed, opt2, sched2 = make_run(opt_name, seed=123)  # other weights and random stream
    info = fastnn.load_checkpoint(path, resumed, opt2, sched2)
    assert info == {"epoch": 2, "history": [0.5, 0.25], "note": "half way", "best": 0.25}
    assert sched2.last_epoch == 2 and opt2.param_groups[0]["lr"] == sched2.get_last_lr()[0]
    train_epochs(resumed, opt2, sched2, 2)
    rng_after = fastnn.get_rng_state()

    full, opt_full, sched_full = make_run(opt_name, seed=0)
    train_epochs(full, opt_full, sched_full, 4)
    assert_same_state(resumed, full)
    a, b = opt2.state_dict(), opt_full.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k, v in a["state"][i].items():
            np.testing.assert_array_equal(v, b["state"][i][k])
    assert fastnn.get_rng_state() == rng_after  # both runs drew the same random numbers
    assert sched2.state_dict() == sched_full.state_dict()


def test_checkpoint_mismatches_change_nothing(tmp_path):
    model, opt, sched = make_run("adam", seed=0)
    train_epochs(model, opt, sched, 1)
    path = tmp_path / "ckpt.safetensors"
    fastnn.save_checkpoint(path, model, opt, sched, epoch=1)

    wide = nn.Sequential(nn.Linear(6, 17), nn.ReLU(), nn.Dropout(0.25), nn.Linear(17, 3))
    with pytest.raises(ValueError, match=r"0\.weight is F32 \(16, 6\), expected F32 \(17, 6\)"):
        fastnn.load_checkpoint(path, wide)
    with pytest.raises(ValueError, match="missing tensor"):
        fastnn.load_checkpoint(path, nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(),
                                                   nn.Linear(16, 3), nn.Linear(3, 3)))
    fresh, _, _ = make_run("adam", seed=5)
    before = fresh.state_dict()
    sgd = optim.SGD(fresh.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer class 'Adam'; the optimizer given is SGD"):
        fastnn.load_checkpoint(path, fresh, sgd)
    params = list(fresh.parameters())
    two_groups = optim.Adam([{"params": params[:2]}, {"params": params[2:]}])
    with pytest.raises(ValueError, match="1 param groups, this optimizer has 2"):
        fastnn.load_checkpoint(path, fresh, two_groups)
    with pytest.raises(ValueError, match="ExponentialLR"):
        adam = optim.Adam(fresh.parameters())
        fastnn.load_checkpoint(path, fresh, adam, lr_scheduler.ExponentialLR(adam, 0.9))
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # the failed loads were rolled back
    assert two_groups.state_dict()["state"] == {}
    info = fastnn.load_checkpoint(path, fresh)  # the model alone is fine
    assert info == {"epoch": 1}
    assert_same_state(fresh, model)
    with pytest.raises(TypeError, match=r"the extra keyword arguments\['bad'\]"):
        fastnn.save_checkpoint(tmp_path / "x.safetensors", model, bad={1, 2})
    with pytest.raises(TypeError, match="key 1 that is not a string"):
        fastnn.save_checkpoint(tmp_path / "x.safetensors", model, bad={1: 2})
    assert not (tmp_path / "x.safetensors").exists()


OPTIMIZERS = {
    "adam_amsgrad": lambda ps: optim.Adam(ps, lr=1e-2, amsgrad=True),
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda ps: optim.RMSprop(ps, lr=1e-2, momentum=0.5, centered=True),
    "adagrad_accumulator": lambda ps: optim.Adagrad(ps, lr=1e-2, initial_accumulator_value=0.1),
    "radam_decoupled": lambda ps: optim.RAdam(ps, lr=1e-2, weight_decay=0.1,
                                              decoupled_weight_decay=True),
    # per-parameter scalars (mu_product; eta and mu), which the frozen weight makes differ
    "nadam_decoupled": lambda ps: optim.NAdam(ps, lr=1e-2, weight_decay=0.1,
                                              decoupled_weight_decay=True),
    "asgd_averaging": lambda ps: optim.ASGD(ps, lr=1e-2, t0=1),
    "rprop": lambda ps: optim.Rprop(ps, lr=1e-3),
}


def stepped_checkpoint(tmp_path, opt_name):
    """(model, a fresh optimizer of that kind, checkpoint path, its metadata and tensors)
    after two steps in which the last layer's weight was frozen for one."""
    model, _, _ = make_run("adam", seed=0)
    opt = OPTIMIZERS[opt_name](model.parameters())
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # adds initial_lr to groups
    train_epochs(model, opt, sched, 1)
    model[3].weight.requires_grad = False  # per-parameter step counts from here on
    train_epochs(model, opt, sched, 1)
    model[3].weight.requires_grad = True
    path = tmp_path / f"{opt_name}.safetensors"
    fastnn.save_checkpoint(path, model, opt, sched, epoch=2)
    with safetensors.safe_open(str(path), framework="np") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    return model, opt, path, meta, tensors


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_checkpoint_optimizer_state_is_checked_at_load(tmp_path, opt_name):
    """Everything load_checkpoint gives the optimizer is checked before anything is
    restored, as its constructor checks options: no renamed or missing state arrays
    (a zero exp_avg would be used silently), only float32 and finite ones, whole step
    counts >= 1, and options the update kernels take (not only at the first step)."""
    model, trained, path, meta, tensors = stepped_checkpoint(tmp_path, opt_name)
    fresh = OPTIMIZERS[opt_name](model.parameters())
    lr_scheduler.StepLR(fresh, step_size=1, gamma=0.5)
    fastnn.load_checkpoint(path, model, fresh)  # the real checkpoint loads
    steps = {k: v for k, v in fresh.state_dict()["state"].items()}
    assert {k: v.get("step") for k, v in steps.items()} == \
        {k: v.get("step") for k, v in trained.state_dict()["state"].items()}
    if OPTIMIZERS[opt_name](model.parameters()).keeps_step:  # torch's SGD keeps none
        assert len({v["step"] for v in steps.values()}) == 2  # the frozen weight has its own
    for index, entry in trained.state_dict()["state"].items():
        assert list(steps[index]) == list(entry)
        for key, value in entry.items():
            np.testing.assert_array_equal(steps[index][key], value, err_msg=f"{index}.{key}")

    opt_meta = json.loads(meta["optimizer"])
    first = sorted(k for k in tensors if k.startswith("optimizer.state.0."))[0]
    name = first.rsplit(".", 1)[1]
    group = opt_meta["param_groups"][0]

    def with_group(**changes):
        return {"optimizer": json.dumps({**opt_meta, "param_groups": [{**group, **changes}]})}

    def with_tensor(key, value):
        return {**tensors, key: value}

    bad_options = {"lr": [1e300, 10**400, float("nan"), -1.0, "fast", None, [0.1]],
                   "weight_decay": [float("inf"), -0.5]}
    if opt_name == "adam_amsgrad":
        bad_options.update(betas=[[0.9, 1.5], [0.9, 1 - 1e-9], [0.9], [0.9, "x"], 0.9],
                           eps=[1e39], amsgrad=["yes", 1, None])
    elif opt_name == "sgd_momentum":
        bad_options.update(momentum=[-0.9, 0.0, 1e300], nesterov=["no", 0])
    elif opt_name == "rmsprop_centered":
        bad_options.update(alpha=[1.5, -0.1], centered=[0, "yes"], momentum=[-1.0])
    elif opt_name == "adagrad_accumulator":
        bad_options.update(lr_decay=[-1.0], initial_accumulator_value=[-0.5], maximize=["no"])
    elif opt_name == "asgd_averaging":
        bad_options.update(t0=[float("nan")], lambd=["x"], alpha=[None])
    elif opt_name == "rprop":  # no weight decay
        del bad_options["weight_decay"]
        bad_options.update(etas=[[0.5, 1.0], [0.0, 1.2], [0.5]], step_sizes=[[1.0, 0.5], [-1, 50]])
    else:
        bad_options.update(betas=[[0.9, 1.5]], decoupled_weight_decay=["yes"],
                           differentiable=[True])
        if opt_name == "nadam_decoupled":
            bad_options.update(momentum_decay=[-1.0])
    cases = {
        "renamed_state": ({name + "x": tensors[first], **{k: v for k, v in tensors.items()
                                                        if k != first}}, {}, name + "x"),
        "missing_state": ({k: v for k, v in tensors.items() if k != first}, {}, first),
        "state_float64_1e300": (with_tensor(first, np.full(tensors[first].shape, 1e300)),
                                {}, first),
        "state_int32": (with_tensor(first, tensors[first].astype(np.int32)), {}, first),
        "state_nan": (with_tensor(first, np.full_like(tensors[first], np.nan)), {}, first),
        "state_inf": (with_tensor(first, np.full_like(tensors[first], -np.inf)), {}, first),
        "state_misshaped": (with_tensor(first, tensors[first].reshape(-1)), {}, first),
        "state_of_unstepped_index": (with_tensor("optimizer.state.99." + name,
                                                 tensors[first]), {}, "optimizer.state.99"),
        "step_negative": (tensors, {"optimizer": json.dumps(
            {**opt_meta, "steps": {**opt_meta["steps"], "0": -5}})}, "steps['0']"),
        "step_fraction": (tensors, {"optimizer": json.dumps(
            {**opt_meta, "steps": {**opt_meta["steps"], "0": 2.5}})}, "steps['0']"),
        "step_huge": (tensors, {"optimizer": json.dumps(
            {**opt_meta, "steps": {**opt_meta["steps"], "0": 1e300}})}, "steps['0']"),
        "step_of_no_parameter": (tensors, {"optimizer": json.dumps(
            {**opt_meta, "steps": {**opt_meta["steps"], "99": 1}})}, "steps['99']"),
        "params_twice": (tensors, with_group(params=[0, 0, 1, 2]), "param_groups"),
        "option_missing": (tensors, {"optimizer": json.dumps({**opt_meta, "param_groups": [
            {k: v for k, v in group.items() if k != "lr"}]})}, "'lr'"),
    }
    for option, values in bad_options.items():
        for i, value in enumerate(values):
            cases[f"{option}_{i}"] = (tensors, with_group(**{option: value}), option)
    if opt_name in ("nadam_decoupled", "asgd_averaging"):
        scalar = "optimizer.state.0." + ("mu_product" if opt_name.startswith("nadam") else "eta")
        cases["scalar_misshaped"] = (with_tensor(scalar, tensors[scalar].reshape(1)), {}, scalar)
        cases["scalar_nan"] = (with_tensor(scalar, np.array(np.nan, np.float32)), {}, scalar)
        cases["scalar_missing"] = ({k: v for k, v in tensors.items() if k != scalar}, {}, scalar)
    if opt_name != "sgd_momentum":
        cases["initial_lr_nan"] = (tensors, with_group(initial_lr=float("nan")), "initial_lr")
    before = fresh.state_dict()
    for case, (case_tensors, changes, key) in cases.items():
        target = tmp_path / f"{case}.safetensors"
        safetensors.numpy.save_file(case_tensors, str(target), metadata={**meta, **changes})
        with pytest.raises(ValueError) as err:
            fastnn.load_checkpoint(target, model, fresh)
        assert str(target) in str(err.value) and key in str(err.value), (case, err.value)
        after = fresh.state_dict()  # nothing was restored
        assert after["param_groups"] == before["param_groups"], case
        for index, entry in before["state"].items():
            for k, v in entry.items():
                np.testing.assert_array_equal(after["state"][index][k], v, err_msg=case)
    # the constructors refuse the same options at once, not at the first step()
    with pytest.raises(ValueError, match="float32"):
        optim.Adam(model.parameters(), lr=1e300)
    with pytest.raises(ValueError, match=r"betas\[1\].*float32"):
        optim.Adam(model.parameters(), betas=(0.9, 1 - 1e-9))


def test_failed_checkpoint_load_leaves_param_groups_as_they_were(tmp_path):
    """A checkpoint whose param group carries an extra option (a flipped byte in a key)
    and whose scheduler state fails to load: the optimizer's groups keep exactly the
    keys and values they had. Found by tools/hostile_files.py."""
    model, opt, sched = make_run("sgd", seed=0)
    train_epochs(model, opt, sched, 1)
    path = tmp_path / "ckpt.safetensors"
    fastnn.save_checkpoint(path, model, opt, sched)
    with safetensors.safe_open(str(path), framework="np") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    opt_meta, sched_meta = json.loads(meta["optimizer"]), json.loads(meta["scheduler"])
    opt_meta["param_groups"][0]["initiad_lr"] = 0.5
    sched_meta["state"]["gamma"] = -1.0
    safetensors.numpy.save_file(tensors, str(path), metadata={
        **meta, "optimizer": json.dumps(opt_meta), "scheduler": json.dumps(sched_meta)})
    model, opt, sched = make_run("sgd", seed=0)
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match="gamma"):
        fastnn.load_checkpoint(path, model, opt, sched)
    assert [dict(g) for g in opt.param_groups] == before


def test_checkpoint_scheduler_past_its_schedule_is_refused(tmp_path):
    """A OneCycleLR state stepped past total_steps (which stepping never reaches)
    failed only at the next scheduler.step(); found by tools/hostile_files.py."""
    def run():
        model, _, _ = make_run("adam", seed=0)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=4)
    model, opt, sched = run()
    for _ in range(4):
        sched.step()  # the schedule's end: loads, and a further step() raises as it would
    path = tmp_path / "ckpt.safetensors"
    fastnn.save_checkpoint(path, model, opt, sched)
    fastnn.load_checkpoint(path, *run())
    with safetensors.safe_open(str(path), framework="np") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    saved = json.loads(meta["scheduler"])
    saved["state"]["last_epoch"] = 10**6
    safetensors.numpy.save_file(tensors, str(path), metadata={**meta,
                                                             "scheduler": json.dumps(saved)})
    with pytest.raises(ValueError, match=r"last_epoch'\] must be at most total_steps=4") as err:
        fastnn.load_checkpoint(path, *run())
    assert str(path) in str(err.value)


# ---- PyTorch, through files ---------------------------------------------------------

def test_torch_weights_through_files(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch

    fastnn.manual_seed(0)
    ours = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 3))
    train_one_step(ours, np.random.default_rng(0).standard_normal((16, 5)).astype(np.float32))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(),
                                 torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)

    fastnn.save(ours, tmp_path / "ours.safetensors")  # fastnn file -> torch
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in
                            fastnn.load_state_dict(tmp_path / "ours.safetensors").items()})
    theirs.eval(), ours.eval()
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(x)).numpy(), ours(x),
                                   rtol=1e-5, atol=1e-5)

    with torch.no_grad():  # torch file -> fastnn
        for p in theirs.parameters():
            p.mul_(1.5)
        theirs[2].running_mean.add_(0.25)
    safetensors.torch.save_file(theirs.state_dict(), str(tmp_path / "theirs.safetensors"))
    ours.load_state_dict(fastnn.load_state_dict(tmp_path / "theirs.safetensors"))
    with torch.no_grad():
        np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)
    assert ours.state_dict()["2.num_batches_tracked"].dtype == np.int64
