"""Reference implementations fastnn is measured against, part of the product
because ``fastnn demo`` runs them: numpy_mlp.NumpyMLP, an MLP trained with
hand-written NumPy backprop (also the NumPy side of ``fastnn bench --suite mlp``).
numpy_cnn.NumpyCNN, the im2col CNN of ``fastnn bench --suite cnn``, and
numpy_lstm.NumpyLSTM, the BPTT LSTM of ``fastnn bench --suite rnn``.
They import only NumPy."""
from typing import Dict

import numpy as np


class ParamDict:
    """state_dict / load_state_dict over a `params` dict of float32 arrays keyed as
    the equivalent torch / fastnn Sequential ("0.weight", ...)."""

    params: Dict[str, np.ndarray]

    def state_dict(self) -> Dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        for k, v in self.params.items():
            v[...] = np.asarray(state[k], np.float32).reshape(v.shape)
