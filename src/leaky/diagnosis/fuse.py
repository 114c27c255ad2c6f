"""Fuse ``BatchNorm -> LeakyReLU`` pairs into one module that keeps only its output, and back.

``fuse_batch_norm(model)`` replaces, inside every plain ``torch.nn.Sequential``, each
``BatchNorm1d/2d/3d`` that is directly followed by a ``LeakyReLU`` with the matching
:class:`leaky.nn.BatchNormLeakyReLU2d` (1d, 3d) and the activation with ``Identity``: weights,
running statistics, device, dtype and train/eval mode carry over, and since the fused module's
``state_dict`` keys are BatchNorm's and an activation has none, the model's ``state_dict`` keys
do not change. ``unfuse_batch_norm`` restores the two ``torch.nn`` modules.

Only plain Sequentials are fused: there, registration order is call order and each module's
output feeds only the next. Elsewhere (a ResNet block calling ``self.bn2`` then adding the
shortcut before ``self.relu``) a BatchNorm followed by an activation in registration order may
not feed it, and fusing would change the function; those are left alone.
"""

from __future__ import annotations

import itertools

import torch

from leaky.diagnosis.convert import Change, _class_path, _describe, _is_plain_sequential
from leaky.nn.batch_norm import (
    FUSED_LEAKY_RELU,
    BatchNormLeakyReLU1d,
    BatchNormLeakyReLU2d,
    BatchNormLeakyReLU3d,
)

__all__ = ["fuse_batch_norm", "unfuse_batch_norm"]

_FUSED_FOR = {
    torch.nn.BatchNorm1d: BatchNormLeakyReLU1d,
    torch.nn.BatchNorm2d: BatchNormLeakyReLU2d,
    torch.nn.BatchNorm3d: BatchNormLeakyReLU3d,
}
_TORCH_FOR = {fused: batch_norm for batch_norm, fused in _FUSED_FOR.items()}


def _options(module: torch.nn.Module) -> dict[str, object]:
    options: dict[str, object] = {
        "eps": module.eps,
        "momentum": module.momentum,
        "affine": module.affine,
        "track_running_stats": module.track_running_stats,
    }
    if module.affine and module.bias is None:
        options["bias"] = False
    tensor = module.weight if module.weight is not None else module.running_mean
    if tensor is not None:
        options.update(device=tensor.device, dtype=tensor.dtype)
    return options


def _moved(new: torch.nn.Module, old: torch.nn.Module) -> torch.nn.Module:
    new.load_state_dict(old.state_dict())
    return new.train(old.training)


def _slope(activation: torch.nn.Module, relu_slope: float | None) -> float | None:
    if isinstance(activation, torch.nn.LeakyReLU):
        return float(activation.negative_slope)
    if isinstance(activation, torch.nn.ReLU) and relu_slope is not None:
        return float(relu_slope)
    return None


def fuse_batch_norm(model: torch.nn.Module, *, relu_slope: float | None = None) -> list[Change]:
    """Fuse each ``BatchNorm -> LeakyReLU`` pair of a plain Sequential, in place.

    Args:
        model: any module; plain ``torch.nn.Sequential`` containers anywhere inside it are
            searched.
        relu_slope: also fuse ``BatchNorm -> ReLU`` pairs, switching the ReLU to a Leaky
            ReLU with this slope (ReLU itself cannot be fused: its output forgets the
            negative inputs backward needs). Default: ``None``

    Raises:
        ValueError: for a ``SyncBatchNorm`` followed by an activation: the fused modules are
            not synchronised across processes.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.LeakyReLU(0.2))
        >>> (change,) = fuse_batch_norm(model)
        >>> change.names, change.new.split("(")[0]
        (('1', '2'), 'leaky.nn.BatchNormLeakyReLU2d')
        >>> type(model[2]).__name__
        'Identity'
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")
    changes = []
    for prefix, parent in model.named_modules():
        if not _is_plain_sequential(parent):
            continue
        names = [name for name, child in parent._modules.items() if child is not None]
        for first, second in itertools.pairwise(names):
            norm, activation = parent._modules[first], parent._modules[second]
            slope = _slope(activation, relu_slope)
            if slope is None:
                continue
            if isinstance(norm, torch.nn.SyncBatchNorm):
                raise ValueError(
                    f"Cannot fuse {prefix + '.' if prefix else ''}{first} (SyncBatchNorm): the "
                    "fused BatchNorm + Leaky ReLU modules are not synchronised across "
                    "processes; fuse before converting to SyncBatchNorm, or leave it"
                )
            fused_class = _FUSED_FOR.get(type(norm))
            if fused_class is None:
                continue
            fused = _moved(
                fused_class(norm.num_features, negative_slope=slope, **_options(norm)), norm
            )
            parent._modules[first] = fused
            parent._modules[second] = torch.nn.Identity()
            where = (f"{prefix}.{first}", f"{prefix}.{second}") if prefix else (first, second)
            changes.append(
                Change(where, f"{_describe(norm)} + {_describe(activation)}", _describe(fused))
            )
    return changes


def unfuse_batch_norm(model: torch.nn.Module) -> list[Change]:
    """Turn each fused module back into ``torch.nn.BatchNorm*d`` and ``torch.nn.LeakyReLU``.

    A fused module followed by the ``Identity`` that :func:`fuse_batch_norm` left becomes
    the BatchNorm, and the Identity the Leaky ReLU, so ``state_dict`` keys stay as they
    are. A fused module without that Identity (built directly) becomes a
    ``Sequential(BatchNorm, LeakyReLU)`` in its place: its keys gain a ``.0``.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.BatchNorm1d(4), nn.LeakyReLU(0.1))
        >>> _ = fuse_batch_norm(model)
        >>> _ = unfuse_batch_norm(model)
        >>> [type(m).__name__ for m in model]
        ['BatchNorm1d', 'LeakyReLU']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")
    changes = []
    for prefix, parent in list(model.named_modules()):
        names = [name for name, child in parent._modules.items() if child is not None]
        for index, name in enumerate(names):
            fused = parent._modules[name]
            if not isinstance(fused, FUSED_LEAKY_RELU):
                continue
            norm = _moved(_TORCH_FOR[type(fused)](fused.num_features, **_options(fused)), fused)
            activation = torch.nn.LeakyReLU(fused.negative_slope)
            following = names[index + 1] if index + 1 < len(names) else None
            where = f"{prefix}.{name}" if prefix else name
            if (
                _is_plain_sequential(parent)
                and following is not None
                and type(parent._modules[following]) is torch.nn.Identity
            ):
                parent._modules[name] = norm
                parent._modules[following] = activation
                places: tuple[str, ...] = (where, f"{prefix}.{following}" if prefix else following)
            else:
                parent._modules[name] = torch.nn.Sequential(norm, activation)
                places = (where,)
            new = f"{_class_path(type(norm))} + {_class_path(type(activation))}"
            changes.append(Change(places, _describe(fused), new))
    return changes
