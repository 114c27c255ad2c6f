"""The playground: a local live page on the library itself.

Train a small network, watch units die and gradients vanish, and compare ReLU with Leaky ReLU
side by side. :class:`TrainingSession` holds the training and the views without any server;
:func:`leaky.playground.app.create_app` serves them to a browser (``leaky playground``). The
lessons that walk through the article's story are data in :mod:`leaky.playground.lessons`, and
:func:`leaky.playground.export_script.export_script` turns a setup into a Python script.
"""

from leaky.playground.params import PlaygroundParams, validate_params
from leaky.playground.session import TrainingSession

__all__ = ["PlaygroundParams", "TrainingSession", "validate_params"]
