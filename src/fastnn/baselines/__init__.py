"""Reference implementations fastnn is measured against, part of the product
because ``fastnn demo`` runs them: numpy_mlp.NumpyMLP, an MLP trained with
hand-written NumPy backprop (also the NumPy side of ``fastnn bench --suite mlp``).
and numpy_cnn.NumpyCNN, the im2col CNN of ``fastnn bench --suite cnn``.
They import only NumPy."""
