"""Swap a model's activations in place, with the right re-initialisation.

``convert(model)`` turns every ``torch.nn.ReLU`` into ``leaky.nn.LeakyReLU``; ``to`` takes
any name or class of the spec table. ``to_torch(model)`` (also ``convert(model, "torch")``)
turns ``leaky.nn`` modules back into their ``torch.nn`` equivalents (same weights) for
export or sharing. Both walk the model the same way: each place where a module is replaced
is one record, and a module object used in several places is replaced by one new module.

Activations called as functions inside ``forward`` (``F.relu(x)``) cannot be swapped:
``convert`` finds them in the source of each ``forward`` and warns once per call site, at
its file and line. Calls of activation modules (``self.relu(x)``) are not such calls.

With ``reinit=True`` the layer feeding each activation is found from a forward pass on
``example_input`` (:func:`leaky.diagnosis.forward_order.trace_leaf_calls`); without one, only a
plain ``torch.nn.Sequential`` says for sure which layer that is, and any other activation
is named in a warning and its layer left alone rather than guessed.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from leaky import nn as leaky_nn
from leaky.core.init import init_layer_
from leaky.core.spec import ActivationSpec, get_spec
from leaky.diagnosis.forward_order import trace_leaf_calls
from leaky.diagnosis.monitor.functional_sites import FUNCTIONAL_ACTIVATIONS
from leaky.diagnosis.monitor.sites import (
    is_activation_like,
    monitored_spec,
    spec_for_class,
    spec_for_module,
)
from leaky.nn.factory import get_activation

__all__ = [
    "Change",
    "ForeignActivationWarning",
    "FunctionalActivationWarning",
    "ProducerNotFoundWarning",
    "convert",
    "find_functional_activations",
    "to_torch",
]


class FunctionalActivationWarning(UserWarning):
    """An activation called as a function in ``forward``: ``convert`` cannot swap it."""


class ProducerNotFoundWarning(UserWarning):
    """``reinit=True`` cannot tell which layer feeds an activation, so none is re-initialised."""


def _caller_stacklevel() -> int:
    # The ``stacklevel`` that makes the warning of the function calling this point at the
    # first line outside this module, however deep below ``convert`` or ``to_torch`` it is
    # raised (what ``warnings.warn(skip_file_prefixes=...)`` does from Python 3.12 on).
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    return level


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


@dataclass(frozen=True)
class _Call:
    """A call in a ``forward``'s source that may be a functional activation."""

    file: str
    line: int
    text: str
    # For ``self.a.b(...)``: ("a", "b"), resolved on each instance; None for the others
    # (``F.relu(x)``, ``torch.sigmoid(x)``, ``x.relu()``), which are always activations.
    attribute_path: tuple[str, ...] | None


@dataclass
class _Site:
    call: _Call
    class_name: str
    module_names: list[str]

    def __str__(self) -> str:
        names = self.module_names
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return f"{shown} ({self.class_name}.forward, line {self.call.line}): {self.call.text}"


def find_functional_activations(model: torch.nn.Module) -> list[str]:
    """Name every activation called as a function in the ``forward`` of the model's modules.

    Reads the source of each ``forward`` defined outside ``torch`` and ``leaky``: one entry
    per call site, naming the modules that run it, their class, the line and the call.
    ``F.relu(x)``, ``torch.sigmoid(x)`` and ``x.relu()`` count; ``self.relu(x)`` counts
    only when ``self.relu`` is such a function rather than an activation module.

    Examples:
        >>> find_functional_activations(torch.nn.Sequential(torch.nn.ReLU()))  # modules only
        []
    """
    return [str(site) for site in _functional_sites(model)]


def _functional_sites(model: torch.nn.Module) -> list[_Site]:
    sites: dict[_Call, _Site] = {}
    parsed: dict[type, list[_Call]] = {}
    for name, module in model.named_modules():
        cls = type(module)
        if cls.__module__.startswith(("torch.", "leaky.")) or is_activation_like(module):
            continue  # an activation module's own torch calls are that module, not sites
        if cls not in parsed:
            parsed[cls] = _calls_in_forward(cls)
        for call in parsed[cls]:
            if call.attribute_path is None or _is_activation_function(module, call.attribute_path):
                site = sites.setdefault(call, _Site(call, cls.__name__, []))
                site.module_names.append(name or cls.__name__)
    return sorted(sites.values(), key=lambda site: (site.call.file, site.call.line, site.call.text))


def _is_activation_function(module: torch.nn.Module, path: tuple[str, ...]) -> bool:
    # ``self.relu(x)`` is an activation module's call (swapped, hooked) unless the attribute
    # holds the function itself (``self.act = F.relu``).
    target: Any = module
    for attr in path:
        target = getattr(target, attr, None)
        if target is None:
            return False
    try:
        return target in FUNCTIONAL_ACTIVATIONS
    except TypeError:  # unhashable
        return False


def _calls_in_forward(cls: type) -> list[_Call]:
    try:
        source = inspect.getsource(cls.forward)
        first_line = inspect.getsourcelines(cls.forward)[1]
        file = inspect.getsourcefile(cls.forward) or inspect.getfile(cls.forward)
        tree = ast.parse(textwrap.dedent(source))
    except (OSError, TypeError, SyntaxError):
        return []
    function = tree.body[0] if tree.body else None
    arguments = getattr(function, "args", None)
    self_name = arguments.args[0].arg if arguments is not None and arguments.args else "self"
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        path = _attribute_path(func, self_name)
        if path is not None:
            pass  # self.<...>(...): what it is depends on the instance
        elif isinstance(func, ast.Attribute) and func.attr in _FUNCTION_NAMES:
            pass  # F.relu(x), torch.sigmoid(x), x.relu()
        elif isinstance(func, ast.Name) and func.id in _FUNCTION_NAMES:
            pass  # relu(x) after ``from torch.nn.functional import relu``
        else:
            continue
        line = first_line + node.lineno - 1
        calls.append(_Call(file, line, f"{ast.unparse(func)}(...)", path))
    return sorted(calls, key=lambda call: (call.line, call.text))


def _attribute_path(func: ast.expr, self_name: str) -> tuple[str, ...] | None:
    # ("a", "b") for ``self.a.b``, else None.
    path: list[str] = []
    while isinstance(func, ast.Attribute):
        path.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name) and func.id == self_name and path:
        return tuple(reversed(path))
    return None


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


def _preceding_weight_layer(parent: torch.nn.Module, child_name: str) -> torch.nn.Module | None:
    # The last module with a weight matrix registered before the child in its parent: a
    # good enough guess of where (device, dtype) a parameter-free activation should live.
    names = list(parent._modules)
    for name in reversed(names[: names.index(child_name)]):
        sibling = parent._modules[name]
        if sibling is None:
            continue
        candidates = [m for m in sibling.modules() if _has_weight_matrix(m)]
        if candidates:
            return candidates[-1]
    return None


def _has_weight_matrix(module: torch.nn.Module) -> bool:
    weight = module._parameters.get("weight")
    return isinstance(weight, torch.Tensor) and weight.dim() >= 2


def _optional(*names: str) -> tuple[type, ...]:
    return tuple(c for c in (getattr(torch.nn, n, None) for n in names) if isinstance(c, type))


# Layers that pass the previous layer's output on without mixing units across a weight
# matrix: between a weight layer and its activation in a Sequential, they leave the weight
# layer as the one that feeds the activation.
_PASS_THROUGH = _optional(
    *(f"{kind}{d}d" for kind in ("BatchNorm", "InstanceNorm", "LazyBatchNorm") for d in (1, 2, 3)),
    "SyncBatchNorm",
    "LayerNorm",
    "GroupNorm",
    "RMSNorm",
    "LocalResponseNorm",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "Identity",
    "Flatten",
    "Unflatten",
    *(
        f"{kind}{d}d"
        for kind in ("MaxPool", "AvgPool", "AdaptiveMaxPool", "AdaptiveAvgPool")
        for d in (1, 2, 3)
    ),
)


def _is_plain_sequential(module: torch.nn.Module) -> bool:
    # Registration order is call order only where Sequential's own forward runs.
    return isinstance(module, torch.nn.Sequential) and (
        type(module).forward is torch.nn.Sequential.forward
    )


def _in_call_order(parent: torch.nn.Module, parent_name: str) -> list[tuple[str, torch.nn.Module]]:
    # A plain Sequential's modules in the order it calls them, nested plain Sequentials
    # opened up.
    order = []
    for name, module in parent._modules.items():
        if module is None:
            continue
        full = f"{parent_name}.{name}" if parent_name else name
        if _is_plain_sequential(module):
            order += _in_call_order(module, full)
        else:
            order.append((full, module))
    return order


def _registered_producer(
    parent: torch.nn.Module, parent_name: str, child_name: str
) -> tuple[str, torch.nn.Module] | str:
    """The layer feeding ``parent.child_name`` by registration order, or why it is unclear."""
    if not _is_plain_sequential(parent):
        where = f"`{parent_name}`" if parent_name else "the model itself"
        return (
            f"its parent, {where}, is a {type(parent).__name__}, whose forward may call its "
            "modules in any order"
        )
    order = _in_call_order(parent, parent_name)
    full_child = f"{parent_name}.{child_name}" if parent_name else child_name
    position = [name for name, _ in order].index(full_child)
    for name, module in reversed(order[:position]):
        if _has_weight_matrix(module):
            return name, module
        if type(module) not in _PASS_THROUGH:
            return (
                f"`{name}` ({_class_path(type(module))}) comes between it and the nearest "
                "layer with a weight matrix"
            )
    return "no layer before it in its Sequential has a weight matrix"


def _producers_from_forward(
    model: torch.nn.Module, example_input: Any, activations: set[torch.nn.Module]
) -> dict[torch.nn.Module, list[tuple[str, torch.nn.Module] | None]]:
    # For each call of each activation, the layer with a weight matrix called last before
    # it (None when no such layer ran before it).
    producers: dict[torch.nn.Module, list[tuple[str, torch.nn.Module] | None]] = {}
    last: tuple[str, torch.nn.Module] | None = None
    for call in trace_leaf_calls(model, example_input):
        if call.module in activations:
            producers.setdefault(call.module, []).append(last)
        elif _has_weight_matrix(call.module):
            last = (call.name, call.module)
    return producers


def _class_path(cls: type) -> str:
    """``torch.nn.ReLU``, ``leaky.nn.LeakyReLU``: where the class is imported from."""
    for package, path in ((torch.nn, "torch.nn"), (leaky_nn, "leaky.nn")):
        if getattr(package, cls.__name__, None) is cls:
            return f"{path}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(module: torch.nn.Module) -> str:
    # repr() with the class's module: torch.nn.LeakyReLU and leaky.nn.LeakyReLU print alike.
    text, name = repr(module), type(module).__name__
    path = _class_path(type(module))
    return path + text[len(name) :] if text.startswith(name) else f"{text} ({path})"


def _matches(module: torch.nn.Module, only: tuple[type[torch.nn.Module], ...]) -> bool:
    # Another library's activation module (Hugging Face's NewGELUActivation) matches the
    # torch.nn classes of what it computes: only=(nn.GELU,) takes it too.
    if isinstance(module, only):
        return True
    foreign = monitored_spec(module) if is_activation_like(module) else None
    return foreign is not None and any(issubclass(cls, only) for cls in foreign.torch_modules)


def _should_swap(
    module: torch.nn.Module,
    spec: ActivationSpec,
    only: tuple[type[torch.nn.Module], ...],
    negative_slope: float | None,
) -> bool:
    if not _matches(module, only):
        return False
    if type(module) is not spec.module_class():
        return True
    # Already the target class: only an explicit slope that differs changes anything.
    if negative_slope is None or spec.slope_param is None:
        return False
    if isinstance(module, torch.nn.PReLU):
        return not bool((module.weight.detach() == negative_slope).all())
    return getattr(module, "negative_slope", None) != negative_slope


def _build(
    spec: ActivationSpec,
    old: torch.nn.Module,
    negative_slope: float | None,
    channels: int | None,
) -> torch.nn.Module:
    old_spec = spec_for_module(old)
    if old_spec is spec:
        # Same activation, other implementation (torch.nn -> leaky.nn): keep every option
        # and the learned weights, except a slope given explicitly.
        options = {k: getattr(old, k) for k in spec.defaults if hasattr(old, k)}
        if spec.name == "prelu":
            options["num_parameters"] = old.num_parameters
            options.update(device=old.weight.device, dtype=old.weight.dtype)
        explicit = negative_slope if spec.slope_param is not None else None
        if spec.slope_param is not None and explicit is not None:
            options[spec.slope_param] = explicit
            if spec.name == "leaky_relu" and explicit < 0:
                options["inplace"] = False  # a negative slope cannot run in place
        new = get_activation(spec.name, **options)
        if not (explicit is not None and spec.name == "prelu"):  # PReLU's weight is its slope
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


def _torch_equivalent(module: torch.nn.Module) -> torch.nn.Module | None:

    if isinstance(module, leaky_nn.BiasLeakyReLU):
        warnings.warn(
            f"{module!r} has no torch.nn equivalent (a fused bias + activation + gain) and "
            "stays a leaky module",
            UserWarning,
            stacklevel=_caller_stacklevel(),
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


@dataclass(frozen=True)
class _Swap:
    """One place where a module was replaced: ``parent``'s child ``name`` was ``old``, is ``new``.

    A module object used in several places gives one record per place, all with the same
    ``old`` and ``new``. ``parent_name`` and ``parent`` also tell re-initialisation which
    layer comes before the activation in a Sequential.
    """

    parent_name: str  # "" for the model itself
    parent: torch.nn.Module
    name: str  # the attribute, or the index in a Sequential / ModuleList
    old: torch.nn.Module
    new: torch.nn.Module

    @property
    def place(self) -> str:
        return f"{self.parent_name}.{self.name}" if self.parent_name else self.name


# Given (old module, its parent, its name in the parent): the module to put in its place,
# or None to leave it.
_Replacement = Callable[[torch.nn.Module, torch.nn.Module, str], torch.nn.Module | None]


def _swap_modules(model: torch.nn.Module, replacement: _Replacement) -> list[_Swap]:
    # Every child of every module, in registration order, replaced in place. A module object
    # gets one new module, built at its first place and put in all its places.
    parents = list(model.named_modules(remove_duplicate=False))
    built: dict[torch.nn.Module, torch.nn.Module] = {}
    swaps = []
    for parent_name, parent in parents:
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            new = built.get(child)
            if new is None:
                new = replacement(child, parent, name)
                if new is None:
                    continue
                _match_placement(new, child, parent, name)
                built[child] = new
            setattr(parent, name, new)
            swaps.append(_Swap(parent_name, parent, name, child, new))
    return swaps


def _by_module(swaps: list[_Swap]) -> list[list[_Swap]]:
    # The records of each replaced module object together, in the order first met.
    groups: dict[torch.nn.Module, list[_Swap]] = {}
    for swap in swaps:
        groups.setdefault(swap.old, []).append(swap)
    return list(groups.values())


def _change(group: list[_Swap], reinitialised: tuple[str, ...] = ()) -> Change:
    places = tuple(swap.place for swap in group)
    return Change(places, _describe(group[0].old), _describe(group[0].new), reinitialised)


def _check_model(model: object) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")


def _warn_functional_sites(model: torch.nn.Module) -> None:
    for site in _functional_sites(model):
        warnings.warn_explicit(
            f"{site} is called as a function and cannot be swapped by convert(); "
            "replace it with an activation module to convert it",
            FunctionalActivationWarning,
            site.call.file,
            site.call.line,
        )


def convert(
    model: torch.nn.Module,
    to: str | type[torch.nn.Module] = "leaky_relu",
    *,
    negative_slope: float | None = None,
    only: tuple[type[torch.nn.Module], ...] = (torch.nn.ReLU,),
    reinit: bool = False,
    example_input: Any = None,
) -> list[Change]:
    """Swap activation modules in place throughout ``model``; return what changed.

    Args:
        model: any module; nested Sequential, ModuleList, ModuleDict and custom classes are
            walked, and a module object used in several places is replaced by one new
            module used in the same places.
        to: a spec name or class (``"leaky_relu"``, ``"prelu"``, ``leaky.nn.PReLU``...), or
            ``"torch"`` to turn ``leaky.nn`` modules back into ``torch.nn`` ones with the
            same weights (:func:`to_torch`; the other arguments are then ignored).
            Default: ``"leaky_relu"``
        negative_slope: slope of the new Leaky ReLU, or PReLU's initial slope. Given, it
            wins over the old module's slope, also when the old module already is a Leaky
            ReLU or PReLU (even of the target class). None keeps the old module's slope
            when it has one, else the spec default (0.01 for Leaky ReLU, 0.25 for PReLU).
            Default: ``None``
        only: classes to replace (ignored for ``to="torch"``). Default: ``(torch.nn.ReLU,)``
        reinit: re-initialise the layer feeding each converted activation with
            Kaiming-normal weights for the new activation's gain, and zero its bias.
            Default: ``False``
        example_input: an input for ``model``'s forward (a tensor, a tuple of positional
            arguments or a dict of keyword arguments), used with ``reinit``: one forward
            pass on it (without gradients; buffers and random state put back) shows which
            layer with a weight matrix runs last before each call of each activation, and
            that layer is the one re-initialised (where two branches meet before the
            activation, as in a residual sum, the one whose weight layer ran last). Without
            it only a plain
            ``torch.nn.Sequential`` tells (the nearest weight layer before the activation,
            with only normalisation, dropout or pooling between them); every other
            activation is named in a :class:`ProducerNotFoundWarning` and its layer is
            left alone. Default: ``None``

    ``inplace=True`` is kept where the new module supports it. PReLU gets one slope per
    channel when the preceding sibling says how many (``out_features``,
    ``out_channels``), otherwise one shared slope.

    Raises:
        ValueError: when the forward pass on ``example_input`` fails; nothing is swapped.

    Warns:
        FunctionalActivationWarning: once for each call site of an activation function
            (``F.relu(x)``, ``x.sigmoid()``) in a ``forward``, which cannot be swapped,
            at that call's file and line.
        ProducerNotFoundWarning: with ``reinit``, for each activation whose feeding layer
            cannot be told.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> [str(change) for change in convert(model, negative_slope=0.1, reinit=True)]
        ['1: torch.nn.ReLU() -> leaky.nn.LeakyReLU(negative_slope=0.1) (re-initialised 0)']
    """
    _check_model(model)
    if to == "torch":
        return to_torch(model)
    spec = _target(to)
    if not (isinstance(only, tuple) and only):
        raise TypeError(f"Expected `only` to be a non-empty tuple of module classes, got {only!r}")

    def replacement(
        old: torch.nn.Module, parent: torch.nn.Module, name: str
    ) -> torch.nn.Module | None:
        if not _should_swap(old, spec, only, negative_slope):
            return None
        return _build(spec, old, negative_slope, _channels(parent, name))

    traced = None
    if reinit and example_input is not None:
        # Before anything is swapped, so that a failing forward pass changes nothing. Every
        # module but the model itself is some module's child, so these are what gets swapped.
        targets = {
            module
            for name, module in model.named_modules()
            if name and _should_swap(module, spec, only, negative_slope)
        }
        traced = _producers_from_forward(model, example_input, targets)
    # Feeding layers are looked for once every swap is done: an activation standing
    # between a layer and the next activation is named by its new class.
    groups = _by_module(_swap_modules(model, replacement))
    changes = [
        _change(group, _reinitialise(spec, group, traced) if reinit else ()) for group in groups
    ]
    _warn_foreign_left(model, only)
    _warn_functional_sites(model)
    return changes


class ForeignActivationWarning(UserWarning):
    """Activation modules of other libraries that ``convert`` left, each named with why."""


def _warn_foreign_left(model: torch.nn.Module, only: tuple[type[torch.nn.Module], ...]) -> None:
    left = []
    for name, module in model.named_modules():
        if not is_activation_like(module) or _matches(module, only):
            continue
        foreign = monitored_spec(module)
        why = (
            f"computes {foreign.title}, not one of only={_class_names(only)}"
            if foreign is not None
            else "leaky does not know what it computes"
        )
        left.append(f"{name} ({type(module).__name__}: {why})")
    if left:
        warnings.warn(
            f"convert() left {len(left)} activation module(s) of other libraries: "
            + "; ".join(left)
            + ". Pass their torch.nn class in only= (nn.GELU for a GELU) to swap them.",
            ForeignActivationWarning,
            stacklevel=_caller_stacklevel(),
        )


def _class_names(classes: tuple[type, ...]) -> str:
    return "(" + ", ".join(cls.__name__ for cls in classes) + ")"


def to_torch(model: torch.nn.Module) -> list[Change]:
    """Turn ``leaky.nn`` activation modules in ``model`` back into ``torch.nn`` ones, in place.

    ``leaky.nn.LeakyReLU``, ``PReLU`` and ``RReLU`` become the ``torch.nn`` class of the
    same name with the same options and weights (same ``state_dict``), device, dtype and
    train / eval mode, for export or for sharing the model with code that does not
    install ``leaky``. A module object used in several places is replaced by one new
    module used in the same places. ``convert(model, "torch")`` does the same.

    Args:
        model: any module; nested containers and custom classes are walked.

    Returns:
        One :class:`Change` per replaced module object.

    Warns:
        UserWarning: for each ``leaky.nn.BiasLeakyReLU``, which has no ``torch.nn``
            equivalent and stays.
        FunctionalActivationWarning: as in :func:`convert`.

    Examples:
        >>> from torch import nn
        >>> from leaky.nn import LeakyReLU
        >>> model = nn.Sequential(nn.Linear(4, 8), LeakyReLU(0.2))
        >>> [str(change) for change in to_torch(model)]
        ['1: leaky.nn.LeakyReLU(negative_slope=0.2) -> torch.nn.LeakyReLU(negative_slope=0.2)']
        >>> type(model[1]) is nn.LeakyReLU
        True
    """
    _check_model(model)
    swaps = _swap_modules(model, lambda old, _parent, _name: _torch_equivalent(old))
    changes = [_change(group) for group in _by_module(swaps)]
    _warn_functional_sites(model)
    return changes


def _reinitialise(
    spec: ActivationSpec,
    group: list[_Swap],
    traced: dict[torch.nn.Module, list[tuple[str, torch.nn.Module] | None]] | None,
) -> tuple[str, ...]:
    # Re-initialise the layers feeding one swapped module (all its places); their names.
    old, new = group[0].old, group[0].new
    places = ", ".join(swap.place for swap in group)
    layers, problem = (
        _traced_layers(traced.get(old)) if traced is not None else _registered_layers(group)
    )
    params = _init_params(spec, new)
    names: list[str] = []
    for layer_name, layer in layers:
        if layer_name not in names:
            init_layer_(layer, spec.name, **params)
            names.append(layer_name)
    if problem:
        warnings.warn(
            f"reinit: cannot tell which layer feeds `{places}` ({_describe(old)}): {problem}. "
            "It was swapped, but no layer was re-initialised for it"
            + (
                ""
                if traced is not None
                else "; pass `example_input=` (an input for the model's forward) to "
                "find the layer from a forward pass"
            ),
            ProducerNotFoundWarning,
            stacklevel=_caller_stacklevel(),
        )
    return tuple(names)


def _traced_layers(
    producers: list[tuple[str, torch.nn.Module] | None] | None,
) -> tuple[list[tuple[str, torch.nn.Module]], str]:
    if producers is None:
        return [], "it was not called in the forward pass on `example_input`"
    found = [p for p in producers if p is not None]
    if len(found) < len(producers):
        return found, "no layer with a weight matrix ran before it in the forward pass"
    return found, ""


def _registered_layers(group: list[_Swap]) -> tuple[list[tuple[str, torch.nn.Module]], str]:
    found, problems = [], []
    for swap in group:
        result = _registered_producer(swap.parent, swap.parent_name, swap.name)
        if isinstance(result, str):
            problems.append(result)
        else:
            found.append(result)
    return found, "; ".join(dict.fromkeys(problems))


def _match_placement(
    new: torch.nn.Module, old: torch.nn.Module, parent: torch.nn.Module, child_name: str
) -> None:
    # The new module lives where the old one (or, for a parameter-free one, the layer
    # before it) lives, with the same dtype and the same train / eval mode.
    reference = next(iter(old.parameters()), None)
    if reference is None:
        layer = _preceding_weight_layer(parent, child_name)
        reference = None if layer is None else layer.weight
    if reference is not None:
        new.to(device=reference.device, dtype=reference.dtype)
    new.train(old.training)


def _init_params(spec: ActivationSpec, module: torch.nn.Module) -> dict[str, Any]:
    if spec.slope_param is None:
        return {}
    return {spec.slope_param: _slope_of(module)}
