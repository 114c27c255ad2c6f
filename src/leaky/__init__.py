"""leaky: rectified activations for PyTorch, Leaky ReLU first.

Exact, memory-light activations (:mod:`leaky.functional`, :mod:`leaky.nn`), one table of
facts about them (:mod:`leaky.spec`), a float64 reference (:mod:`leaky.reference`) and
activation-aware initialisation (:mod:`leaky.init`), and diagnosis of dead units and
gradient flow in any model (:mod:`leaky.monitor`, :mod:`leaky.convert`), and recycling of
the units it finds dead or dormant (:mod:`leaky.repair`).

The folders follow the layers, bottom to top: :mod:`leaky.system` and :mod:`leaky.messages`;
the activation core (:mod:`leaky.core`) and its modules (:mod:`leaky.nn`); :mod:`leaky.data`;
diagnosis (:mod:`leaky.diagnosis`); the lab (:mod:`leaky.lab`); the report, the playground
and the benchmarks; the command line and the demo on top. The public names above are the
same modules under short paths (``leaky.functional`` is ``leaky.core.functional``), so
``from leaky.monitor import Monitor`` and ``leaky.convert.convert(model)`` work as written.

Examples:
    >>> import torch, leaky
    >>> leaky.nn.LeakyReLU(0.1)(torch.tensor([-1.0, 2.0]))
    tensor([-0.1000,  2.0000])
    >>> import leaky.functional
    >>> leaky.functional is leaky.core.functional
    True

"""

import sys

from leaky import nn
from leaky.core import functional, init, reference, spec
from leaky.core.spec import SPECS, get_spec
from leaky.diagnosis import convert, export, fuse, monitor, repair
from leaky.nn import get_activation
from leaky.system.version import __version__

# The short public paths: one module object under two names, so classes and functions are
# the same whichever path imported them. The monitor's submodules that load with it come
# along (``leaky.monitor.tensorboard``, ``leaky.monitor.reductions``); its figure module
# loads only when a figure is drawn: import it as ``leaky.diagnosis.monitor.plot``.
_SHORT_PATHS = {
    "spec": spec,
    "reference": reference,
    "functional": functional,
    "init": init,
    "monitor": monitor,
    "convert": convert,
    "fuse": fuse,
    "export": export,
    "repair": repair,
}
for _short, _module in _SHORT_PATHS.items():
    sys.modules[f"{__name__}.{_short}"] = _module
for _full, _module in list(sys.modules.items()):
    if _full.startswith(f"{monitor.__name__}."):
        sys.modules[f"{__name__}.monitor.{_full.rsplit('.', 1)[1]}"] = _module

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
    "repair",
    "spec",
]
