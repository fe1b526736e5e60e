"""fastnn.optim: optimizers whose update is one C kernel per parameter group,
and learning-rate schedulers (lr_scheduler), with torch.optim's names.

    opt = optim.AdamW(model.parameters(), lr=1e-3)
    opt.zero_grad(); ...; opt.step()
"""
from fastnn.optim import lr_scheduler
from fastnn.optim.adadelta import Adadelta
from fastnn.optim.adagrad import Adagrad
from fastnn.optim.adam import Adam, AdamW
from fastnn.optim.adamax import Adamax
from fastnn.optim.asgd import ASGD
from fastnn.optim.nadam import NAdam
from fastnn.optim.optimizer import Optimizer
from fastnn.optim.radam import RAdam
from fastnn.optim.rmsprop import RMSprop
from fastnn.optim.rprop import Rprop
from fastnn.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "RAdam",
           "NAdam", "Adadelta", "ASGD", "Rprop", "lr_scheduler"]
