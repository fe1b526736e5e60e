"""The NumPy LSTM baseline of the RNN benchmark computes what fastnn computes."""
import numpy as np

from fastnn import nn
from fastnn.baselines.numpy_lstm import NumpyLSTM


def test_gradients_match_fastnn():
    rng = np.random.default_rng(0)
    net = NumpyLSTM(5, 7, 3, seed=1)
    model = nn.Sequential(nn.LSTM(5, 7), nn.RNNOutput("last"), nn.Linear(7, 3))
    model.load_state_dict(net.state_dict())
    x = rng.standard_normal((6, 4, 5)).astype(np.float32)
    y = rng.integers(0, 3, 4)
    loss, grads = net.gradients(x, y)
    loss_fn = nn.CrossEntropyLoss()
    assert abs(loss_fn(model(x), y) - loss) < 1e-5
    model.backward(loss_fn.backward())
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[k], rtol=1e-4, atol=1e-6, err_msg=k)
    before = net.train_step(x, y)
    assert net.train_step(x, y) < before
