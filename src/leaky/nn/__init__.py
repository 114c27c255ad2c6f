"""Drop-in ``torch.nn`` activation modules and the factory that builds any row of the table."""

from leaky.nn.batch_norm import BatchNormLeakyReLU1d, BatchNormLeakyReLU2d, BatchNormLeakyReLU3d
from leaky.nn.factory import ActivationFunction, get_activation
from leaky.nn.modules import BiasLeakyReLU, LeakyReLU, PReLU, RReLU

__all__ = [
    "ActivationFunction",
    "BatchNormLeakyReLU1d",
    "BatchNormLeakyReLU2d",
    "BatchNormLeakyReLU3d",
    "BiasLeakyReLU",
    "LeakyReLU",
    "PReLU",
    "RReLU",
    "get_activation",
]
