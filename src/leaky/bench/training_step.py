"""The ``train`` suite: whole training steps, not single ops.

``train``: one SGD step (forward, cross-entropy, backward, update) of an MLP and a small CNN
built with ``leaky.nn`` modules against the same networks built with ``torch.nn``, and the
``leaky.nn`` network keeping a 1-bit mask (``save="mask"``) against the same network keeping
the output (``save="output"``). Both copies start from the same weights, and their losses
after one step are checked equal before timing. The ``monitor`` suite
(``leaky.bench.monitor_overhead``) uses the same checked steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

import leaky
from leaky.bench.kernels import ResultMismatchError
from leaky.bench.result import BenchRow, SuiteResult
from leaky.bench.timing import compare
from leaky.diagnosis.convert import convert

__all__ = ["checked_steps", "run_train"]


def _mlp(depth: int, width: int) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.LeakyReLU(0.01)]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _cnn(channels: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.LeakyReLU(0.01),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.LeakyReLU(0.01),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * 8 * 8, 10),
    )


def _step(model: nn.Module, x: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor]):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> float:
        value = loss(model(x))
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(value.detach())

    return step


def _leaky_copy(model: nn.Module, save: str = "auto") -> nn.Module:
    twin = copy.deepcopy(model)
    convert(twin, "leaky_relu", only=(nn.LeakyReLU,))
    activations = [m for m in twin.modules() if isinstance(m, leaky.nn.LeakyReLU)]
    assert activations
    for activation in activations:
        activation.save = save
    return twin


def checked_steps(
    candidate: nn.Module,
    baseline: nn.Module,
    x: torch.Tensor,
    loss: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[Callable[[], float], Callable[[], float]]:
    """Training-step functions of two models, refused unless their first losses are equal.

    Both models must start from the same weights; the first step is taken here.
    """
    a, b = _step(candidate, x, loss), _step(baseline, x, loss)
    if a() != b():  # same weights, same data: the first losses must agree exactly
        raise ResultMismatchError("benchmarked pair differs: refusing to time a wrong result")
    return a, b


def _checked_pair(candidate: nn.Module, baseline: nn.Module, x: torch.Tensor, y: torch.Tensor):
    return checked_steps(candidate, baseline, x, lambda out: nn.functional.cross_entropy(out, y))


def run_train(*, quick: bool = False, device: str = "cpu") -> SuiteResult:
    """MLP and CNN training steps: leaky.nn against torch.nn, save="mask" against "output"."""
    pairs = 7 if quick else 9
    result = SuiteResult("train")
    depth, width, batch = (4, 256, 256) if quick else (20, 1024, 512)
    mlp = _mlp(depth, width).to(device)
    x = torch.randn(batch, width, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    fns = _checked_pair(_leaky_copy(mlp), mlp, x, y)
    result.rows.append(
        BenchRow(
            f"MLP {depth}x{width} step, batch {batch}",
            "leaky.nn",
            "torch.nn",
            "allocating",
            compare(*fns, pairs=pairs, device=device),
            "equal loss",
        )
    )
    result.rows.append(
        _mask_row(f"MLP {depth}x{width} step, batch {batch}", mlp, x, y, pairs, device)
    )
    channels, batch = (16, 32) if quick else (64, 128)
    cnn = _cnn(channels).to(device)
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    fns = _checked_pair(_leaky_copy(cnn), cnn, images, labels)
    result.rows.append(
        BenchRow(
            f"CNN {channels}ch 32x32 step, batch {batch}",
            "leaky.nn",
            "torch.nn",
            "allocating",
            compare(*fns, pairs=pairs, device=device),
            "equal loss",
        )
    )
    case = f"CNN {channels}ch 32x32 step, batch {batch}"
    result.rows.append(_mask_row(case, cnn, images, labels, pairs, device))
    result.notes.append(
        "speed-up = baseline step time / candidate step time; save='mask' rows: the same "
        "leaky.nn network keeping 1 bit per activation against keeping the output"
    )
    return result


def _mask_row(
    case: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, pairs: int, device: str
) -> BenchRow:
    fns = _checked_pair(_leaky_copy(model, "mask"), _leaky_copy(model, "output"), x, y)
    return BenchRow(
        f"{case}, leaky.nn save='mask'",
        "save='mask'",
        "save='output'",
        "allocating",
        compare(*fns, pairs=pairs, device=device),
        "equal loss",
    )
