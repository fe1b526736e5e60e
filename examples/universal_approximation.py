"""Universal approximation: one hidden tanh layer fits sin(x) on [-pi, pi].

    python examples/universal_approximation.py

Trains Linear(1, 32) -> Tanh -> Linear(32, 1) with Adam on 1,024 evenly spaced
points and prints the final mean squared error (the goal: below 1e-3).
"""
import numpy as np

import fastnn
from fastnn import nn, optim


def main(epochs: int = 300, verbose: int = 0) -> float:
    fastnn.manual_seed(0)
    X = np.linspace(-np.pi, np.pi, 1024, dtype=np.float32).reshape(-1, 1)
    y = np.sin(X)
    model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
    model.fit(X, y, loss="mse", optimizer=optim.Adam(model.parameters(), lr=1e-2),
              epochs=epochs, batch_size=64, metrics=(), verbose=verbose)
    mse = model.evaluate(X, y, metrics=())["loss"]
    print(f"sin(x) on [-pi, pi] with 32 tanh units: MSE {mse:.2e} (goal < 1e-3)")
    return mse


if __name__ == "__main__":
    main(verbose=2)
