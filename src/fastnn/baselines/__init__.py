"""Reference implementations fastnn is measured against, part of the product
because ``fastnn demo`` runs them: numpy_mlp.NumpyMLP, an MLP trained with
hand-written NumPy backprop (also the NumPy side of ``fastnn bench --suite mlp``).
They import only NumPy."""
