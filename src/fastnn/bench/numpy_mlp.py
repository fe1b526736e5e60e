"""Moved to fastnn.baselines.numpy_mlp (the demo uses it, and the product does not
import the bench tool); this name keeps old imports working."""
from fastnn.baselines.numpy_mlp import NumpyMLP  # noqa: F401
