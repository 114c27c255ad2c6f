"""Diagnosis and repair of any PyTorch model: what its units and gradients do, and swaps.

:mod:`.monitor` (dead, never-active, τ-dormant and saturated units, gradient flow, as metrics),
:mod:`.forward_order` (the order a forward pass calls modules in), :mod:`.convert`
(swap activations, re-initialise, go back to ``torch.nn``), :mod:`.fuse` (BatchNorm +
Leaky ReLU pairs into one module), :mod:`.repair` (recycle dead or dormant units, as
ReDo does), :mod:`.export` (ONNX of standard operators),
:mod:`.saved_tensors` (what autograd keeps for backward) and :mod:`.diagnose` (a model
from a file, its weights and inputs, diagnosed). Built on the core, ``leaky.nn`` and
:mod:`leaky.data`; never on the lab, the report or the command line.
"""
