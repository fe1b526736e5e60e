"""A deep MLP with BatchNorm: 10 Linear layers learn the two-spirals problem.

    python examples/deep_mlp.py

Two interleaved spirals (2,000 points, 3 turns) are hard for a shallow net;
here Linear -> BatchNorm1d -> ReLU blocks (9 hidden layers of 64 units and
an output layer) train with AdamW and a cosine learning-rate schedule, and
the script prints the accuracy on held-out points.
"""
import numpy as np

import fastnn
from fastnn import nn, optim
from fastnn.callbacks import LearningRateScheduler


def spirals(n: int, seed: int):
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * 2 * np.pi
    label = rng.integers(0, 2, n)
    r = t / (3 * 2 * np.pi)
    angle = t + np.pi * label
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    X += rng.normal(0, 0.01, X.shape)
    return X.astype(np.float32), label


def deep_mlp(depth: int = 10, width: int = 64) -> nn.Sequential:
    layers = [nn.Linear(2, width), nn.BatchNorm1d(width), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    layers.append(nn.Linear(width, 2))
    return nn.Sequential(*layers)


def main(epochs: int = 60, verbose: int = 0) -> float:
    fastnn.manual_seed(0)
    X, y = spirals(2000, seed=0)
    Xt, yt = spirals(1000, seed=1)
    model = deep_mlp()
    opt = optim.AdamW(model.parameters(), lr=3e-3)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.fit(X, y, optimizer=opt, epochs=epochs, batch_size=64,
              callbacks=[LearningRateScheduler(sched)], verbose=verbose)
    acc = model.evaluate(Xt, yt)["accuracy"]
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    print(f"two spirals, {n_linear} Linear layers with BatchNorm: test accuracy {acc:.3f}")
    return acc


if __name__ == "__main__":
    main(verbose=2)
