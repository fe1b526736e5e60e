"""fastnn.nn: layers, containers and losses with PyTorch's names and layouts.

    from fastnn import nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(model(x), y)          # forward keeps what backward needs
    model.backward(loss_fn.backward())   # parameter gradients accumulate in p.grad

Files: module.py (Module), parameter.py (Parameter, flat buffers), linear.py,
activation.py, dropout.py, batchnorm.py, normalization.py (GroupNorm, LayerNorm,
RMSNorm), flatten.py, pooling.py (max / average / adaptive pools), padding.py
(ZeroPad2d, ConstantPad2d), upsampling.py (Upsample), containers.py (Sequential,
Residual, Concat, ModuleList), loss.py, grad_mode.py (no_grad), init.py
(initialisers), utils.py (gradient clipping, fuse_conv_bn_eval), conv.py (Conv1d/2d,
ConvTranspose1d/2d), rnn.py (RNN, LSTM, GRU, their cells, RNNOutput), embedding.py
(Embedding), attention.py (MultiheadAttention), transformer.py (Transformer encoder /
decoder layers and stacks).
"""
from fastnn.nn import init, utils
from fastnn.nn.attention import MultiheadAttention
from fastnn.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                   TransformerEncoder, TransformerEncoderLayer,
                                   generate_square_subsequent_mask)
from fastnn.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from fastnn.nn.activation import (CELU, ELU, SELU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh,
                                  LogSigmoid, Mish, ReLU6, Softplus, Softshrink, Softsign,
                                  Tanhshrink, Threshold, Softmin, GLU, PReLU)
from fastnn.nn.batchnorm import BatchNorm1d, BatchNorm2d
from fastnn.nn.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from fastnn.nn.containers import Concat, ModuleList, Residual, Sequential
from fastnn.nn.embedding import Embedding
from fastnn.nn.dropout import Dropout, Dropout1d, Dropout2d
from fastnn.nn.flatten import Flatten
from fastnn.nn.linear import Identity, Linear
from fastnn.nn.loss import (BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss,
                            GaussianNLLLoss, HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss,
                            MSELoss, MultiLabelSoftMarginLoss, NLLLoss, PoissonNLLLoss,
                            SmoothL1Loss, SoftMarginLoss)
from fastnn.nn.module import Module
from fastnn.nn.normalization import GroupNorm, LayerNorm, RMSNorm
from fastnn.nn.parameter import Parameter
from fastnn.nn.padding import ConstantPad2d, ZeroPad2d
from fastnn.nn.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d,
                               AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d)
from fastnn.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, RNNOutput
from fastnn.nn.upsampling import Upsample

__all__ = ["Module", "Parameter", "Linear", "Identity", "Flatten", "ReLU", "LeakyReLU",
           "Sigmoid", "Tanh", "GELU", "SiLU", "Softmax", "LogSoftmax", "ELU", "SELU", "CELU", "Softplus", "Mish",
           "Hardswish", "Hardsigmoid", "ReLU6", "Hardtanh", "Softsign", "LogSigmoid",
           "Tanhshrink", "Softshrink", "Hardshrink", "Threshold", "Softmin", "GLU", "PReLU", "Dropout", "BatchNorm1d",
           "Sequential", "Residual", "Concat", "ModuleList", "init", "utils"]
__all__ += ["L1Loss", "MSELoss", "HuberLoss", "SmoothL1Loss", "SoftMarginLoss", "BCELoss", "BCEWithLogitsLoss",
            "KLDivLoss", "PoissonNLLLoss", "GaussianNLLLoss", "CrossEntropyLoss", "NLLLoss", "MultiLabelSoftMarginLoss", "MarginRankingLoss", "CosineEmbeddingLoss"]
__all__ += ["BatchNorm2d", "GroupNorm", "LayerNorm", "RMSNorm", "Dropout1d", "Dropout2d"]
__all__ += ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]
__all__ += ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
            "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "ZeroPad2d",
            "ConstantPad2d", "Upsample"]
__all__ += ["MultiheadAttention", "Transformer", "TransformerEncoderLayer", "TransformerEncoder",
            "TransformerDecoderLayer", "TransformerDecoder", "generate_square_subsequent_mask"]
__all__ += ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RNNOutput", "Embedding"]
