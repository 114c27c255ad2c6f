"""leaky: rectified activations for PyTorch, Leaky ReLU first.

Exact, memory-light activations (:mod:`leaky.functional`, :mod:`leaky.nn`), one table of
facts about them (:mod:`leaky.spec`), a float64 reference (:mod:`leaky.reference`) and
activation-aware initialisation (:mod:`leaky.init`), and diagnosis of dead units and
gradient flow in any model (:mod:`leaky.monitor`, :mod:`leaky.convert`).

Examples:
    >>> import torch, leaky
    >>> leaky.nn.LeakyReLU(0.1)(torch.tensor([-1.0, 2.0]))
    tensor([-0.1000,  2.0000])

"""

from importlib.metadata import PackageNotFoundError, version

from leaky import convert, export, functional, fuse, init, monitor, nn, reference, spec
from leaky.nn import get_activation
from leaky.spec import SPECS, get_spec

try:
    __version__ = version("leaky")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "SPECS",
    "__version__",
    "convert",
    "export",
    "functional",
    "fuse",
    "get_activation",
    "get_spec",
    "init",
    "monitor",
    "nn",
    "reference",
    "spec",
]
