"""Swap a model's activations in place, with the right re-initialisation.

``convert(model)`` turns every ``torch.nn.ReLU`` into ``leaky.nn.LeakyReLU``; ``to`` takes
any name or class of the spec table, and ``to="torch"`` turns ``leaky.nn`` modules back
into their ``torch.nn`` equivalents (same weights) for export or sharing.

Activations called as functions inside ``forward`` (``F.relu(x)``) cannot be swapped:
``convert`` finds them in the source of each ``forward`` and warns, naming each one.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from leaky.init import init_layer_
from leaky.monitor.functional_sites import FUNCTIONAL_ACTIVATIONS
from leaky.monitor.sites import spec_for_class, spec_for_module
from leaky.nn.factory import get_activation
from leaky.spec import ActivationSpec, get_spec

__all__ = ["Change", "FunctionalActivationWarning", "convert", "find_functional_activations"]


class FunctionalActivationWarning(UserWarning):
    """An activation called as a function in ``forward``: ``convert`` cannot swap it."""


@dataclass(frozen=True)
class Change:
    """One swapped module: where it sits (all places, if shared), what it was and became."""

    names: tuple[str, ...]
    old: str
    new: str
    reinitialised: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        text = f"{', '.join(self.names)}: {self.old} -> {self.new}"
        if self.reinitialised:
            text += f" (re-initialised {', '.join(self.reinitialised)})"
        return text


_FUNCTION_NAMES = {getattr(f, "__name__", "") for f in FUNCTIONAL_ACTIVATIONS} - {""}


def find_functional_activations(model: torch.nn.Module) -> list[str]:
    """Name every activation called as a function in the ``forward`` of the model's modules.

    Reads the source of each ``forward`` defined outside ``torch`` and ``leaky`` (one entry
    per call: module name, class, line and the call).

    Examples:
        >>> find_functional_activations(torch.nn.Sequential(torch.nn.ReLU()))  # modules only
        []
    """
    found = []
    seen: dict[type, list[tuple[int, str]]] = {}
    for name, module in model.named_modules():
        cls = type(module)
        if cls.__module__.startswith(("torch.", "leaky.")):
            continue
        if cls not in seen:
            seen[cls] = _calls_in_forward(cls)
        for line, call in seen[cls]:
            found.append(f"{name or cls.__name__} ({cls.__name__}.forward, line {line}): {call}")
    return found


def _calls_in_forward(cls: type) -> list[tuple[int, str]]:
    try:
        source = inspect.getsource(cls.forward)
        first_line = inspect.getsourcelines(cls.forward)[1]
    except (OSError, TypeError):
        return []
    calls = []
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _FUNCTION_NAMES:
            calls.append((first_line + node.lineno - 1, f"{ast.unparse(func)}(...)"))
    return sorted(calls)


def _target(to: str | type[torch.nn.Module]) -> ActivationSpec:
    if isinstance(to, str):
        return get_spec(to)
    spec = spec_for_class(to) if isinstance(to, type) else None
    if spec is None:
        raise ValueError(
            f"Expected `to` to be an activation name or class the spec table knows, but got {to!r}"
        )
    return spec


def _channels(parent: torch.nn.Module, child_name: str) -> int | None:
    # The nearest preceding sibling that says how many channels it produces.
    names = list(parent._modules)
    for name in reversed(names[: names.index(child_name)]):
        sibling = parent._modules[name]
        for attr in ("out_features", "out_channels", "num_features", "num_channels"):
            value = getattr(sibling, attr, None)
            if isinstance(value, int):
                return value
    return None


def _feeding_layer(
    parent: torch.nn.Module, parent_name: str, child_name: str
) -> tuple[str, torch.nn.Module] | None:
    # The last module with a weight matrix registered before the activation in its parent
    # (registration order is forward order in Sequential and in most custom modules).
    names = list(parent._modules)
    for name in reversed(names[: names.index(child_name)]):
        sibling = parent._modules[name]
        if sibling is None:
            continue
        candidates = [(n, m) for n, m in sibling.named_modules() if _has_weight_matrix(m)]
        if candidates:
            inner, layer = candidates[-1]
            full = ".".join(p for p in (parent_name, name, inner) if p)
            return full, layer
    return None


def _has_weight_matrix(module: torch.nn.Module) -> bool:
    weight = module._parameters.get("weight")
    return isinstance(weight, torch.Tensor) and weight.dim() >= 2


def _build(
    spec: ActivationSpec,
    old: torch.nn.Module,
    negative_slope: float | None,
    channels: int | None,
) -> torch.nn.Module:
    old_spec = spec_for_module(old)
    if old_spec is spec:
        # Same activation, other implementation (torch.nn -> leaky.nn): keep every option
        # and the learned weights.
        options = {k: getattr(old, k) for k in spec.defaults if hasattr(old, k)}
        if spec.name == "prelu":
            options["num_parameters"] = old.num_parameters
            options.update(device=old.weight.device, dtype=old.weight.dtype)
        new = get_activation(spec.name, **options)
        new.load_state_dict(old.state_dict())
        return new
    kwargs: dict[str, Any] = {}
    slope = negative_slope
    if slope is None and old_spec is not None and old_spec.slope_param is not None:
        slope = old_spec.negative_slope(**{old_spec.slope_param: _slope_of(old)})
    if spec.name == "leaky_relu":
        kwargs["negative_slope"] = spec.defaults["negative_slope"] if slope is None else slope
    elif spec.name == "prelu":
        kwargs["num_parameters"] = channels or 1
        kwargs["init"] = spec.defaults["init"] if slope is None else slope
    module_cls = spec.module_class()
    supports_inplace = "inplace" in inspect.signature(module_cls).parameters
    slope_allows = spec.name != "leaky_relu" or kwargs["negative_slope"] >= 0
    if supports_inplace and slope_allows and getattr(old, "inplace", False):
        kwargs["inplace"] = True
    return get_activation(spec.name, **kwargs)


def _slope_of(module: torch.nn.Module) -> float:
    if isinstance(module, torch.nn.PReLU):
        return float(module.weight.detach().mean())
    return float(getattr(module, "negative_slope", 0.0))


def _to_torch(module: torch.nn.Module) -> torch.nn.Module | None:
    from leaky import nn as leaky_nn

    if isinstance(module, leaky_nn.BiasLeakyReLU):
        warnings.warn(
            f"{module!r} has no torch.nn equivalent (a fused bias + activation + gain) and "
            "stays a leaky module",
            UserWarning,
            stacklevel=4,
        )
        return None

    if isinstance(module, leaky_nn.LeakyReLU):
        return torch.nn.LeakyReLU(module.negative_slope, module.inplace)
    if isinstance(module, leaky_nn.RReLU):
        return torch.nn.RReLU(module.lower, module.upper, module.inplace)
    if isinstance(module, leaky_nn.PReLU):
        weight = module.weight
        new = torch.nn.PReLU(module.num_parameters, module.init, weight.device, weight.dtype)
        new.load_state_dict(module.state_dict())
        return new
    return None


def convert(
    model: torch.nn.Module,
    to: str | type[torch.nn.Module] = "leaky_relu",
    *,
    negative_slope: float | None = None,
    only: tuple[type[torch.nn.Module], ...] = (torch.nn.ReLU,),
    reinit: bool = False,
) -> list[Change]:
    """Swap activation modules in place throughout ``model``; return what changed.

    Args:
        model: any module; nested Sequential, ModuleList, ModuleDict and custom classes are
            walked, and a module object used in several places is replaced by one new
            module used in the same places.
        to: a spec name or class (``"leaky_relu"``, ``"prelu"``, ``leaky.nn.PReLU``...), or
            ``"torch"`` to turn ``leaky.nn`` modules back into ``torch.nn`` ones with the
            same weights. Default: ``"leaky_relu"``
        negative_slope: slope of the new Leaky ReLU, or PReLU's initial slope; None keeps
            the old module's slope when it has one, else the spec default (0.01 for
            Leaky ReLU, 0.25 for PReLU). Default: ``None``
        only: classes to replace (ignored for ``to="torch"``). Default: ``(torch.nn.ReLU,)``
        reinit: re-initialise the layer feeding each converted activation (the last layer
            with a weight matrix registered before it) with Kaiming-normal weights for the
            new activation's gain, and zero its bias. Default: ``False``

    ``inplace=True`` is kept where the new module supports it. PReLU gets one slope per
    channel when the preceding sibling says how many (``out_features``,
    ``out_channels``), otherwise one shared slope.

    Warns:
        FunctionalActivationWarning: for each activation called as a function in a
            ``forward``, which cannot be swapped.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> [str(change) for change in convert(model, negative_slope=0.1)]
        ['1: ReLU() -> LeakyReLU(negative_slope=0.1)']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")
    back_to_torch = to == "torch"
    spec = None if back_to_torch else _target(to)  # type: ignore[arg-type]
    if not back_to_torch and not (isinstance(only, tuple) and only):
        raise TypeError(f"Expected `only` to be a non-empty tuple of module classes, got {only!r}")
    replaced: dict[int, torch.nn.Module] = {}
    places: dict[int, list[str]] = {}
    olds: dict[int, torch.nn.Module] = {}
    reinitialised: dict[int, list[str]] = {}
    parents = [(name, module) for name, module in model.named_modules(remove_duplicate=False)]
    for parent_name, parent in parents:
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            key = id(child)
            if key not in replaced:
                if back_to_torch:
                    new = _to_torch(child)
                elif isinstance(child, only) and type(child) is not spec.module_class():  # type: ignore[union-attr]
                    new = _build(spec, child, negative_slope, _channels(parent, child_name))  # type: ignore[arg-type]
                else:
                    new = None
                if new is None:
                    continue
                _match_placement(new, child, parent, child_name)
                replaced[key], olds[key] = new, child
                reinitialised[key] = []
            full_name = f"{parent_name}.{child_name}" if parent_name else child_name
            if full_name in places.setdefault(key, []):
                continue
            places[key].append(full_name)
            setattr(parent, child_name, replaced[key])
            if reinit and not back_to_torch:
                feeding = _feeding_layer(parent, parent_name, child_name)
                if feeding is not None and feeding[0] not in reinitialised[key]:
                    layer_name, layer = feeding
                    params = _init_params(spec, replaced[key])  # type: ignore[arg-type]
                    init_layer_(layer, spec.name, **params)  # type: ignore[union-attr]
                    reinitialised[key].append(layer_name)
    for site in find_functional_activations(model):
        warnings.warn(
            f"{site} is called as a function and cannot be swapped by convert(); "
            "replace it with an activation module to convert it",
            FunctionalActivationWarning,
            stacklevel=2,
        )
    return [
        Change(tuple(places[key]), repr(olds[key]), repr(new), tuple(reinitialised[key]))
        for key, new in replaced.items()
    ]


def _match_placement(
    new: torch.nn.Module, old: torch.nn.Module, parent: torch.nn.Module, child_name: str
) -> None:
    # The new module lives where the old one (or, for a parameter-free one, the layer
    # feeding it) lives, with the same dtype and the same train / eval mode.
    reference = next(iter(old.parameters()), None)
    if reference is None:
        feeding = _feeding_layer(parent, "", child_name)
        reference = None if feeding is None else feeding[1].weight
    if reference is not None:
        new.to(device=reference.device, dtype=reference.dtype)
    new.train(old.training)


def _init_params(spec: ActivationSpec, module: torch.nn.Module) -> dict[str, Any]:
    if spec.slope_param is None:
        return {}
    return {spec.slope_param: _slope_of(module)}
