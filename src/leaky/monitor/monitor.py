"""``Monitor``: dead units, saturation and gradient flow in any ``torch.nn.Module``.

Attach it, train or evaluate as usual, then ask for a report::

    with Monitor(model) as monitor:
        for x, y in batches:
            loss_fn(model(x), y).backward()
    print(monitor.report())

Every activation module the spec table knows (``torch.nn`` and ``leaky.nn``) is hooked;
activations called as functions inside ``forward`` are found by a ``TorchFunctionMode``.
Statistics stay on the device as counts and sums; nothing is copied to the host until
:meth:`Monitor.report`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from leaky.monitor.functional_sites import ActivationCallWatcher
from leaky.monitor.layer_stats import LayerGradientStatistics
from leaky.monitor.report import LayerRow, MonitorReport, SiteRow
from leaky.monitor.site_stats import SiteStatistics
from leaky.monitor.sites import spec_for_module

__all__ = ["Monitor"]


class Monitor:
    """Collect per-unit activation statistics and per-layer gradient norms of a model.

    Args:
        model: any ``torch.nn.Module``.
        functional: also watch activations called as functions in ``forward``.
            Default: ``True``
        gradients: record gradient norms (activation outputs and layer weights) during
            backward. Default: ``True``
        unit_dim: dimension of an activation's output that holds the units (features of
            ``(N, F)``, channels of ``(N, C, H, W)``). Default: 1
        saturation_threshold: |f'(x)| below this counts as saturated. Default: 0.01
        bins: histogram bins. Default: 40
        hist_range: histogram range of the activation outputs. Default: (-4, 4)
        hist_max_elements: values per batch and site read for the histogram (an even
            stride beyond that; 0: all). Counts and moments always read every value.
            Default: 65536

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        >>> with Monitor(model) as monitor:
        ...     model(torch.randn(16, 3)).sum().backward()
        >>> [row.name for row in monitor.report().sites]
        ['1']
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        functional: bool = True,
        gradients: bool = True,
        unit_dim: int = 1,
        saturation_threshold: float = 0.01,
        bins: int = 40,
        hist_range: tuple[float, float] = (-4.0, 4.0),
        hist_max_elements: int = 65536,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}")
        if not saturation_threshold >= 0:
            raise ValueError(f"Expected saturation_threshold >= 0, but got {saturation_threshold}")
        self.model = model
        self.functional = functional
        self.gradients = gradients
        self._stats_options = {
            "unit_dim": unit_dim,
            "saturation_threshold": saturation_threshold,
            "bins": bins,
            "hist_range": hist_range,
            "hist_max_elements": hist_max_elements,
        }
        self.sites: dict[str, SiteStatistics] = {}
        self._functional_sites: set[str] = set()
        self.layers: dict[str, LayerGradientStatistics] = {}
        self._layer_order: list[str] = []
        self._handles: list[Any] = []
        self._module_stack: list[str] = []
        self._call_counts: dict[str, defaultdict[str, int]] = {}
        self._inside_activation = 0
        self._site_calls: dict[str, int] = {}
        self._watcher: ActivationCallWatcher | None = None
        self.batches = 0
        self.attached = False

    # ------------------------------------------------------------------ lifecycle
    def attach(self) -> Monitor:
        """Register the hooks; returns the monitor."""
        if self.attached:
            return self
        for name, module in self.model.named_modules():
            spec = spec_for_module(module)
            if spec is not None:
                self._hook_activation(name or type(module).__name__, module, spec.name)
            weight = _layer_weight(module)
            if weight is not None and self.gradients:
                self._hook_layer(name or type(module).__name__, module, weight)
            if self.functional:
                self._hook_scope(name, module)
        root_pre = self.model.register_forward_pre_hook(self._on_root_start)
        root_post = self.model.register_forward_hook(self._on_root_end, always_call=True)
        self._handles += [root_pre, root_post]
        self.attached = True
        return self

    def detach(self) -> None:
        """Remove every hook; the statistics collected so far stay available."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stop_watching()
        self.attached = False

    def reset(self) -> None:
        """Start a new window: forget the statistics, keep the hooks."""
        for stats in (*self.sites.values(), *self.layers.values()):
            stats.reset()
        self.batches = 0

    def __enter__(self) -> Monitor:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # ------------------------------------------------------------------ hooks
    def _site(self, name: str, kind: str) -> SiteStatistics:
        if name not in self.sites:
            self.sites[name] = SiteStatistics(kind, **self._stats_options)  # type: ignore[arg-type]
        return self.sites[name]

    def _record(self, name: str, kind: str, x: torch.Tensor, y: torch.Tensor, **params: Any):
        # A module called more than once per forward is one site per call: name, name#1, ...
        calls = self._site_calls.get(name, 0)
        self._site_calls[name] = calls + 1
        if calls:
            name = f"{name}#{calls}"
        stats = self._site(name, kind)
        if stats.units is not None and stats.units != stats.units_of(y):
            # One module object used at places of different widths: one site per width.
            stats = self._site(f"{name}@{stats.units_of(y)}", kind)
        stats.update(x, y, params.pop("module", None), **params)
        if self.gradients and y.requires_grad:
            y.register_hook(lambda grad: stats.update_grad(grad) if self.attached else None)

    def _hook_activation(self, name: str, module: torch.nn.Module, kind: str) -> None:
        self._site(name, kind)

        def pre(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            self._inside_activation += 1

        def post(mod: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            try:  # still "inside": the statistics' own torch calls are not model calls
                if args and isinstance(output, torch.Tensor):
                    self._record(name, kind, args[0], output, module=mod)
            finally:
                self._inside_activation -= 1

        self._handles.append(module.register_forward_pre_hook(pre))
        self._handles.append(module.register_forward_hook(post, always_call=True))

    def _hook_layer(self, name: str, module: torch.nn.Module, weight: torch.Tensor) -> None:
        stats = self.layers.setdefault(name, LayerGradientStatistics())

        def first_call(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if name not in self._layer_order:
                self._layer_order.append(name)

        self._handles.append(module.register_forward_pre_hook(first_call))
        self._handles.append(
            weight.register_post_accumulate_grad_hook(lambda p: stats.update(p.grad))
        )

    def _hook_scope(self, name: str, module: torch.nn.Module) -> None:
        def enter(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            self._module_stack.append(name)

        def leave(mod: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self._module_stack and self._module_stack[-1] == name:
                self._module_stack.pop()

        self._handles.append(module.register_forward_pre_hook(enter))
        self._handles.append(module.register_forward_hook(leave, always_call=True))

    def _on_root_start(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        self.batches += 1
        self._site_calls.clear()  # call order is counted per forward of the whole model
        self._call_counts.clear()
        if self.functional and self._watcher is None:
            self._watcher = ActivationCallWatcher(self._on_functional_call, self._outside_modules)
            self._watcher.__enter__()

    def _on_root_end(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._stop_watching()

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            watcher.__exit__(None, None, None)
        self._module_stack.clear()
        self._inside_activation = 0

    def _outside_modules(self) -> bool:
        return self._inside_activation == 0

    def _on_functional_call(
        self, kind: str, function: str, x: torch.Tensor, y: torch.Tensor, params: dict[str, Any]
    ) -> None:
        scope = self._module_stack[-1] if self._module_stack else ""
        counts = self._call_counts.setdefault(scope, defaultdict(int))
        index = counts[function]
        counts[function] += 1
        name = f"{scope or type(self.model).__name__}:{function}#{index}"
        self._functional_sites.add(name)
        self._record(name, kind, x, y, **params)

    # ------------------------------------------------------------------ results
    def report(self) -> MonitorReport:
        """Summarise the window: one row per activation site and per layer, and a verdict."""
        sites = [
            SiteRow(name, stats.kind, name in self._functional_sites, stats.compute())
            for name, stats in self.sites.items()
            if stats.units is not None
        ]
        unseen = [name for name, stats in self.sites.items() if stats.units is None]
        order = self._layer_order + [n for n in self.layers if n not in self._layer_order]
        layers = [LayerRow(name, self.layers[name].compute()) for name in order]
        return MonitorReport(
            sites=sites,
            layers=layers,
            batches=self.batches,
            not_run=unseen,
            functional_watched=self.functional,
        )


def _layer_weight(module: torch.nn.Module) -> torch.Tensor | None:
    # Layers that map features (Linear, Conv, Embedding): a weight matrix. Normalisation
    # layers' 1-D scales are left out, since their gradients say nothing about depth.
    weight = module._parameters.get("weight")
    if weight is None or not weight.requires_grad or weight.dim() < 2:
        return None
    return weight
