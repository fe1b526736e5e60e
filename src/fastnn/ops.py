"""fastnn.ops: functional kernels on NumPy arrays.

Inputs are any array-like of real numbers; they are converted to aligned
float32 C-contiguous arrays (a copy only when they are not already: a view at
an odd byte offset, flags.aligned False, is copied too). Results are new
float32 arrays, or are written into `out=`, which must be a writeable,
aligned, C-contiguous float32 ndarray of the result's shape (else TypeError
for the dtype, ValueError for shape, layout or alignment). Every output is
computed from the inputs as they were on entry: an input that overlaps an
output (out=, preactivation=, grad_weight=, grad_bias=) is copied first,
except that the element-wise ops, softmax, linear_bias_backward and
cross_entropy take out= exactly an input (in place); two outputs of one call must not overlap
(ValueError). Backward functions return the gradient with respect to the
forward input; they overwrite `out`.

Activations:  relu, leaky_relu, sigmoid, tanh, gelu, silu, elu, selu, celu,
              softplus, mish, log_sigmoid, softsign, tanhshrink, hardtanh, relu6,
              hardsigmoid, hardswish, threshold, softshrink, hardshrink, glu (halves
              along dim), prelu (per-channel weight; prelu_backward also adds the
              weight gradient) and *_backward
Softmax:      softmax, log_softmax, softmin (softmax of -x) and their *_backward
Losses:       cross_entropy (class indices or probabilities, weight, ignore_index,
              label_smoothing), nll_loss, mse_loss, l1_loss, smooth_l1_loss,
              huber_loss, binary_cross_entropy, binary_cross_entropy_with_logits
              (weight, pos_weight), soft_margin_loss, multilabel_soft_margin_loss,
              kl_div, poisson_nll_loss, gaussian_nll_loss (also grad_var),
              margin_ranking_loss and cosine_embedding_loss (grads of both inputs):
              torch.nn.functional's names and arguments; each returns (loss, grad...)
              with loss a float for reduction="mean"/"sum" and the per-element
              array for "none" (the grads are then each element's own)
GEMM:         matmul
Linear:       linear (fused bias + activation, optional pre-activation output),
              linear_backward (activation backward, dW, db and dx in one call,
              accumulating), linear_bias_backward (linear_bias_grad: its deprecated
              old name); ACTIVATIONS, the activation names linear fuses (from C)
Normalization: batch_norm, batch_norm_backward, group_norm, group_norm_backward
              (return_stats=True gives the mean / invstd backward takes);
              layer_norm, add_layer_norm (residual add + layer_norm in one pass),
              layer_norm_backward, rms_norm, rms_norm_backward over the trailing
              normalized_shape axes (mean / rstd per row; backward adds into
              grad_input when given)
Vector math:  exp, expm1, log, erf (the approximations the kernels are built on)
Optimizer updates, one torch.optim step in place on a parameter and its state:
              sgd_step, adam_step, rmsprop_step, adagrad_step, adamax_step, radam_step,
              nadam_step, adadelta_step, asgd_step, rprop_step; every array must
              already be an aligned float32 C-contiguous ndarray (nothing is
              converted or copied)
Convolution:  conv1d, conv2d, conv_transpose1d, conv_transpose2d and their *_backward
              (returning (grad_input, grad_weight, grad_bias), each skippable)
Pooling:      max_pool{1,2}d, avg_pool{1,2}d, adaptive_{avg,max}_pool{1,2}d and *_backward
              (NCL / NCHW or unbatched; torch's argument names; max returns (out, indices)
              with return_indices, int64 offsets into each (n, c) plane)
Recurrent:    rnn, rnn_backward: one layer and direction of an RNN (tanh / relu), LSTM
              or GRU over a whole time-major sequence per call (lengths= for
              variable-length batches); the workspace rnn returns feeds rnn_backward
Embedding:    embedding, embedding_backward (int64 indices, padding_idx,
              scale_grad_by_freq)
Memory:       empty(shape): an uninitialised float32 array, large ones from the block
              cache behind every kernel's fresh outputs (no page faults on reuse)
Attention:    scaled_dot_product_attention (torch's arguments; causal skipping,
              masks, dropout; strided views read and written in place) and
              scaled_dot_product_attention_backward (from its return_context)
"""
from fastnn._C import (
    ACTIVATIONS,
    linear,
    linear_backward,
    linear_bias_backward,
    linear_bias_grad,
    matmul,
    erf,
    exp,
    gelu,
    gelu_backward,
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    silu,
    silu_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
    sgd_step,
    adam_step,
    rmsprop_step,
    adagrad_step,
    adamax_step,
    radam_step,
    nadam_step,
    adadelta_step,
    asgd_step,
    rprop_step,
)
from fastnn._C import batch_norm, batch_norm_backward, group_norm, group_norm_backward
from fastnn._C import (add_layer_norm, layer_norm, layer_norm_backward, rms_norm,
                       rms_norm_backward)

from fastnn._C import (
    conv1d,
    conv1d_backward,
    conv2d,
    conv2d_backward,
    conv_transpose1d,
    conv_transpose1d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
)
from fastnn._C import (
    max_pool1d,
    max_pool2d,
    max_pool1d_backward,
    max_pool2d_backward,
    avg_pool1d,
    avg_pool2d,
    avg_pool1d_backward,
    avg_pool2d_backward,
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool1d_backward,
    adaptive_max_pool2d_backward,
)

from fastnn._C import (  # the activations of issue 14
    elu,
    elu_backward,
    selu,
    selu_backward,
    celu,
    celu_backward,
    softplus,
    softplus_backward,
    mish,
    mish_backward,
    log_sigmoid,
    log_sigmoid_backward,
    softsign,
    softsign_backward,
    tanhshrink,
    tanhshrink_backward,
    hardtanh,
    hardtanh_backward,
    relu6,
    relu6_backward,
    hardsigmoid,
    hardsigmoid_backward,
    hardswish,
    hardswish_backward,
    threshold,
    threshold_backward,
    softshrink,
    softshrink_backward,
    hardshrink,
    hardshrink_backward,
    glu,
    glu_backward,
    prelu,
    prelu_backward,
    softmin,
    softmin_backward,
    expm1,
    log,
)
from fastnn._C import rnn, rnn_backward, embedding, embedding_backward
from fastnn._C import (
    cross_entropy,
    nll_loss,
    mse_loss,
    l1_loss,
    smooth_l1_loss,
    huber_loss,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    soft_margin_loss,
    multilabel_soft_margin_loss,
    kl_div,
    poisson_nll_loss,
    gaussian_nll_loss,
    margin_ranking_loss,
    cosine_embedding_loss,
)
from fastnn._C import scaled_dot_product_attention, scaled_dot_product_attention_backward
from fastnn._C import new_float32_array as empty

__all__ = [
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward", "gelu", "gelu_backward", "silu", "silu_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "exp", "erf",
    "sgd_step", "adam_step", "rmsprop_step", "adagrad_step", "adamax_step", "radam_step",
    "nadam_step", "adadelta_step", "asgd_step", "rprop_step",
    "matmul", "linear", "linear_backward",
    "linear_bias_backward", "linear_bias_grad", "ACTIVATIONS",
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "conv1d_backward",
    "conv2d_backward", "conv_transpose1d_backward", "conv_transpose2d_backward",
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
    "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "soft_margin_loss",
    "multilabel_soft_margin_loss", "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "margin_ranking_loss", "cosine_embedding_loss",
]
__all__ += ["elu", "elu_backward", "selu", "selu_backward", "celu", "celu_backward", "softplus", "softplus_backward", "mish", "mish_backward", "log_sigmoid", "log_sigmoid_backward", "softsign", "softsign_backward", "tanhshrink", "tanhshrink_backward", "hardtanh", "hardtanh_backward", "relu6", "relu6_backward", "hardsigmoid", "hardsigmoid_backward", "hardswish", "hardswish_backward", "threshold", "threshold_backward", "softshrink", "softshrink_backward", "hardshrink", "hardshrink_backward", "glu", "glu_backward", "prelu", "prelu_backward", "softmin", "softmin_backward", "expm1", "log"]
__all__ += ["batch_norm", "batch_norm_backward", "group_norm", "group_norm_backward"]
__all__ += ["scaled_dot_product_attention", "scaled_dot_product_attention_backward", "empty"]
__all__ += ["layer_norm", "add_layer_norm", "layer_norm_backward", "rms_norm",
            "rms_norm_backward"]
__all__ += [
    "max_pool1d",
    "max_pool2d",
    "max_pool1d_backward",
    "max_pool2d_backward",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool1d_backward",
    "avg_pool2d_backward",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d_backward",
]
__all__ += ["rnn", "rnn_backward", "embedding", "embedding_backward"]
