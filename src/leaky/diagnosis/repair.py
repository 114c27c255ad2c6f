"""Recycling units that stopped contributing: ReDo's repair, done on any traced model.

Sokar et al. (2023, "The Dormant Neuron Phenomenon in Deep Reinforcement Learning") recycle
dormant units during training: each unit's incoming weights are drawn again and its
outgoing weights set to zero, so the network computes the same function right after the
repair, while the unit can learn again from the next step. :func:`recycle` does that for
the units a :class:`~leaky.diagnosis.monitor.Monitor` names (dead or τ-dormant):

- the *incoming* layer (the ``Linear`` or ``Conv`` whose output the activation reads,
  through one ``BatchNorm`` at most) gets the units' rows (output channels) drawn from
  ``N(0, gain / sqrt(fan_in))`` with the activation's own gain (He for ReLU, Leaky ReLU's
  with its slope, ...) and their biases set to 0; a ``BatchNorm`` between gets those
  channels' scale 1, shift 0 and running statistics 0 and 1;
- the *outgoing* layer (the ``Linear`` or ``Conv`` that reads the activation's output,
  through dropout, pooling or a ``Flatten`` that keeps each channel's values together)
  gets the matching columns (input channels) set to 0;
- with ``optimizer``, every state of those parameters that has their shape (Adam's
  moments, SGD's momentum) is zeroed at the same places.

The data flow is read from one forward pass on an example input (tensor identity between
module calls, and a call watcher for torch functions called outside the modules). Where
it is not one layer to one activation to one layer, nothing is changed and the error
names what is in the way: a residual addition that also reads a layer's output, an
attention block, a module called twice, an activation called as a function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from leaky.core.init import calculate_gain
from leaky.diagnosis.forward_order import run_untouched
from leaky.diagnosis.monitor.sites import monitored_spec

__all__ = ["RecycleError", "Recycled", "recycle"]

_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
# Between an activation and the layer that reads it: modules that keep each unit's values
# in that unit's place (a Flatten too, handled on its own).
_PASS_THROUGH = (
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
    torch.nn.Identity,
    torch.nn.modules.pooling._MaxPoolNd,
    torch.nn.modules.pooling._AvgPoolNd,
    torch.nn.modules.pooling._AdaptiveAvgPoolNd,
    torch.nn.modules.pooling._AdaptiveMaxPoolNd,
)


class RecycleError(ValueError):
    """The units of a site cannot be recycled safely; nothing was changed."""


@dataclass(frozen=True)
class Recycled:
    """What :func:`recycle` changed for one activation site.

    Attributes:
        site: the activation module's name.
        units: the recycled units (features or channels).
        incoming: the layer whose rows (output channels) were drawn again.
        batch_norm: the BatchNorm between, whose channels were reset (None: none).
        outgoing: the layer whose columns (input channels) were set to 0.
        outgoing_columns: those columns (a unit spans several after a Flatten).
        optimizer_states: optimizer states reset, as ``"layer.param:state"``.
    """

    site: str
    units: tuple[int, ...]
    incoming: str
    batch_norm: str | None
    outgoing: str
    outgoing_columns: tuple[int, ...]
    optimizer_states: tuple[str, ...] = ()


@dataclass
class _Node:
    # One call during the traced pass: a module (name set) or a torch function.
    label: str
    module: torch.nn.Module | None
    inputs: list[int]
    outputs: list[int]
    shapes: dict[int, torch.Size]


@dataclass(frozen=True)
class _Plan:
    site: str
    activation: torch.nn.Module
    incoming: tuple[str, torch.nn.Module]
    batch_norm: tuple[str, torch.nn.Module] | None
    outgoing: tuple[str, torch.nn.Module]
    span: int  # outgoing columns per unit (the spatial size a Flatten folded in), else 1


def recycle(
    model: torch.nn.Module,
    units: Mapping[str, Sequence[int]],
    example_input: Any,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> list[Recycled]:
    """Re-initialise the given units' incoming weights and zero their outgoing ones.

    Args:
        model: the network; changed in place.
        units: activation site name -> unit indices, as a Monitor report's
            ``dead_units`` or ``dormant_units`` give them.
        example_input: an input the model's forward accepts (a tensor, a tuple of
            positional arguments or a dict of keyword arguments), to trace the data flow.
        optimizer: its states of the changed parameters are zeroed at the same places.
        generator: the random numbers of the new incoming weights. Default: torch's global one

    Returns:
        one :class:`Recycled` per site with units to recycle.

    Raises:
        RecycleError: a site is not an activation module that runs once, between one
            Linear / Conv layer (and at most a BatchNorm) and one layer that reads it
            alone; the message names what is in the way. Every site is checked before
            anything changes.

    Examples:
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> [done] = recycle(model, {"1": [2]}, torch.randn(5, 3))
        >>> done.incoming, done.outgoing, model[2].weight[:, 2].tolist()
        ('0', '2', [0.0, 0.0])
    """
    wanted = {site: sorted({int(u) for u in chosen}) for site, chosen in units.items() if chosen}
    if not wanted:
        return []
    nodes = _trace(model, example_input)
    plans = [_plan(model, nodes, site) for site in wanted]  # every site checked first
    for plan in plans:
        _check_units(plan, wanted[plan.site])
    return [_apply(plan, wanted[plan.site], optimizer, generator) for plan in plans]


def _trace(model: torch.nn.Module, example_input: Any) -> list[_Node]:
    names = {id(m): n for n, m in model.named_modules()}
    nodes: list[_Node] = []
    depth = [0]  # leaf modules running: torch calls inside them are theirs

    def tensors(values: Any) -> list[torch.Tensor]:
        found: list[torch.Tensor] = []
        for value in values:
            if isinstance(value, torch.Tensor):
                found.append(value)
            elif isinstance(value, list | tuple):
                found += tensors(value)
            elif isinstance(value, dict):
                found += tensors(value.values())
        return found

    keep: list[torch.Tensor] = []  # every tensor seen stays alive: no id is reused

    def node(label: str, module: Any, inputs: Any, outputs: Any) -> _Node:
        ins, outs = tensors(inputs), tensors(outputs)
        keep.extend((*ins, *outs))
        shapes = {id(t): t.shape for t in (*ins, *outs)}
        return _Node(label, module, [id(t) for t in ins], [id(t) for t in outs], shapes)

    stack: list[str] = []  # modules running now, outermost first

    class Calls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            if depth[0] == 0 and not _is_bookkeeping(func):
                where = f"in {stack[-1]}" if stack and stack[-1] else "in the top-level forward"
                label = f"{getattr(func, '__name__', str(func))} (a torch call {where})"
                nodes.append(node(label, None, (*args, *(kwargs or {}).values()), (out,)))
            return out

    leaves = {id(m) for m in model.modules() if next(iter(m.children()), None) is None}

    def before(module: torch.nn.Module, args: Any) -> None:
        stack.append(names.get(id(module), type(module).__name__))
        depth[0] += id(module) in leaves

    def after(module: torch.nn.Module, args: Any, output: Any) -> None:
        stack.pop()
        if id(module) in leaves:
            depth[0] -= 1
            nodes.append(
                node(names.get(id(module), type(module).__name__), module, args, (output,))
            )

    handles = [m.register_forward_pre_hook(before) for m in model.modules()]
    handles += [m.register_forward_hook(after, always_call=True) for m in model.modules()]
    try:
        with Calls():
            run_untouched(model, example_input)
    finally:
        for handle in handles:
            handle.remove()
    return nodes


def _is_bookkeeping(func: Any) -> bool:
    # Attribute reads and shape queries, which move no values.
    name = getattr(func, "__name__", "")
    return name in {"__get__", "size", "dim", "numel", "shape", "__len__", "stride"}


def _plan(model: torch.nn.Module, nodes: list[_Node], site: str) -> _Plan:
    modules = dict(model.named_modules())
    activation = modules.get(site)
    if activation is None:
        raise RecycleError(
            f"Expected {site!r} to name an activation module of the model (a site the "
            "Monitor reports), but the model has no module of that name; functional sites "
            "(F.relu in forward) cannot be recycled: use an activation module there"
        )
    if monitored_spec(activation) is None:
        raise RecycleError(
            f"Expected {site!r} to be an activation module, but it is a {type(activation).__name__}"
        )
    calls = [n for n in nodes if n.module is activation]
    if len(calls) != 1:
        raise RecycleError(
            f"Cannot recycle {site!r}: it ran {len(calls)} times in the traced forward pass; "
            "a module used at several places has no single layer before and after it"
        )
    call = calls[0]
    at = nodes.index(call)
    in_place = call.inputs[0] == call.outputs[0]
    # Backwards: the activation's input, from a BatchNorm at most, from a Linear / Conv.
    reader, source = call, _producer(nodes, call.inputs[0])
    batch_norm = None
    if source is not None and isinstance(source.module, _NORMS):
        _only_reader(nodes, source, reader, site, before=at if in_place else None)
        reader, batch_norm = source, (source.label, source.module)
        source = _producer(nodes, source.inputs[0])
    if source is None or not isinstance(source.module, _LAYERS):
        what = "no module" if source is None else repr(source.label)
        raise RecycleError(
            f"Cannot recycle {site!r}: its input comes from {what}, not a Linear or Conv "
            "layer (through one BatchNorm at most), so there are no incoming weights to draw"
        )
    in_place_here = in_place and batch_norm is None
    _only_reader(nodes, source, reader, site, before=at if in_place_here else None)
    # Forwards: through dropout and pooling, and a Flatten, to one Linear / Conv.
    current, span = call, 1
    while True:
        after = nodes.index(current)
        readers = [
            n for n in nodes[after + 1 :] if current.outputs[0] in n.inputs and n is not current
        ]
        first = readers[0] if readers else None
        if (
            first is not None
            and isinstance(first.module, _PASS_THROUGH)
            and first.outputs[:1] == [current.outputs[0]]
        ):  # a dropout or identity that returned its input: later readers read it through
            current = first
            continue
        if len(readers) != 1:
            names = ", ".join(repr(n.label) for n in readers) or "nothing (a model output)"
            raise RecycleError(
                f"Cannot recycle {site!r}: its output (through {current.label!r}) is read by "
                f"{names}; recycling needs exactly one layer reading it alone"
            )
        reader = readers[0]
        folded = _flattened(reader)
        if isinstance(reader.module, _PASS_THROUGH):
            current = reader
        elif folded is not None:
            span *= folded
            current = reader
        elif isinstance(reader.module, _LAYERS):
            return _Plan(site, activation, (source.label, source.module), batch_norm,
                         (reader.label, reader.module), span)  # fmt: skip
        else:
            raise RecycleError(
                f"Cannot recycle {site!r}: its output goes to {reader.label!r}, which is "
                "not a Linear or Conv layer (nor dropout, pooling or a flatten before one)"
            )


def _flattened(node: _Node) -> int | None:
    # A Flatten module or a torch flatten / view / reshape taking (N, C, *rest) to
    # (N, C * prod(rest)): each channel's values stay together; how many of them.
    is_flatten = isinstance(node.module, torch.nn.Flatten)
    if node.module is None:
        is_flatten = node.label.split()[0] in {"flatten", "view", "reshape"}
    if not is_flatten or not node.outputs:
        return None
    before, after = node.shapes[node.inputs[0]], node.shapes[node.outputs[0]]
    if len(before) >= 2 and tuple(after) == (before[0], math.prod(before[1:])):
        return math.prod(before[2:])
    return None


def _producer(nodes: list[_Node], tensor: int) -> _Node | None:
    made = [n for n in nodes if tensor in n.outputs and tensor not in n.inputs]
    return made[-1] if made else None


def _only_reader(
    nodes: list[_Node], made_by: _Node, reader: _Node, site: str, before: int | None
) -> None:
    # Nobody but ``reader`` reads ``made_by``'s output; for an in-place activation at
    # position ``before``, later readers read its output (the same tensor) and are fine.
    tensor = made_by.outputs[0]
    readers = [n for n in nodes[: before if before is not None else len(nodes)]
               if tensor in n.inputs]  # fmt: skip
    others = [n for n in readers if n is not reader and not _returns_its_input(n, tensor)]
    if others:
        names = ", ".join(repr(n.label) for n in others)
        raise RecycleError(
            f"Cannot recycle {site!r}: the output of {made_by.label!r} is also read by "
            f"{names} (a residual or shared path), which new incoming weights would change"
        )


def _returns_its_input(node: _Node, tensor: int) -> bool:
    # An identity or a dropout that handed back the very tensor it got: no new path.
    return isinstance(node.module, _PASS_THROUGH) and node.outputs[:1] == [tensor]


def _check_units(plan: _Plan, units: list[int]) -> None:
    layer = plan.incoming[1]
    count = layer.weight.shape[0]
    bad = [u for u in units if not 0 <= u < count]
    if bad:
        raise RecycleError(
            f"Cannot recycle units {bad} at {plan.site!r}: it has {count} units (0..{count - 1})"
        )
    outgoing = plan.outgoing[1]
    groups = getattr(outgoing, "groups", 1)
    reads = outgoing.weight.shape[1] * groups
    if groups != 1 or reads != count * plan.span:
        raise RecycleError(
            f"Cannot recycle {plan.site!r}: {plan.outgoing[0]!r} reads {reads} inputs, not "
            f"its {count} units x {plan.span} (grouped or reshaped in between)"
        )


@torch.no_grad()
def _apply(
    plan: _Plan,
    units: list[int],
    optimizer: torch.optim.Optimizer | None,
    generator: torch.Generator | None,
) -> Recycled:
    index = torch.tensor(units, dtype=torch.long)
    layer = plan.incoming[1]
    spec = monitored_spec(plan.activation)
    assert spec is not None
    slope = getattr(plan.activation, "negative_slope", None)
    if isinstance(plan.activation, torch.nn.PReLU):
        slope = float(plan.activation.weight.mean())
    gain = calculate_gain(spec.name, slope)
    fan_in = layer.weight[0].numel()
    drawn = torch.empty((len(units), *layer.weight.shape[1:]), dtype=layer.weight.dtype)
    drawn.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)
    layer.weight[index] = drawn.to(layer.weight.device)
    changed: list[tuple[str, torch.Tensor, int, torch.Tensor]] = [
        (f"{plan.incoming[0]}.weight", layer.weight, 0, index)
    ]
    if layer.bias is not None:
        layer.bias[index] = 0.0
        changed.append((f"{plan.incoming[0]}.bias", layer.bias, 0, index))
    if plan.batch_norm is not None:
        name, norm = plan.batch_norm
        if norm.affine:
            norm.weight[index] = 1.0
            norm.bias[index] = 0.0
            changed += [(f"{name}.weight", norm.weight, 0, index)]
            changed += [(f"{name}.bias", norm.bias, 0, index)]
        if norm.running_mean is not None:
            norm.running_mean[index] = 0.0
            norm.running_var[index] = 1.0
    columns = (index[:, None] * plan.span + torch.arange(plan.span)).flatten()
    outgoing = plan.outgoing[1]
    outgoing.weight[:, columns] = 0.0
    changed.append((f"{plan.outgoing[0]}.weight", outgoing.weight, 1, columns))
    states = _reset_optimizer(optimizer, changed) if optimizer is not None else []
    return Recycled(
        site=plan.site,
        units=tuple(units),
        incoming=plan.incoming[0],
        batch_norm=None if plan.batch_norm is None else plan.batch_norm[0],
        outgoing=plan.outgoing[0],
        outgoing_columns=tuple(columns.tolist()),
        optimizer_states=tuple(states),
    )


def _reset_optimizer(
    optimizer: torch.optim.Optimizer, changed: list[tuple[str, torch.Tensor, int, torch.Tensor]]
) -> list[str]:
    reset = []
    for name, parameter, dim, index in changed:
        for key, value in optimizer.state.get(parameter, {}).items():
            if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                value.index_fill_(dim, index.to(value.device), 0.0)
                reset.append(f"{name}:{key}")
    return reset
