"""Test-session setup that must happen before any test module imports leaky.

Triton decides whether a kernel runs compiled or in its CPU interpreter when the kernel is
defined, that is when ``leaky.core.kernels.triton_ops`` is first imported; so ``TRITON_INTERPRET``
is set here, before collection, on machines without CUDA (where a GPU is present the real
kernels run). Without Triton installed, the kernels' module is not collected for doctests.
"""

import importlib.util
import os

import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None

if HAS_TRITON and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

collect_ignore_glob = [] if HAS_TRITON else ["src/leaky/kernels/triton_ops.py"]
