"""Model builders that take their activation from the spec table.

Every builder takes ``activation`` (a spec name) with its options, and ``init``:

* ``"kaiming"``: He et al. (2015) normal weights with the activation's own gain
  (:func:`leaky.core.init.calculate_gain`), zero biases; the output layer gets gain 1;
* ``"xavier"``: Glorot normal weights (gain 1, fan-in and fan-out averaged), zero biases;
* ``"standard"``: the "standard initialization" Glorot & Bengio (2010) start from,
  weights uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)], zero biases;
* ``"torch"``: PyTorch's default initialisation, untouched.

PReLU gets one slope per unit or channel.

Examples:
    >>> model = mlp(2, 3, depth=2, width=8, activation="leaky_relu", negative_slope=0.2)
    >>> [type(m).__name__ for m in model]
    ['Flatten', 'Linear', 'LeakyReLU', 'Linear', 'LeakyReLU', 'Linear']
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from leaky.core.init import fan, init_layer_
from leaky.core.spec import get_spec
from leaky.nn import get_activation

__all__ = [
    "INITS",
    "char_mlp",
    "cnn1d",
    "cnn2d",
    "initialise",
    "mlp",
    "mnist1d_conv_base",
    "mnist1d_mlp_base",
    "pooled_mlp",
]

Init = Literal["kaiming", "xavier", "standard", "torch"]
INITS: tuple[str, ...] = ("kaiming", "xavier", "standard", "torch")


def _activation(name: str, units: int, options: dict[str, Any]) -> nn.Module:
    spec = get_spec(name)
    if spec.name == "prelu":
        options = {"num_parameters": units, **options}
    return get_activation(spec.name, **options)


def _check(depth: int, width: int, init: str) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"Expected `depth` to be an int >= 1, but got {depth!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"Expected `width` to be an int >= 1, but got {width!r}")
    if init not in INITS:
        raise ValueError(f"Expected `init` in {', '.join(INITS)}, but got {init!r}")


def initialise(
    model: nn.Module,
    activation: str,
    init: str = "kaiming",
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> nn.Module:
    """Initialise every Linear / Conv of ``model`` for ``activation``; the last one with gain 1.

    Examples:
        >>> net = initialise(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)), "relu")
        >>> float(net[0].bias.detach().abs().sum())
        0.0
    """
    if init not in INITS:
        raise ValueError(f"Expected `init` in {', '.join(INITS)}, but got {init!r}")
    if init == "torch":
        return model
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    spec = get_spec(activation)
    params = {k: v for k, v in options.items() if k == spec.slope_param or k in spec.defaults}
    if spec.name == "prelu":
        params = {"init": options.get("init", spec.defaults["init"])}
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        if init == "kaiming":
            if last:  # a linear output: gain 1, Var(w) = 1 / fan_in
                with torch.no_grad():
                    layer.weight.normal_(0.0, fan(layer.weight) ** -0.5, generator=generator)
                    if layer.bias is not None:
                        layer.bias.zero_()
            else:
                init_layer_(layer, spec.name, generator=generator, **params)
        else:
            with torch.no_grad():
                if init == "standard":
                    bound = fan(layer.weight) ** -0.5
                    layer.weight.uniform_(-bound, bound, generator=generator)
                else:
                    nn.init.xavier_normal_(layer.weight, generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
    return model


def mlp(
    in_features: int,
    out_features: int,
    *,
    depth: int,
    width: int,
    activation: str = "relu",
    init: Init = "kaiming",
    generator: torch.Generator | None = None,
    **options: Any,
) -> nn.Sequential:
    """Flatten, then ``depth`` x [Linear(width) + activation], then Linear(out_features)."""
    _check(depth, width, init)
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = in_features
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), _activation(activation, width, dict(options))]
        fan_in = width
    layers.append(nn.Linear(fan_in, out_features))
    model = nn.Sequential(*layers)
    return initialise(model, activation, init, generator=generator, **options)  # type: ignore[return-value]


def _conv_stack(
    conv: type[nn.Conv1d] | type[nn.Conv2d],
    pool: type[nn.MaxPool1d] | type[nn.MaxPool2d],
    in_channels: int,
    depth: int,
    channels: int,
    activation: str,
    options: dict[str, Any],
    pool_every: int,
) -> list[nn.Module]:
    layers: list[nn.Module] = []
    c = in_channels
    for i in range(depth):
        layers += [
            conv(c, channels, 3, padding=1),
            _activation(activation, channels, dict(options)),
        ]
        if (i + 1) % pool_every == 0:
            layers.append(pool(2))
        c = channels
    return layers


def cnn1d(
    in_channels: int,
    length: int,
    classes: int,
    *,
    depth: int = 3,
    channels: int = 32,
    activation: str = "relu",
    init: Init = "kaiming",
    generator: torch.Generator | None = None,
    **options: Any,
) -> nn.Sequential:
    """A 1-D CNN for signals such as MNIST-1D: conv3 blocks (pool every 2), then Linear."""
    _check(depth, channels, init)
    layers = _conv_stack(
        nn.Conv1d, nn.MaxPool1d, in_channels, depth, channels, activation, options, pool_every=2
    )
    out_length = length // 2 ** (depth // 2)
    if out_length < 1:
        raise ValueError(f"depth {depth} pools a length-{length} signal away; use a smaller depth")
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * out_length, classes))
    return initialise(model, activation, init, generator=generator, **options)  # type: ignore[return-value]


def cnn2d(
    in_channels: int,
    size: tuple[int, int],
    classes: int,
    *,
    depth: int = 2,
    channels: int = 32,
    activation: str = "relu",
    init: Init = "kaiming",
    generator: torch.Generator | None = None,
    **options: Any,
) -> nn.Sequential:
    """A 2-D CNN for small images (digits 8x8, MNIST, CIFAR): conv3 blocks, pool each, Linear."""
    _check(depth, channels, init)
    layers = _conv_stack(
        nn.Conv2d, nn.MaxPool2d, in_channels, depth, channels, activation, options, pool_every=1
    )
    h, w = size[0] // 2**depth, size[1] // 2**depth
    if h < 1 or w < 1:
        raise ValueError(
            f"depth {depth} pools a {size[0]}x{size[1]} image away; use a smaller depth"
        )
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * h * w, classes))
    return initialise(model, activation, init, generator=generator, **options)  # type: ignore[return-value]


def pooled_mlp(
    size: tuple[int, int],
    classes: int,
    *,
    segments: int = 4,
    depth: int = 2,
    width: int = 128,
    activation: str = "relu",
    init: Init = "kaiming",
    generator: torch.Generator | None = None,
    **options: Any,
) -> nn.Sequential:
    """An MLP over a ``(1, rows, columns)`` spectrogram pooled in time.

    Each row (mel band) is averaged over ``segments`` equal spans of columns, which keeps
    the coarse order of the sounds and drops their exact timing; the ``rows * segments``
    numbers go to :func:`mlp`.

    Examples:
        >>> net = pooled_mlp((32, 48), 10, segments=4, depth=1, width=8)
        >>> net(torch.zeros(2, 1, 32, 48)).shape
        torch.Size([2, 10])
    """
    if isinstance(segments, bool) or not isinstance(segments, int) or not 1 <= segments <= size[1]:
        raise ValueError(
            f"Expected `segments` to be an int from 1 to {size[1]} (the columns), "
            f"but got {segments!r}"
        )
    body = mlp(
        size[0] * segments,
        classes,
        depth=depth,
        width=width,
        activation=activation,
        init=init,
        generator=generator,
        **options,
    )
    return nn.Sequential(nn.AdaptiveAvgPool2d((size[0], segments)), *body)


class CharMLP(nn.Module):
    """Character-level MLP language model: k previous characters -> the next (Bengio 2003)."""

    def __init__(
        self,
        vocabulary: int,
        context: int,
        *,
        embedding: int,
        depth: int,
        width: int,
        activation: str,
        **options: Any,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding)
        self.body = mlp(
            context * embedding,
            vocabulary,
            depth=depth,
            width=width,
            activation=activation,
            init="torch",
            **options,
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits of the next character, ``(N, vocabulary)``."""
        return self.body(self.embed(ids))


def char_mlp(
    vocabulary: int,
    context: int,
    *,
    embedding: int = 16,
    depth: int = 2,
    width: int = 256,
    activation: str = "relu",
    init: Init = "kaiming",
    generator: torch.Generator | None = None,
    **options: Any,
) -> CharMLP:
    """Build a :class:`CharMLP` initialised for its activation."""
    _check(depth, width, init)
    model = CharMLP(
        vocabulary,
        context,
        embedding=embedding,
        depth=depth,
        width=width,
        activation=activation,
        **options,
    )
    initialise(model.body, activation, init, generator=generator, **options)
    return model


class _ResidualMLP(nn.Module):
    """Linear + activation, then a residual Linear + activation, then a linear output."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.flatten, self.linear1, self.act1, self.linear2, self.act2, self.linear3 = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, ``(N, out_features)``."""
        h = self.act1(self.linear1(self.flatten(x)))
        h = h + self.act2(self.linear2(h))
        return self.linear3(h)


def mnist1d_mlp_base(
    in_features: int = 40,
    out_features: int = 10,
    *,
    hidden: int = 100,
    activation: str = "relu",
    **options: Any,
) -> nn.Module:
    """MNIST-1D's published MLP baseline (Greydanus 2020, ``MLPBase``): 15,210 parameters.

    Linear(in, 100) + activation, a residual block h + act(Linear(100, 100)(h)), then
    Linear(100, out), with PyTorch's default initialisation (as published; it draws from
    torch's global generator, which the runner seeds per run).

    Examples:
        >>> sum(p.numel() for p in mnist1d_mlp_base().parameters())
        15210
    """
    _check(1, hidden, "torch")
    return _ResidualMLP(
        [
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            _activation(activation, hidden, dict(options)),
            nn.Linear(hidden, hidden),
            _activation(activation, hidden, dict(options)),
            nn.Linear(hidden, out_features),
        ]
    )


def mnist1d_conv_base(
    length: int = 40,
    classes: int = 10,
    *,
    channels: int = 25,
    activation: str = "relu",
    **options: Any,
) -> nn.Sequential:
    """MNIST-1D's published CNN baseline (Greydanus 2020, ``ConvBase``): 5,210 parameters.

    Three strided convolutions (kernel 5 then 3, 3; stride 2, padding 1), each followed by
    the activation, then a Linear classifier on the flattened features; PyTorch's default
    initialisation, as published.

    Examples:
        >>> sum(p.numel() for p in mnist1d_conv_base().parameters())
        5210
    """
    _check(1, channels, "torch")
    out = length
    for kernel in (5, 3, 3):
        out = (out + 2 - kernel) // 2 + 1
    if out < 1:
        raise ValueError(f"Expected a signal of length >= 3, but got {length}")
    layers: list[nn.Module] = []
    c = 1
    for kernel in (5, 3, 3):
        layers += [
            nn.Conv1d(c, channels, kernel, stride=2, padding=1),
            _activation(activation, channels, dict(options)),
        ]
        c = channels
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * out, classes))
