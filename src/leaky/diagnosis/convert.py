"""Swap a model's activations in place, with the right re-initialisation.

``convert(model)`` turns every ``torch.nn.ReLU`` into ``leaky.nn.LeakyReLU``; ``to`` takes
any name or class of the spec table, and ``to="torch"`` turns ``leaky.nn`` modules back
into their ``torch.nn`` equivalents (same weights) for export or sharing.

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
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from leaky.core.init import init_layer_
from leaky.core.spec import ActivationSpec, get_spec
from leaky.diagnosis.forward_order import trace_leaf_calls
from leaky.diagnosis.monitor.functional_sites import FUNCTIONAL_ACTIVATIONS
from leaky.diagnosis.monitor.sites import spec_for_class, spec_for_module
from leaky.nn.factory import get_activation

__all__ = [
    "Change",
    "FunctionalActivationWarning",
    "ProducerNotFoundWarning",
    "convert",
    "find_functional_activations",
]


class FunctionalActivationWarning(UserWarning):
    """An activation called as a function in ``forward``: ``convert`` cannot swap it."""


class ProducerNotFoundWarning(UserWarning):
    """``reinit=True`` cannot tell which layer feeds an activation, so none is re-initialised."""


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
        if cls.__module__.startswith(("torch.", "leaky.")):
            continue
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
    model: torch.nn.Module, example_input: Any, activations: set[int]
) -> dict[int, list[tuple[str, torch.nn.Module] | None]]:
    # For each call of each activation, the layer with a weight matrix called last before
    # it (None when no such layer ran before it).
    producers: dict[int, list[tuple[str, torch.nn.Module] | None]] = {}
    last: tuple[str, torch.nn.Module] | None = None
    for call in trace_leaf_calls(model, example_input):
        key = id(call.module)
        if key in activations:
            producers.setdefault(key, []).append(last)
        elif _has_weight_matrix(call.module):
            last = (call.name, call.module)
    return producers


def _class_path(cls: type) -> str:
    """``torch.nn.ReLU``, ``leaky.nn.LeakyReLU``: where the class is imported from."""
    import leaky.nn

    for package, path in ((torch.nn, "torch.nn"), (leaky.nn, "leaky.nn")):
        if getattr(package, cls.__name__, None) is cls:
            return f"{path}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(module: torch.nn.Module) -> str:
    # repr() with the class's module: torch.nn.LeakyReLU and leaky.nn.LeakyReLU print alike.
    text, name = repr(module), type(module).__name__
    path = _class_path(type(module))
    return path + text[len(name) :] if text.startswith(name) else f"{text} ({path})"


def _should_swap(
    module: torch.nn.Module,
    spec: ActivationSpec,
    only: tuple[type[torch.nn.Module], ...],
    negative_slope: float | None,
) -> bool:
    if not isinstance(module, only):
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
        explicit = negative_slope is not None and spec.slope_param is not None
        if explicit:
            options[spec.slope_param] = negative_slope
            if spec.name == "leaky_relu" and negative_slope < 0:  # type: ignore[operator]
                options["inplace"] = False  # a negative slope cannot run in place
        new = get_activation(spec.name, **options)
        if not (explicit and spec.name == "prelu"):  # PReLU's weight is its slope
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
    example_input: Any = None,
) -> list[Change]:
    """Swap activation modules in place throughout ``model``; return what changed.

    Args:
        model: any module; nested Sequential, ModuleList, ModuleDict and custom classes are
            walked, and a module object used in several places is replaced by one new
            module used in the same places.
        to: a spec name or class (``"leaky_relu"``, ``"prelu"``, ``leaky.nn.PReLU``...), or
            ``"torch"`` to turn ``leaky.nn`` modules back into ``torch.nn`` ones with the
            same weights. Default: ``"leaky_relu"``
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
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")
    back_to_torch = to == "torch"
    spec = None if back_to_torch else _target(to)  # type: ignore[arg-type]
    if not back_to_torch and not (isinstance(only, tuple) and only):
        raise TypeError(f"Expected `only` to be a non-empty tuple of module classes, got {only!r}")
    parents = [(name, module) for name, module in model.named_modules(remove_duplicate=False)]
    traced = None
    if reinit and not back_to_torch and example_input is not None:
        # Before anything is swapped, so that a failing forward pass changes nothing.
        targets = {
            id(child)
            for _, parent in parents
            for child in parent._modules.values()
            if child is not None and _should_swap(child, spec, only, negative_slope)  # type: ignore[arg-type]
        }
        traced = _producers_from_forward(model, example_input, targets)
    replaced: dict[int, torch.nn.Module] = {}
    places: dict[int, list[str]] = {}
    slots: dict[int, list[tuple[str, torch.nn.Module, str]]] = {}
    olds: dict[int, torch.nn.Module] = {}
    for parent_name, parent in parents:
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            key = id(child)
            if key not in replaced:
                if back_to_torch:
                    new = _to_torch(child)
                elif _should_swap(child, spec, only, negative_slope):  # type: ignore[arg-type]
                    new = _build(spec, child, negative_slope, _channels(parent, child_name))  # type: ignore[arg-type]
                else:
                    new = None
                if new is None:
                    continue
                _match_placement(new, child, parent, child_name)
                replaced[key], olds[key] = new, child
            full_name = f"{parent_name}.{child_name}" if parent_name else child_name
            if full_name in places.setdefault(key, []):
                continue
            places[key].append(full_name)
            slots.setdefault(key, []).append((parent_name, parent, child_name))
            setattr(parent, child_name, replaced[key])
    reinitialised: dict[int, list[str]] = {key: [] for key in replaced}
    if reinit and not back_to_torch:
        for key, new in replaced.items():
            layers, problem = (
                _traced_layers(traced.get(key))
                if traced is not None
                else _registered_layers(slots[key])
            )
            params = _init_params(spec, new)  # type: ignore[arg-type]
            for layer_name, layer in layers:
                if layer_name not in reinitialised[key]:
                    init_layer_(layer, spec.name, **params)  # type: ignore[union-attr]
                    reinitialised[key].append(layer_name)
            if problem:
                warnings.warn(
                    f"reinit: cannot tell which layer feeds `{', '.join(places[key])}` "
                    f"({_describe(olds[key])}): {problem}. It was swapped, but no layer was "
                    "re-initialised for it"
                    + (
                        ""
                        if traced is not None
                        else "; pass `example_input=` (an input for the model's forward) to "
                        "find the layer from a forward pass"
                    ),
                    ProducerNotFoundWarning,
                    stacklevel=2,
                )
    for site in _functional_sites(model):
        warnings.warn_explicit(
            f"{site} is called as a function and cannot be swapped by convert(); "
            "replace it with an activation module to convert it",
            FunctionalActivationWarning,
            site.call.file,
            site.call.line,
        )
    return [
        Change(tuple(places[key]), _describe(olds[key]), _describe(new), tuple(reinitialised[key]))
        for key, new in replaced.items()
    ]


def _traced_layers(
    producers: list[tuple[str, torch.nn.Module] | None] | None,
) -> tuple[list[tuple[str, torch.nn.Module]], str]:
    if producers is None:
        return [], "it was not called in the forward pass on `example_input`"
    found = [p for p in producers if p is not None]
    if len(found) < len(producers):
        return found, "no layer with a weight matrix ran before it in the forward pass"
    return found, ""


def _registered_layers(
    slots: list[tuple[str, torch.nn.Module, str]],
) -> tuple[list[tuple[str, torch.nn.Module]], str]:
    found, problems = [], []
    for parent_name, parent, child_name in slots:
        result = _registered_producer(parent, parent_name, child_name)
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
