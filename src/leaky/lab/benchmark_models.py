"""The networks the benchmarks train, one builder per kind, each variant from the same seed.

``mlp`` and ``cnn`` vary the activation (:data:`ACTIVATION_VARIANTS`); ``dcgan`` (a DCGAN
discriminator) and ``resnet`` (a small ResNet-style stack) vary how BatchNorm and Leaky ReLU
are built (:data:`BATCH_NORM_VARIANTS`); ``resnet18`` (ResNet-18's layout for 32x32 images)
and ``transformer`` (one pre-norm encoder block) vary the activation, for the monitor suite.
Every builder returns the model, an input batch and the loss to train it with, so the memory
child and the timing suites run the same step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import leaky
from leaky.diagnosis.saved_tensors import saved_storages

__all__ = [
    "ACTIVATION_VARIANTS",
    "BATCH_NORM_VARIANTS",
    "KINDS",
    "RELU_BATCH_NORM_VARIANTS",
    "Bench",
    "EncoderBlock",
    "activation_module",
    "build",
    "saved_by_autograd_mib",
]

ACTIVATION_VARIANTS = ("leaky", "leaky-mask", "torch", "torch-inplace", "relu")
BATCH_NORM_VARIANTS = ("torch-inplace", "torch", "leaky-fused")
# The same blocks with ReLU: PyTorch's in-place pair, and the fused module at slope 0, which
# cannot invert its activation and so keeps its input like the pair does.
RELU_BATCH_NORM_VARIANTS = ("relu-inplace", "relu-fused")
_SLOPE = 0.01
_GAN_SLOPE = 0.2

Loss = Callable[[torch.Tensor], torch.Tensor]
Bench = tuple[nn.Module, torch.Tensor, Loss]


def activation_module(variant: str) -> nn.Module:
    """The activation of one of :data:`ACTIVATION_VARIANTS` (slope 0.01).

    Examples:
        >>> activation_module("torch-inplace")
        LeakyReLU(negative_slope=0.01, inplace=True)

    """
    return {
        "leaky": lambda: leaky.nn.LeakyReLU(_SLOPE),
        "leaky-mask": lambda: leaky.nn.LeakyReLU(_SLOPE, save="mask"),
        "torch": lambda: nn.LeakyReLU(_SLOPE),
        "torch-inplace": lambda: nn.LeakyReLU(_SLOPE, inplace=True),
        "relu": nn.ReLU,
    }[variant]()


def _classes(batch: int) -> Loss:
    target = torch.randint(10, (batch,), generator=torch.Generator().manual_seed(1))
    return lambda out: nn.functional.cross_entropy(out, target)


def _mlp(variant: str, quick: bool) -> Bench:
    depth, width, batch = (8, 512, 2048) if quick else (20, 1024, 4096)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation_module(variant)]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    return model, torch.randn(batch, width), _classes(batch)


def _cnn(variant: str, quick: bool) -> Bench:
    channels, batch = (16, 64) if quick else (32, 256)
    model = nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        activation_module(variant),
        nn.Conv2d(channels, channels, 3, padding=1),
        activation_module(variant),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1),
        activation_module(variant),
        nn.Flatten(),
        nn.Linear(channels * 16 * 16, 10),
    )
    return model, torch.randn(batch, 3, 32, 32), _classes(batch)


def _norm_act(variant: str, channels: int, slope: float) -> list[nn.Module]:
    if variant.endswith("-fused"):
        slope = 0.0 if variant.startswith("relu") else slope
        return [leaky.nn.BatchNormLeakyReLU2d(channels, negative_slope=slope)]
    return [nn.BatchNorm2d(channels), _plain_activation(variant, slope)]


def _input_activation(variant: str, slope: float) -> nn.Module:
    # An activation with no BatchNorm before it: the fused variants' own modules there are
    # leaky's output-keeping Leaky ReLU (slope 0: a ReLU, which keeps its output too).
    if variant == "leaky-fused":
        return leaky.nn.LeakyReLU(slope)
    if variant == "relu-fused":
        return nn.ReLU()
    return _plain_activation(variant, slope)


def _plain_activation(variant: str, slope: float) -> nn.Module:
    inplace = variant.endswith("inplace")
    if variant.startswith("relu"):
        return nn.ReLU(inplace=inplace)
    return nn.LeakyReLU(slope, inplace=inplace)


def _dcgan(variant: str, quick: bool) -> Bench:
    # Radford et al. 2016's discriminator for 64x64 images, as published (and as
    # pytorch/examples builds it): Conv 4x4 stride 2 -> LeakyReLU(0.2) on the input layer,
    # with no BatchNorm there, then 3 x [Conv 4x4 stride 2 -> BatchNorm -> LeakyReLU(0.2)],
    # 64 -> 512 channels, then a 4x4 convolution to one logit. Only the three BatchNorm
    # blocks can be fused; the input layer's activation is each variant's plain one.
    batch = 32 if quick else 256
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 4, 2, 1, bias=False),
        _input_activation(variant, _GAN_SLOPE),
    ]
    channels_in = 64
    for channels in (128, 256, 512):
        layers += [nn.Conv2d(channels_in, channels, 4, 2, 1, bias=False)]
        layers += _norm_act(variant, channels, _GAN_SLOPE)
        channels_in = channels
    model = nn.Sequential(*layers, nn.Conv2d(512, 1, 4, 1, 0, bias=False), nn.Flatten())
    real = (torch.rand(batch, 1, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    return (
        model,
        torch.randn(batch, 3, 64, 64),
        lambda out: nn.functional.binary_cross_entropy_with_logits(out, real),
    )


class _ResidualBlock(nn.Module):
    # conv -> BN -> act -> conv -> BN, plus the input, -> act. Only the first BatchNorm is
    # followed directly by the activation, so only it can be fused; the last activation
    # comes after the sum and stays a plain (in-place or output-keeping) Leaky ReLU.
    def __init__(self, channels: int, variant: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm_act1 = nn.Sequential(*_norm_act(variant, channels, _SLOPE))
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)
        self.act = (
            leaky.nn.LeakyReLU(_SLOPE)
            if variant == "leaky-fused"
            else _plain_activation(variant, _SLOPE)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm2(self.conv2(self.norm_act1(self.conv1(x)))) + x)


def _resnet(variant: str, quick: bool) -> Bench:
    channels, blocks, batch = (16, 2, 32) if quick else (64, 4, 128)
    model = nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1, bias=False),
        *_norm_act(variant, channels, _SLOPE),
        *(_ResidualBlock(channels, variant) for _ in range(blocks)),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, 10),
    )
    return model, torch.randn(batch, 3, 32, 32), _classes(batch)


class _BasicBlock(nn.Module):
    # ResNet-18's block: conv -> BN -> act -> conv -> BN, plus the shortcut, -> act, with
    # one activation module called twice (as torchvision writes it), and a 1x1 convolution
    # on the shortcut where the block changes the size.
    def __init__(self, channels_in: int, channels: int, stride: int, variant: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = activation_module(variant)
        self.shortcut = nn.Sequential()
        if stride != 1 or channels_in != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.shortcut(x))


def _resnet18(variant: str, quick: bool) -> Bench:
    # He et al. 2016's ResNet-18 (2 blocks per stage, 64 -> 512 channels) with the 3x3 stem
    # used for 32x32 images; --quick narrows every stage to a quarter.
    width, batch = (16, 8) if quick else (64, 8)
    layers: list[nn.Module] = [
        nn.Conv2d(3, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width),
        activation_module(variant),
    ]
    channels_in = width
    for stage in range(4):
        channels = width * 2**stage
        for block in range(2):
            stride = 2 if stage and not block else 1
            layers.append(_BasicBlock(channels_in, channels, stride, variant))
            channels_in = channels
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))
    return model, torch.randn(batch, 3, 32, 32), _classes(batch)


class EncoderBlock(nn.Module):
    """A pre-norm transformer encoder block: x + attention(norm(x)), then x + MLP(norm(x)).

    The MLP is Linear(d, 4d) -> activation -> Linear(4d, d); inputs are (batch, tokens, d).
    """

    def __init__(self, dim: int, heads: int, activation: nn.Module) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), activation, nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, dim) -> (batch, tokens, dim)."""
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class _TokenClassifier(nn.Module):
    def __init__(self, dim: int, heads: int, variant: str) -> None:
        super().__init__()
        self.block = EncoderBlock(dim, heads, activation_module(variant))
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x).mean(dim=1))


def _transformer(variant: str, quick: bool) -> Bench:
    dim, heads, tokens, batch = (64, 4, 32, 8) if quick else (256, 8, 128, 16)
    model = _TokenClassifier(dim, heads, variant)
    return model, torch.randn(batch, tokens, dim), _classes(batch)


KINDS: dict[str, tuple[Callable[[str, bool], Bench], tuple[str, ...]]] = {
    "mlp": (_mlp, ACTIVATION_VARIANTS),
    "cnn": (_cnn, ACTIVATION_VARIANTS),
    "dcgan": (_dcgan, BATCH_NORM_VARIANTS + RELU_BATCH_NORM_VARIANTS),
    "resnet": (_resnet, BATCH_NORM_VARIANTS + RELU_BATCH_NORM_VARIANTS),
    "resnet18": (_resnet18, ACTIVATION_VARIANTS),
    "transformer": (_transformer, ACTIVATION_VARIANTS),
}


def build(kind: str, variant: str, quick: bool) -> Bench:
    """Model, input and loss of ``kind`` in ``variant``; every variant from seed 0.

    Examples:
        >>> model, x, loss = build("dcgan", "leaky-fused", quick=True)
        >>> tuple(model(x).shape), loss(model(x)).item() > 0
        ((32, 1), True)

    """
    builder, variants = KINDS[kind]
    if variant not in variants:
        raise ValueError(f"Unknown variant {variant!r} for {kind}; choose from {variants}")
    torch.manual_seed(0)
    return builder(variant, quick)


def saved_by_autograd_mib(kind: str, variant: str, *, quick: bool) -> float:
    """MiB autograd keeps between forward and backward (distinct storages, input included).

    Examples:
        >>> small = saved_by_autograd_mib("resnet", "leaky-fused", quick=True)
        >>> small < saved_by_autograd_mib("resnet", "torch-inplace", quick=True)
        True

    """
    model, x, loss = build(kind, variant, quick)
    with saved_storages() as storages:
        loss(model(x))
    return sum(storages.values()) / 2**20
