"""Drop-in ``torch.nn`` activation modules and the factory that builds any row of the table."""

from leaky.nn.factory import ActivationFunction, get_activation
from leaky.nn.modules import BiasLeakyReLU, LeakyReLU, PReLU, RReLU

__all__ = ["ActivationFunction", "BiasLeakyReLU", "LeakyReLU", "PReLU", "RReLU", "get_activation"]
