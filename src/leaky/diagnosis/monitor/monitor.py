"""``Monitor``: dead units, saturation and gradient flow in any ``torch.nn.Module``.

Attach it, train or evaluate as usual, then ask for a report::

    with Monitor(model) as monitor:
        for x, y in batches:
            loss_fn(model(x), y).backward()
    print(monitor.report())

Every activation module the spec table knows (``torch.nn`` and ``leaky.nn``) is hooked,
and so are other libraries' activation modules known by class name (Hugging Face's
``NewGELUActivation`` is a GELU site; see
:func:`leaky.diagnosis.monitor.sites.is_activation_like`); activations called as functions
inside ``forward`` are found by a ``TorchFunctionMode``. Torch calls made inside an
activation module are part of it, never sites of their own. Activation modules and calls
the table has no row for are listed in the report as not monitored, and so are the gates
of recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` and their cells), which run
inside one fused call; their weight matrices are layers, one row each
(``lstm.weight_ih_l0``, ``lstm.weight_hh_l0``, ...). Statistics stay on the device as
counts and sums; nothing is copied to the host until :meth:`Monitor.report`.

Cost. The unit counts (never-active, dead and saturated units) and the samples are exact:
every batch counts. Everything else (the extremes and non-finite outputs, the moments,
the histogram and the gradient norms) is read on every ``every``-th batch, the first of a
window included. In between, on the CPU, a site whose units have all fired in the window
reads nothing (a unit that has fired cannot become never-active again), so a healthy site
costs almost nothing: that is what keeps the monitor cheap enough to leave on. ``every=1``
reads everything always. Activations called as functions are looked for on every 16th
batch (a ``TorchFunctionMode`` costs Python on every torch call); once one is found, every batch is
watched, so its counts are exact too (one first called on a later batch is counted from
the next batch watched). Under ``torch.compile`` every batch is watched: Dynamo guards on
the mode stack and would compile again each time the mode came or went. The other batches
run lean: only the hooks that count.

``torch.compile``: attach before the compiled model's first call (before or after
``torch.compile(model)``); the hooks run eagerly, one graph break each, so the counts equal
eager's and the model's graphs compile once, not again every batch. Hooks added after a
compiled model has run are not seen by it (Dynamo does not guard on them by default), and
neither are they when another model of the same structure was compiled in this process
before: Dynamo may run that graph, hooks and all left out (``torch._dynamo.reset()``
before compiling the monitored model avoids it). The report then says it saw no batch.

Sites and layers are reported in the order they first run in ``forward`` (not the order
the modules were registered): a layer's place is where its weight is first used, which
also places weights that are used without calling their module (``self_attn.out_proj``
in ``nn.MultiheadAttention``).
"""

from __future__ import annotations

import math
import sys
import time
import weakref
from collections import defaultdict
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

import torch

from leaky.diagnosis.monitor.functional_sites import ActivationCallWatcher
from leaky.diagnosis.monitor.layer_stats import LayerGradientStatistics
from leaky.diagnosis.monitor.reductions import Scratch, has_nonfinite
from leaky.diagnosis.monitor.report import DYING_ABOVE, LayerRow, MonitorReport, SiteRow
from leaky.diagnosis.monitor.site_stats import SiteStatistics, check_every
from leaky.diagnosis.monitor.sites import is_activation_like, monitored_spec
from leaky.diagnosis.monitor.tensorboard import check_writer, log_report
from leaky.nn.batch_norm import FUSED_LEAKY_RELU

__all__ = ["DEFAULT_EVERY", "Monitor", "matrix_on_last_dim", "unit_dim_of_layer"]

DEFAULT_EVERY = 16  # batches between reads of the moments, histogram and gradient norms

# Layers whose output keeps its features in the last dimension ((N, F), (N, L, F)) and
# those that keep them in dimension 1 ((N, C, *)): the units of the activation they feed.
_FEATURES_LAST: tuple[type[torch.nn.Module], ...] = (
    torch.nn.Linear,
    torch.nn.Bilinear,
    torch.nn.Embedding,
    torch.nn.LayerNorm,
    torch.nn.RMSNorm,
)
_FEATURES_AT_1: tuple[type[torch.nn.Module], ...] = (
    torch.nn.modules.conv._ConvNd,
    torch.nn.modules.batchnorm._NormBase,
    torch.nn.GroupNorm,
)


def unit_dim_of_layer(module: torch.nn.Module) -> int | None:
    """The dimension that holds the features of ``module``'s output, if its type says so.

    Other modules with a 2-D ``weight`` (Hugging Face's ``Conv1D``, a Linear whose weight
    is stored transposed) are checked by the monitor per call instead: where the weight
    maps the input's last dimension to the output's, the output's last dimension holds
    the features (:func:`matrix_on_last_dim`).

    Examples:
        >>> unit_dim_of_layer(torch.nn.Linear(3, 4)), unit_dim_of_layer(torch.nn.Conv2d(1, 2, 3))
        (-1, 1)
        >>> unit_dim_of_layer(torch.nn.Dropout()) is None
        True
    """
    if isinstance(module, _FEATURES_LAST):
        return -1
    if isinstance(module, _FEATURES_AT_1):
        return 1
    return None


def matrix_on_last_dim(weight: torch.Tensor, x: Any, y: Any) -> bool:
    """True where the 2-D ``weight`` maps the last dimension of ``x`` to that of ``y``.

    Either way round: ``(out, in)`` as in ``Linear``, or ``(in, out)`` as in Hugging
    Face's ``Conv1D`` (``torch.addmm(bias, x, weight)``).

    Examples:
        >>> w = torch.zeros(6, 10)  # Conv1D(nf=10, nx=6)
        >>> matrix_on_last_dim(w, torch.zeros(4, 5, 6), torch.zeros(4, 5, 10))
        True
        >>> matrix_on_last_dim(w, torch.zeros(4, 6, 5), torch.zeros(4, 10, 5))
        False
    """
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dim() and y.dim()):
        return False
    mapped = (x.shape[-1], y.shape[-1])
    return mapped in (tuple(weight.shape), tuple(weight.shape[::-1]))


class Monitor:
    """Collect per-unit activation statistics and per-layer gradient norms of a model.

    Args:
        model: any ``torch.nn.Module``.
        functional: also watch activations called as functions in ``forward``.
            Default: ``True``
        gradients: record gradient norms (activation outputs and layer weights) during
            backward. Default: ``True``
        unit_dim: dimension of an activation's output that holds the units (features of
            ``(N, F)`` and ``(N, L, F)``, channels of ``(N, C, H, W)``). None infers it per
            site from the layer that produced the activation's input (``Linear``,
            ``Embedding``, ``LayerNorm`` and any module whose 2-D ``weight`` maps the last
            dimension, such as Hugging Face's ``Conv1D``: the last dimension; convolutions
            and batch or group norms: 1) and uses 1 where no such layer is found; the
            report says which, per site. Default: None
        saturation_margin: an output within this fraction of a bounded activation's
            output range from a saturating bound counts as saturated (see
            :mod:`leaky.diagnosis.monitor.site_stats`). Default: 0.05
        dying_above: the share of a site's units that must be dead for the verdict
            "dying" (:data:`~leaky.diagnosis.monitor.report.DYING_ABOVE`). Default: 0.1
        bins: histogram bins. Default: 40
        hist_range: histogram range of the activation outputs. Default: (-4, 4)
        hist_max_elements: values per batch and site read for the histogram and the
            near-zero rate (every k-th sample of the batch beyond that; 0: all). Counts
            and moments always read every value.
            Default: 16384
        every: read the extremes and non-finite outputs, the moments (mean, std), the
            histogram and the gradient norms on every ``every``-th batch; the unit counts
            are exact regardless. 1 reads everything on every batch. Default: 16
        log_to: a TensorBoard ``SummaryWriter``: every ``log_every`` forward passes of the
            model the monitor writes its report there (:meth:`log`, at the step that counts
            the forward passes so far) and starts a new window (:meth:`reset`), so each
            point covers the last ``log_every`` passes; leaving (:meth:`detach`) writes the
            passes since the last point, without a reset. Under ``torch.distributed`` the
            report reduces across ranks, so every rank needs a writer (keep rank 0's events).
            Default: None
        log_every: forward passes per TensorBoard point. Default: 100
        count_active: also count, per unit and site, the outputs above 0 (the state
            ``monitor.sites[name].active``; over ``samples`` it is the unit's firing rate),
            a comparison and a sum per batch. Dead and never-active units need no count.
            Default: False
        dormant_tau: a unit is τ-dormant (ReDo, Sokar et al. 2023) when its mean |output|
            is at most this share of its site's mean (see
            :mod:`leaky.diagnosis.monitor.site_stats`). Default: 0.025
        near_zero: the report's near-zero rate counts outputs with |output| at most this
            (on the batches that read the moments, among the histogram's values).
            Default: 0.01

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        >>> with Monitor(model) as monitor:
        ...     model(torch.randn(16, 3)).sum().backward()
        >>> [row.name for row in monitor.report().sites]
        ['1']
        >>> [row.name for row in monitor.report().layers]
        ['0', '2']
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        functional: bool = True,
        gradients: bool = True,
        unit_dim: int | None = None,
        saturation_margin: float = 0.05,
        dying_above: float = DYING_ABOVE,
        bins: int = 40,
        hist_range: tuple[float, float] = (-4.0, 4.0),
        hist_max_elements: int = 16384,
        every: int = DEFAULT_EVERY,
        log_to: Any = None,
        log_every: int = 100,
        count_active: bool = False,
        dormant_tau: float = 0.025,
        near_zero: float = 0.01,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")
        if log_to is not None:
            check_writer(log_to)
        if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
            raise ValueError(f"Expected log_every to be an integer >= 1, but got {log_every!r}")
        if not 0 < dying_above <= 1:
            raise ValueError(
                f"Expected dying_above in (0, 1] (a share of a site's units), but got {dying_above}"
            )
        self.dying_above = dying_above
        if not 0 <= saturation_margin < 0.5:
            raise ValueError(
                f"Expected saturation_margin in [0, 0.5) (a fraction of the output range), "
                f"but got {saturation_margin}"
            )
        if unit_dim is not None and (isinstance(unit_dim, bool) or not isinstance(unit_dim, int)):
            raise TypeError(f"Expected unit_dim to be an integer or None, but got {unit_dim!r}")
        if not 0 <= dormant_tau < 1:
            raise ValueError(
                f"Expected dormant_tau in [0, 1) (a unit's mean |output| over its site's mean), "
                f"but got {dormant_tau}"
            )
        if isinstance(near_zero, bool) or not (
            isinstance(near_zero, int | float) and 0 <= near_zero < math.inf
        ):
            raise ValueError(f"Expected near_zero to be a number >= 0, but got {near_zero!r}")
        self.model = model
        self.functional = functional
        self.gradients = gradients
        self.unit_dim = unit_dim
        self.every = check_every(every)
        self._stats_options = {
            "saturation_margin": saturation_margin,
            "bins": bins,
            "hist_range": hist_range,
            "hist_max_elements": hist_max_elements,
            "every": every,
            "scratch": Scratch(),  # one buffer for every site's counts
            "count_active": count_active,
            "dormant_tau": dormant_tau,
            "near_zero": near_zero,
        }
        self._read_gradients = True  # whether this batch's backward reads gradient norms
        self._weights_placed = False  # every layer's weight has been seen in forward
        self.sites: dict[str, SiteStatistics] = {}
        self._functional_sites: set[str] = set()
        self.layers: dict[str, LayerGradientStatistics] = {}
        self._order: dict[str, int] = {}  # site or layer -> place of its first use in forward
        self._weight_names: dict[int, list[str]] = {}  # id(weight) -> layers that use it
        self._layer_weights: dict[str, torch.Tensor] = {}
        self._produced: dict[int, tuple[weakref.ref[torch.Tensor], str, int]] = {}
        self._not_monitored: dict[str, None] = {}  # an ordered set
        self._input_nonfinite: torch.Tensor | None = None  # batches with NaN or inf inputs
        # The (min, max) of inputs not yet checked: checked 64 batches at a time, since the
        # check is a handful of tiny ops that cost more than the pass over the input.
        self._input_extremes: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._handles: list[Any] = []
        # module id -> (module, pre-hook callbacks, forward-hook callbacks) while attaching;
        # each callback with whether it also runs in a lean pass (see _on_root_start)
        self._pending_hooks: dict[
            int, tuple[torch.nn.Module, list[tuple[Any, bool]], list[tuple[Any, bool]]]
        ] = {}
        self._lean = False  # this forward pass runs only the hooks that count
        self._compiled = False  # a forward pass has come from a torch.compile'd call
        self._module_stack: list[str] = []
        self._call_counts: dict[str, defaultdict[str, int]] = {}
        self._inside_activation = 0
        self._depth = 0  # modules of the model running now: 0 between forward passes
        # With keep_last_input, the outermost module of the last forward pass and what it
        # was called with (a repair traces the model on it): (module, args, kwargs).
        self.keep_last_input = False
        self.last_input: tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]] | None = None
        self._site_calls: dict[str, int] = {}
        self._watcher: ActivationCallWatcher | None = None
        # Sites whose unit dimension is not chosen yet: while there are any, passes run in
        # full (see _on_root_start).
        self._undecided: set[str] = set()
        self._grad_hooks: dict[str, Any] = {}  # site -> its output-gradient hook
        self.batches = 0
        self.attached = False
        self.log_to = log_to
        self.log_every = log_every
        self._passes = 0  # forward passes while attached; not reset, the TensorBoard step
        # Wall time spent computing statistics in the hooks, forward and backward, since
        # the monitor was made (not reset): its own cost, next to a step's time. On a GPU
        # it is the host's time to queue the work.
        self.statistics_seconds = 0.0
        self._logged_at = 0

    @property
    def passes(self) -> int:
        """Forward passes of the model seen while attached, over every window (never reset)."""
        return self._passes

    # ------------------------------------------------------------------ lifecycle
    def attach(self) -> Monitor:
        """Register the hooks; returns the monitor."""
        if self.attached:
            return self
        for name, module in self.model.named_modules():
            spec = monitored_spec(module)
            if spec is not None:
                self._hook_activation(name or type(module).__name__, module, spec.name)
            elif isinstance(module, FUSED_LEAKY_RELU):
                # BatchNorm + Leaky ReLU in one module: its input is BatchNorm's, but the
                # output's sign is the pre-activation's, which is all the statistics need.
                # Its units are BatchNorm's channels: it is its own producer, hooked first.
                label = name or type(module).__name__
                if self.unit_dim is None:
                    self._hook_producer(module, 1)
                self._hook_activation(label, module, "leaky_relu", input_from_output=True)
                continue
            elif _is_unknown_activation(module) or is_activation_like(module):
                label = name or type(module).__name__
                self._not_monitored[f"{label} ({type(module).__name__})"] = None
                self._hook_opaque(module)
            elif (gates := _recurrent_gates(module)) is not None:
                label = name or type(module).__name__
                self._not_monitored[f"{label} ({type(module).__name__}: {gates})"] = None
            weights = _layer_weights(module)
            if weights and self.gradients:
                label = name or type(module).__name__
                self._hook_layer(module, [(label + suffix, w) for suffix, w in weights])
            if self.unit_dim is None:
                unit_dim = unit_dim_of_layer(module)
                matrix = module._parameters.get("weight")
                if unit_dim is not None:
                    self._hook_producer(module, unit_dim)
                elif isinstance(matrix, torch.Tensor) and matrix.dim() == 2:
                    self._hook_producer(module, -1, matrix)
            if self.functional:
                self._hook_scope(name, module)
        # A forward pass is the outermost call of any of the model's modules: the model
        # itself, or a part called on its own (a LightningModule's training_step calling
        # self.net(x) never calls the LightningModule).
        for module in self.model.modules():
            self._pending_hooks.setdefault(id(module), (module, [], []))
        # One pre-hook and one forward hook per module, running its callbacks in the order
        # they were added: each hook costs a dispatch and a compiler.disable frame, which
        # showed as a few percent of a small model's step.
        for module, pres, posts in self._pending_hooks.values():
            pre = _eager(self._pre_hook(_chain(pres, lean=False), _chain(pres, lean=True)))
            self._handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            post = _eager(self._post_hook(_chain(posts, lean=False), _chain(posts, lean=True)))
            self._handles.append(module.register_forward_hook(post, always_call=True))
        self._pending_hooks.clear()
        self.attached = True
        return self

    def detach(self) -> None:
        """Remove every hook; the statistics collected so far stay available."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stop_watching()
        self._depth = 0
        self.attached = False
        if self.log_to is not None and self._passes > self._logged_at:
            self._logged_at = self._passes
            self.log(self.log_to, self._passes)

    def reset(self) -> None:
        """Start a new window: forget the statistics, keep the hooks."""
        for stats in (*self.sites.values(), *self.layers.values()):
            stats.reset()
        self._input_nonfinite = None
        self._input_extremes.clear()
        self.batches = 0
        self._read_gradients = True

    def __enter__(self) -> Monitor:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # ------------------------------------------------------------------ hooks
    def _hook(
        self, module: torch.nn.Module, pre: Any = None, post: Any = None, *, counts: bool = False
    ) -> None:
        # Callbacks to run before and after ``module``'s forward, registered by attach().
        # Only a post callback that ``counts`` runs in lean passes; the others find the
        # model's layout (forward order, unit dimensions, functional calls' places).
        _, pres, posts = self._pending_hooks.setdefault(id(module), (module, [], []))
        if pre is not None:
            pres.append((pre, False))
        if post is not None:
            posts.append((post, counts))

    def _site(self, name: str, kind: str) -> SiteStatistics:
        if name not in self.sites:
            self.sites[name] = SiteStatistics(kind, **self._stats_options)  # type: ignore[arg-type]
            self._undecided.add(name)
        return self.sites[name]

    def _seen(self, name: str) -> None:
        self._order.setdefault(name, len(self._order))

    def _choose_unit_dim(self, name: str, stats: SiteStatistics, x_given: torch.Tensor) -> None:
        # Decided once, at a site's first call: from the layer whose output is the
        # activation's input (the very same tensor, also after an in-place residual add).
        self._undecided.discard(name)
        if self.unit_dim is not None:
            stats.unit_dim, stats.unit_dim_from = self.unit_dim, "given"
            return
        entry = self._produced.get(id(x_given))
        if entry is not None and entry[0]() is x_given:
            stats.unit_dim, stats.unit_dim_from = entry[2], entry[1]
        else:
            stats.unit_dim, stats.unit_dim_from = 1, "default"

    def _record(
        self,
        name: str,
        kind: str,
        x: torch.Tensor,
        y: torch.Tensor,
        x_given: torch.Tensor | None = None,
        **params: Any,
    ) -> None:
        start = time.perf_counter()
        # A module called more than once per forward is one site per call: name, name#1, ...
        calls = self._site_calls.get(name, 0)
        self._site_calls[name] = calls + 1
        if calls:
            name = f"{name}#{calls}"
        stats = self._site(name, kind)
        if stats.units is None:
            self._choose_unit_dim(name, stats, x if x_given is None else x_given)
        elif stats.units != stats.units_of(y):
            # One module object used at places of different widths: one site per width.
            name = f"{name}@{stats.units_of(y)}"
            stats = self._site(name, kind)
            if stats.units is None:
                self._choose_unit_dim(name, stats, x if x_given is None else x_given)
        self._seen(name)
        read = stats.update(x, y, params.pop("module", None), **params)
        if read and self.gradients and y.requires_grad:
            hook = self._grad_hooks.get(name)
            if hook is None:  # made once per site: wrapping for the compiler is not free
                hook = self._grad_hooks[name] = _eager(partial(self._timed, stats.update_grad))
            y.register_hook(hook)
        self.statistics_seconds += time.perf_counter() - start

    def _timed(self, update: Any, grad: torch.Tensor | None) -> None:
        # A backward hook's statistics, while attached, with their time counted.
        if self.attached:
            start = time.perf_counter()
            update(grad)
            self.statistics_seconds += time.perf_counter() - start

    def _hook_activation(
        self, name: str, module: torch.nn.Module, kind: str, input_from_output: bool = False
    ) -> None:
        self._site(name, kind)

        def pre(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            self._inside_activation += 1

        def post(mod: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            try:  # still "inside": the statistics' own torch calls are not model calls
                if args and isinstance(output, torch.Tensor):
                    # Outside the call watcher: its per-call Python would cost more than
                    # the statistics' own ops.
                    with _statistics_scope() if self._watcher is not None else nullcontext():
                        if input_from_output:
                            self._record(name, kind, output, output, output, module=mod)
                        else:
                            self._record(name, kind, args[0], output, module=mod)
            finally:
                if not self._lean:  # pre ran only in a full pass
                    self._inside_activation -= 1

        self._hook(module, pre, post, counts=True)

    def _hook_opaque(self, module: torch.nn.Module) -> None:
        # Inside an activation module without a spec row, its own function call (F.selu
        # inside nn.SELU) is the same thing: listed once, as the module.
        def pre(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            self._inside_activation += 1

        def post(mod: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            self._inside_activation -= 1

        self._hook(module, pre, post)

    def _hook_layer(self, module: torch.nn.Module, weights: list[tuple[str, torch.Tensor]]) -> None:
        # One row per weight matrix; a recurrent layer has several, placed in their order.
        names = [name for name, _ in weights]
        for name, weight in weights:
            stats = self.layers.setdefault(name, LayerGradientStatistics())
            self._layer_weights[name] = weight
            self._weight_names.setdefault(id(weight), []).append(name)
            self._handles.append(
                weight.register_post_accumulate_grad_hook(
                    _eager(
                        lambda p, stats=stats: (
                            self._timed(stats.update, p.grad) if self._read_gradients else None
                        )
                    )
                )
            )

        def first_call(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if not self._weights_placed:
                for name in names:
                    self._seen(name)

        self._hook(module, first_call)

    def _hook_producer(
        self, module: torch.nn.Module, unit_dim: int, matrix: torch.Tensor | None = None
    ) -> None:
        # With ``matrix``, a module of no known type: its output's last dimension holds the
        # units only where that weight maps the input's last dimension to it.
        kind = type(module).__name__

        # Run in lean passes too: a site first called then (a module called once more per
        # forward from some batch on) needs its producer. A weak reference per layer call.
        def produced(mod: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor) and (
                matrix is None or (args and matrix_on_last_dim(matrix, args[0], output))
            ):
                self._produced[id(output)] = (weakref.ref(output), kind, unit_dim)

        self._hook(module, post=produced, counts=True)

    def _on_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # A weight used directly (F.linear(x, self.out_proj.weight), as nn.MultiheadAttention
        # does) places its layer in forward order although its module is never called.
        # A weight several layers share (tied embeddings: the embedding's weight is the
        # output layer's) places only the layers inside the module using it now.
        scope = self._module_stack[-1] if self._module_stack else None
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                names = self._weight_names.get(id(value), [])
                if scope is not None and len(names) > 1:
                    names = [n for n in names if _within(n, scope)] or names
                for name in names:
                    self._seen(name)

    def _on_unmonitored(self, function: str) -> None:
        scope = self._module_stack[-1] if self._module_stack else ""
        self._not_monitored[f"{scope or type(self.model).__name__}:{function} (fn)"] = None

    def _hook_scope(self, name: str, module: torch.nn.Module) -> None:
        def enter(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if self._watcher is not None:  # names the functional calls it sees
                self._module_stack.append(name)

        def leave(mod: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self._module_stack and self._module_stack[-1] == name:
                self._module_stack.pop()

        self._hook(module, enter, leave)

    def _pre_hook(self, full: Any, lean: Any) -> Any:
        # A module's one pre-hook: the pass bookkeeping (which needs the keyword arguments
        # of the outermost call, for last_input), then the module's own callbacks: all of
        # them, or in a lean pass those that count (``_chain(..., lean=True)``).
        def run(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not self._depth:
                self._on_root_start(module, args)
                if self.keep_last_input:
                    self.last_input = (module, args, kwargs)
            self._depth += 1
            callbacks = lean if self._lean else full
            if callbacks is not None:
                callbacks(module, args)

        return run

    def _post_hook(self, full: Any, lean: Any) -> Any:
        # A module's one forward hook: its callbacks, then the pass bookkeeping.
        def run(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            callbacks = lean if self._lean else full
            if callbacks is not None:
                callbacks(module, args, output)
            self._depth -= 1
            if not self._depth:
                self._on_root_end(module, args, output)

        return run

    def _on_root_start(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if self.log_to is not None and self._passes - self._logged_at >= self.log_every:
            # The window's backward passes are over once the next forward begins.
            self._logged_at = self._passes
            self.log(self.log_to, self._passes)
            self.reset()
        self._passes += 1
        self._read_gradients = self.batches % self.every == 0
        self.batches += 1
        self._site_calls.clear()  # call order is counted per forward of the whole model
        self._call_counts.clear()
        self._produced.clear()
        for value in args:
            if (
                isinstance(value, torch.Tensor)
                and value.is_floating_point()
                and not value.is_meta
                and value.numel()
            ):
                self._input_extremes.append(torch.aminmax(value.detach()))
                if len(self._input_extremes) >= 64:
                    self._check_inputs()
        # The call watcher costs Python on every torch call of the forward pass. It runs on
        # every DEFAULT_EVERY-th batch (the first of each window included, whatever
        # ``every`` is) and, once it has found an activation called as a function, on every
        # batch, whose counts are then exact as the modules' are; a model without one runs
        # unwatched in between. Weights are looked for among call arguments only until
        # each has been seen: later sightings cannot change the order of first use.
        # Under torch.compile the watcher (a TorchFunctionMode, on Dynamo's guarded mode
        # stack) runs on every batch: switching it on and off made Dynamo compile the
        # model's frames again until its recompile limit, then run them uncompiled.
        place_weights = bool(self._weight_names) and not self._weights_placed
        watch = (
            self._compiled
            or (self.batches - 1) % DEFAULT_EVERY == 0
            or bool(self._functional_sites)
        )
        # Looked for on the watched batches (the first one included): a model compiled
        # after some eager batches is found at the next, one recompile later.
        self._compiled = self._compiled or (watch and _called_from_compiled_code())
        # A lean pass, once the layout is known and nothing is watched, runs only the
        # hooks that count: a dozen Python calls less per module and batch.
        self._lean = not (watch or self._undecided or place_weights)
        if watch and (self.functional or place_weights) and self._watcher is None:
            self._watcher = ActivationCallWatcher(
                self._on_functional_call if self.functional else None,
                self._outside_modules,
                on_unmonitored=self._on_unmonitored if self.functional else None,
                on_arguments=self._on_arguments if place_weights else None,
            )
            self._watcher.__enter__()

    def _check_inputs(self) -> None:
        # Fold the pending inputs' extremes into the count of inputs with NaN or inf.
        if not self._input_extremes:
            return
        device = self._input_extremes[0][0].device
        lows, highs = (
            torch.stack([t.to(device) for t in ts])
            for ts in zip(*self._input_extremes, strict=True)
        )
        self._input_extremes.clear()
        bad = has_nonfinite(lows, highs).sum()
        previous = self._input_nonfinite
        self._input_nonfinite = bad if previous is None else previous.to(device) + bad

    def _on_root_end(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._stop_watching()
        if not self._weights_placed:
            self._weights_placed = all(name in self._order for name in self._layer_weights)

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            watcher.__exit__(None, None, None)
        self._module_stack.clear()
        self._produced.clear()  # keep no tensor ids across forwards
        self._inside_activation = 0

    def _outside_modules(self) -> bool:
        return self._inside_activation == 0

    def _on_functional_call(
        self,
        kind: str,
        function: str,
        x: torch.Tensor,
        y: torch.Tensor,
        params: dict[str, Any],
        x_given: torch.Tensor,
    ) -> None:
        scope = self._module_stack[-1] if self._module_stack else ""
        counts = self._call_counts.setdefault(scope, defaultdict(int))
        index = counts[function]
        counts[function] += 1
        name = f"{scope or type(self.model).__name__}:{function}#{index}"
        self._functional_sites.add(name)
        self._record(name, kind, x, y, x_given, **params)

    # ------------------------------------------------------------------ results
    @property
    def layer_weights(self) -> dict[str, torch.Tensor]:
        """Layer name -> the weight matrix whose gradient norm its row reports."""
        return dict(self._layer_weights)

    def log(self, writer: Any, step: int, prefix: str = "monitor") -> None:
        """Write :meth:`report` to a TensorBoard ``SummaryWriter`` at ``step``.

        Per site its dead, never-active and saturated fractions, output-gradient norm and
        activation histogram, per layer its gradient norm, under tags such as
        ``monitor/<site>/dead_fraction`` (see :mod:`leaky.diagnosis.monitor.tensorboard`).
        """
        log_report(writer, self.report(), step, prefix)

    def _forward_place(self, name: str) -> tuple[int, int]:
        return (0, self._order[name]) if name in self._order else (1, 0)

    def report(self) -> MonitorReport:
        """Summarise the window: one row per activation site and per layer, and a verdict.

        Rows come in forward order (the order of first use in ``forward``); layers that
        never ran come last, in registration order.
        """
        site_names = sorted(
            (name for name, stats in self.sites.items() if stats.units is not None),
            key=self._forward_place,
        )
        sites = [
            SiteRow(
                name,
                self.sites[name].kind,
                name in self._functional_sites,
                self.sites[name].compute(),
                order=self._order.get(name),
            )
            for name in site_names
        ]
        unseen = [name for name, stats in self.sites.items() if stats.units is None]
        layers = [
            LayerRow(
                name,
                self.layers[name].compute(),
                order=self._order.get(name),
                grad_nonfinite_passes=self.layers[name].nonfinite_passes_count(),
                weight_nonfinite=_is_nonfinite(self._layer_weights.get(name)),
            )
            for name in sorted(self.layers, key=self._forward_place)
        ]
        self._check_inputs()
        inputs = self._input_nonfinite
        return MonitorReport(
            sites=sites,
            layers=layers,
            batches=self.batches,
            not_run=unseen,
            functional_watched=self.functional,
            not_monitored=list(self._not_monitored),
            input_nonfinite=0 if inputs is None else int(inputs),
            saturation_margin=self._stats_options["saturation_margin"],  # type: ignore[arg-type]
            dying_above=self.dying_above,
        )


def _eager(hook: Any) -> Any:
    """``hook``, run eagerly when the model is compiled.

    Traced by ``torch.compile``, a hook's changes to the monitor's state (counters, lists,
    the batch's sample count) become guards that fail on the next batch: Dynamo compiled
    the hooks again every batch until its recompile limit, then ran those frames eagerly
    anyway. Disabled for the compiler, each hook is one graph break and runs as in eager
    mode, so the counts equal eager's and the model's own graphs compile once.
    """
    return torch.compiler.disable(hook, recursive=True)


def _called_from_compiled_code() -> bool:
    """Whether the running hook was called from a ``torch.compile``'d call.

    The hooks run eagerly (see :func:`_eager`), so ``torch.compiler.is_compiling()`` is
    False in them; Dynamo's ``compile_wrapper`` is then among the callers, a few frames up
    (the hook's wrapper, ``Module._call_impl``, a parent module's). A walk of at most 32
    frames, once per forward pass.
    """
    frame = sys._getframe(1)
    for _ in range(32):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name == "compile_wrapper" and "_dynamo" in code.co_filename:
            return True
        frame = frame.f_back
    return False


def _chain(callbacks: list[tuple[Any, bool]], *, lean: bool) -> Any:
    """One hook calling ``callbacks`` in order with its arguments (none returns a value).

    Each callback comes with whether it counts; ``lean`` keeps only those. None if no
    callback is left.
    """
    callbacks = [callback for callback, counts in callbacks if counts or not lean]
    if not callbacks:
        return None
    if len(callbacks) == 1:
        return callbacks[0]

    def run_all(*args: Any) -> None:
        for callback in callbacks:
            callback(*args)

    return run_all


def _within(name: str, scope: str) -> bool:
    """Whether the layer ``name`` is the module ``scope`` or inside it ("" is the model)."""
    return not scope or name == scope or name.startswith(scope + ".")


def _statistics_scope() -> AbstractContextManager[None]:
    # Torch calls made while computing statistics skip every __torch_function__ handler
    # (the monitor's own call watcher included). torch._C.DisableTorchFunction is what
    # torch itself uses for this; without it the calls are only slower.
    disable = getattr(torch._C, "DisableTorchFunction", None)
    return disable() if disable is not None else nullcontext()


def _is_nonfinite(tensor: torch.Tensor | None) -> bool:
    if tensor is None or tensor.is_meta or not tensor.numel():
        return False
    with torch.no_grad():
        return bool(has_nonfinite(*torch.aminmax(tensor)))


def _is_unknown_activation(module: torch.nn.Module) -> bool:
    # torch.nn's activation modules without a spec row (SELU, Softsign, Softmax, ...);
    # MultiheadAttention lives in the same file but is a layer, not an activation.
    return type(module).__module__ == "torch.nn.modules.activation" and not isinstance(
        module, torch.nn.MultiheadAttention
    )


def _recurrent_gates(module: torch.nn.Module) -> str | None:
    # The activations a recurrent layer computes inside its fused call, which no hook sees.
    if isinstance(module, torch.nn.LSTM | torch.nn.LSTMCell):
        return "sigmoid input/forget/output gates and tanh cell, inside the fused call"
    if isinstance(module, torch.nn.GRU | torch.nn.GRUCell):
        return "sigmoid reset/update gates and tanh new gate, inside the fused call"
    if isinstance(module, torch.nn.RNNBase | torch.nn.RNNCellBase):
        return f"{getattr(module, 'nonlinearity', 'tanh')} hidden state, inside the fused call"
    return None


def _layer_weights(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    # Layers that map features (Linear, Conv, Embedding, attention's input projection): a
    # weight matrix, named by the module (suffix ""). Recurrent layers: each of their
    # weight matrices, named by the parameter (".weight_ih_l0", ".weight_hh_l0", ...).
    # Normalisation layers' 1-D scales and biases are left out, since their gradients say
    # nothing about depth.
    if isinstance(module, torch.nn.RNNBase | torch.nn.RNNCellBase):
        candidates = [
            (f".{name}", weight)
            for name, weight in module._parameters.items()
            if name.startswith("weight")
        ]
    else:
        weight = module._parameters.get("weight")
        if weight is None and isinstance(module, torch.nn.MultiheadAttention):
            weight = module._parameters.get("in_proj_weight")
        candidates = [("", weight)]
    return [
        (suffix, weight)
        for suffix, weight in candidates
        if weight is not None and weight.requires_grad and weight.dim() >= 2
    ]
