"""A small TransformerEncoder classifier: scikit-learn's 8x8 digits read as sequences
of 8 rows of 8 pixels.

    python examples/encoder_classifier.py       # about 20 seconds on 2 cores

Each row is projected to d=32 (Linear) and given a learned position (Embedding);
two pre-LN TransformerEncoderLayers (4 heads, GELU) attend across the rows; the mean
over rows feeds Linear(32, 10). The model is a Module whose backward calls its
parts' backwards in reverse: fastnn has no autograd tape, and this is the whole of
what a custom model writes. Adam (lr 2e-3), batch 32, 80/20 split; it prints the
test accuracy (about 97%).
"""
import numpy as np

import fastnn
from fastnn import nn, optim


class RowTransformer(nn.Module):
    def __init__(self, rows: int = 8, pixels: int = 8, d: int = 32, classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(pixels, d)
        self.position = nn.Embedding(rows, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(d))
        self.head = nn.Linear(d, classes)
        self.rows = rows

    def forward(self, x):                       # x (N, rows, pixels)
        h = self.embed(x) + self.position(np.arange(self.rows))
        return self.head(self.encoder(h).mean(axis=1))

    def backward(self, grad_out, input_grad: bool = False):
        g = self.head.backward(grad_out)       # (N, d)
        g = np.repeat(g[:, None, :] / self.rows, self.rows, axis=1)
        g = self.encoder.backward(g)
        self.position.backward(g.sum(axis=0))
        return self.embed.backward(g, input_grad)


def main(epochs: int = 30, seed: int = 0, verbose: bool = True) -> float:
    from sklearn.datasets import load_digits
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(X))
    test, train = order[:len(X) // 5], order[len(X) // 5:]
    fastnn.manual_seed(seed)
    model = RowTransformer()
    opt = optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        for batch in np.array_split(rng.permutation(train), len(train) // 32):
            loss = loss_fn(model(X[batch]), y[batch])
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
    model.eval()
    with fastnn.no_grad():
        accuracy = float((model(X[test]).argmax(axis=1) == y[test]).mean())
    if verbose:
        print(f"test accuracy {accuracy:.2%} after {epochs} epochs (last batch loss {loss:.3f})")
    return accuracy


if __name__ == "__main__":
    main()
