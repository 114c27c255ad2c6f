"""Example models for `leaky diagnose` (see the README).

leaky diagnose examples/models.py:make_model --input-shape 1,28,28
leaky diagnose examples/models.py:deep_sigmoid --input-shape 64
"""

import torch
from torch import nn


def make_model() -> nn.Module:
    """A small ReLU CNN for 28x28 images, with some units forced to be dead."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 14 * 14, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    with torch.no_grad():
        model[4].bias[:8] = -50.0  # eight hidden units that can never fire
    return model


def deep_sigmoid() -> nn.Module:
    """Twenty sigmoid layers at PyTorch's default initialisation: the gradient vanishes."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(20):
        layers += [nn.Linear(64, 64), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(64, 10))
