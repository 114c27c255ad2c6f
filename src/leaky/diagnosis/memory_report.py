"""What would leaky save on this model? Autograd's kept bytes per module, before and after.

:func:`memory_report` runs one forward and backward of the model as it is, and of a copy
whose ``torch.nn`` activations are swapped for leaky's modules that compute the same
function (:func:`leaky.diagnosis.convert.convert`, same options and weights) and whose
``BatchNorm -> LeakyReLU`` pairs are fused (:func:`leaky.diagnosis.fuse.fuse_batch_norm`).
For each it counts what autograd keeps for backward, by module:

- a storage autograd saves belongs to the innermost module whose forward was running when
  it was saved, and to the first such module only: the next layer keeping the same tensor
  costs nothing more, so the modules' bytes add up to the total;
- a storage is that module's "input", its "output", or "other" (a mask, statistics, an
  intermediate of a functional call inside it); parameters and buffers are not counted:
  they exist whether or not a backward is coming;
- storages, not tensors: two views of one storage cost its bytes once.

Both copies get the same input and the same random state, and their outputs and
gradients are compared, so a swap that changed the function shows.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    >>> report = memory_report(model, torch.randn(4, 8))  # float32: 4 bytes a number
    >>> [(row.name, row.before, row.after) for row in report.rows]
    [('', 0, 0), ('0', 128, 128), ('1', 256, 256), ('2', 256, 0)]
    >>> report.before_total, report.after_total
    (640, 384)
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from leaky.core.spec import SPECS
from leaky.diagnosis.convert import Change, ForeignActivationWarning, _class_path, convert
from leaky.diagnosis.fuse import fuse_batch_norm
from leaky.diagnosis.monitor.sites import monitored_spec
from leaky.diagnosis.outputs import prediction
from leaky.system.byte_sizes import format_bytes

__all__ = ["KeptBytes", "MemoryReport", "ModuleMemory", "kept_by_module", "memory_report"]

ROOT = ""  # the name of the model itself: ops its own forward calls outside any child


@dataclass
class KeptBytes:
    """What autograd kept for one module: bytes by kind ("input", "output", "other")."""

    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """All its bytes."""
        return sum(self.kinds.values())


@dataclass
class _Frame:
    name: str
    inputs: set[int]
    saved: list[tuple[int, int]] = field(default_factory=list)  # (storage address, bytes)


def _storages(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _storages(item)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _storages(item)


def _addresses(value: Any) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in _storages(value)}


@contextmanager
def kept_by_module(model: torch.nn.Module) -> Iterator[dict[str, KeptBytes]]:
    """Within the block, record what autograd saves, by the module that saved it first.

    Yields a dict, filled as the block runs: module name (``""`` for the model's own
    forward outside its children) -> :class:`KeptBytes`. Parameters and buffers are left
    out. Nothing is copied: a backward pass after the block works as usual.
    """
    names = {module: name for name, module in model.named_modules(remove_duplicate=True)}
    fixed = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    stack: list[_Frame] = [_Frame(ROOT, set())]
    seen: set[int] = set()
    kept: dict[str, KeptBytes] = {}

    def enter(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        stack.append(_Frame(names.get(module, ROOT), _addresses((args, kwargs))))

    def leave(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        frame = stack.pop()
        outputs = _addresses(output)
        _record(frame, outputs)

    def _record(frame: _Frame, outputs: set[int]) -> None:
        kinds = kept.setdefault(frame.name, KeptBytes()).kinds
        for address, size in frame.saved:
            kind = (
                "output" if address in outputs else "input" if address in frame.inputs else "other"
            )
            kinds[kind] = kinds.get(kind, 0) + size

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        if address not in fixed and address not in seen and storage.nbytes() > 0:
            seen.add(address)
            stack[-1].saved.append((address, storage.nbytes()))
        return tensor

    handles = []
    for module in names:
        if module is model:
            continue  # the root frame is the model's own
        handles.append(module.register_forward_pre_hook(enter, with_kwargs=True))
        handles.append(module.register_forward_hook(leave, with_kwargs=True, always_call=True))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            yield kept
    finally:
        for handle in handles:
            handle.remove()
        while stack:  # the model's own frame (and any a failed forward left open)
            _record(stack.pop(), set())


@dataclass
class ModuleMemory:
    """One module's kept bytes before and after, and why they differ (or do not)."""

    name: str
    before_class: str
    after_class: str
    before: int
    after: int
    before_kinds: dict[str, int]
    after_kinds: dict[str, int]
    why: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


@dataclass
class MemoryReport:
    """Autograd's kept bytes per module, for the model and its leaky copy, and the check."""

    rows: list[ModuleMemory]
    changes: list[str]
    output_difference: float
    gradient_difference: float
    notes: list[str] = field(default_factory=list)
    peaks: dict[str, int] | None = None  # a step's peak growth per variant, if measured
    peak_method: str = ""  # how the peaks were read, for the table

    @property
    def before_total(self) -> int:
        """Bytes kept for backward by the model as it is."""
        return sum(row.before for row in self.rows)

    @property
    def after_total(self) -> int:
        """Bytes kept for backward by the converted and fused copy."""
        return sum(row.after for row in self.rows)

    @property
    def saved_bytes(self) -> int:
        """What leaky saves (negative if it keeps more)."""
        return self.before_total - self.after_total

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the totals."""
        return {
            "rows": [row.to_dict() for row in self.rows],
            "before_total": self.before_total,
            "after_total": self.after_total,
            "saved_bytes": self.saved_bytes,
            "changes": self.changes,
            # JSON has no NaN or inf: a difference that is not finite is null
            "output_difference": _finite_or_none(self.output_difference),
            "gradient_difference": _finite_or_none(self.gradient_difference),
            "notes": self.notes,
            "peak_growth_bytes": self.peaks,
            "peak_method": self.peak_method,
        }

    def table(self) -> str:
        """The modules that keep anything, what they keep before and after, why; totals."""
        header = ("module", "class", "kept before", "kept after", "why")
        body = []
        for row in self.rows:
            if row.before == row.after == 0:
                continue
            label = row.before_class.rsplit(".", 1)[-1]
            if row.after_class != row.before_class:
                label += " -> " + row.after_class.rsplit(".", 1)[-1]
            body.append(
                (
                    row.name or "(model)",
                    label,
                    format_bytes(row.before),
                    format_bytes(row.after),
                    row.why,
                )
            )
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *body]
        ]
        before, after = self.before_total, self.after_total
        ratio = f"{after / before:.2f}x" if before else "-"
        lines.append(
            f"total: {format_bytes(before)} kept for backward as it is, {format_bytes(after)} "
            f"with leaky ({ratio}; {format_bytes(abs(self.saved_bytes))} "
            f"{'saved' if self.saved_bytes >= 0 else 'more'})"
        )
        if self.peaks:
            (label_before, before_peak), (label_after, after_peak) = self.peaks.items()
            lines.append(
                f"step peak: {format_bytes(before_peak)} above the resident set {label_before}, "
                f"{format_bytes(after_peak)} {'with ' if label_after == 'leaky' else ''}"
                f"{label_after} ({after_peak / max(before_peak, 1):.2f}x; {self.peak_method})"
            )
        lines.append(
            f"same function: outputs differ by at most {self.output_difference:.3g}, "
            f"gradients by at most {self.gradient_difference:.3g} (each relative to the "
            "largest value of its tensor)"
        )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# torch.nn activation classes that leaky has a module of the same function for.
_SWAPS = tuple(
    (spec.name, tuple(spec.torch_modules))
    for spec in SPECS
    if spec.module.startswith("leaky.") and spec.torch_modules
)


def leaky_copy(model: torch.nn.Module) -> tuple[torch.nn.Module, list[Change]]:
    """A deep copy of ``model`` with leaky's modules of the same function, BatchNorms fused."""
    twin = copy.deepcopy(model)
    changes: list[Change] = []
    with warnings.catch_warnings():
        # Other libraries' activations left as they are: the report's rows say why.
        warnings.simplefilter("ignore", ForeignActivationWarning)
        for name, classes in _SWAPS:
            changes += convert(twin, name, only=classes)
    changes += fuse_batch_norm(twin)
    return twin, changes


def _words(kinds: dict[str, int]) -> str:
    # Other tensors under 1% of the module's bytes (a BatchNorm's statistics) go unsaid.
    total = sum(kinds.values())
    small = kinds.get("other", 0) < total / 100 and (kinds.get("input") or kinds.get("output"))
    names = {"input": "input", "output": "output", "other": "other tensors"}
    parts = [
        names[k]
        for k in ("input", "output", "other")
        if kinds.get(k) and not (k == "other" and small)
    ]
    return " and ".join(parts) if parts else "nothing"


def _why(
    name: str,
    before: torch.nn.Module | None,
    after: torch.nn.Module | None,
    b: KeptBytes,
    a: KeptBytes,
) -> str:
    # What a reader needs to know about one row, from what was measured.
    swapped = before is not None and after is not None and type(before) is not type(after)
    if swapped and isinstance(after, torch.nn.Identity):
        return "fused into the BatchNorm before it: keeps nothing of its own"
    old = type(before).__name__ if before is not None else "the model"
    if swapped and a.total < b.total:
        what = _words(a.kinds)
        return f"torch's {old} kept its {_words(b.kinds)}; leaky's keeps " + (
            "nothing new" if what == "nothing" else f"its {what}"
        )
    if swapped and a.kinds.get("input"):
        if isinstance(after, torch.nn.PReLU):
            return "leaky's PReLU keeps its input too: the slope's gradient needs x itself"
        return (
            f"leaky's {type(after).__name__} keeps its input here: its slope is <= 0, "
            "where the output cannot give the gradient"
        )
    if swapped and getattr(before, "inplace", False):
        return f"torch's {old} runs in place and already keeps only its output"
    if swapped and b.kinds.keys() != a.kinds.keys():
        return (
            f"torch's {old} kept its {_words(b.kinds)}; leaky's keeps its {_words(a.kinds)} instead"
        )
    if swapped:
        return f"leaky's {type(after).__name__} keeps the same here"
    if a.total < b.total:
        return "its input is kept by the module before it now, and counted there"
    if a.total > b.total:
        return "keeps a tensor the module before it no longer keeps, so it is counted here"
    if before is not None and b.total:
        spec = monitored_spec(before)  # torch's classes, and other libraries' by name
        if spec is not None and spec.name in ("relu", "sigmoid", "tanh"):
            return f"{old} already keeps only its output: leaky cannot keep less"
        if spec is not None:
            return f"leaky has no {spec.title} that keeps less ({old} keeps its {_words(b.kinds)})"
        if getattr(before, "inplace", False):
            return "in place: keeps only its output already"
    return "unchanged"


def _largest_difference(a: Any, b: Any) -> float:
    """The largest |a - b| of paired tensors, each relative to the largest |a| of its tensor."""
    largest = 0.0
    for x, y in zip(_storages(a), _storages(b), strict=False):
        if not x.numel():
            continue
        x, y = x.detach().double(), y.detach().double()
        scale = float(x.abs().max())
        difference = float((x - y).abs().max())
        largest = max(largest, difference / scale if scale > 0 else difference)
    return largest


def _step(
    model: torch.nn.Module, inputs: Any, loss: Callable[[Any], torch.Tensor], seed: int
) -> tuple[dict[str, KeptBytes], Any]:
    torch.manual_seed(seed)  # the same random state for both copies (dropout, RReLU)
    args, kwargs = (inputs, {}) if not isinstance(inputs, Mapping) else ((), dict(inputs))
    args = args if isinstance(args, tuple) else (args,)
    with kept_by_module(model) as kept:
        output = model(*args, **kwargs)
    loss(output).backward()
    return kept, output


def memory_report(
    model: torch.nn.Module,
    inputs: Any,
    *,
    loss: Callable[[Any], torch.Tensor] | None = None,
    seed: int = 0,
) -> MemoryReport:
    """Autograd's kept bytes per module for ``model`` and for its leaky copy; one step each.

    Args:
        model: any module, used as it is (its mode, its weights); a deep copy is converted
            (:func:`leaky_copy`), so ``model`` itself does not change beyond its gradients.
        inputs: a tensor, a tuple of positional arguments, or a dict of keyword arguments.
        loss: the scalar to call backward on, from the model's output. Default: the sum of
            the output's first tensor (``logits`` of a Hugging Face output).
        seed: the random state both copies start their step from.

    Returns:
        A :class:`MemoryReport`: one row per module (in the model's order), the changes
        made, and the largest difference between the two copies' outputs and gradients.
    """
    if loss is None:

        def loss(output: Any) -> torch.Tensor:
            return prediction(output).float().sum()

    twin, changes = leaky_copy(model)
    model.zero_grad(set_to_none=True)
    kept_before, out_before = _step(model, inputs, loss, seed)
    kept_after, out_after = _step(twin, inputs, loss, seed)
    before_modules = dict(model.named_modules())
    after_modules = dict(twin.named_modules())
    rows = []
    for name in [ROOT, *[n for n in before_modules if n != ROOT]]:
        b = kept_before.get(name, KeptBytes())
        a = kept_after.get(name, KeptBytes())
        old, new = before_modules.get(name), after_modules.get(name)
        rows.append(
            ModuleMemory(
                name=name,
                before_class=_class_path(type(old)) if old is not None else "-",
                after_class=_class_path(type(new)) if new is not None else "-",
                before=b.total,
                after=a.total,
                before_kinds=dict(b.kinds),
                after_kinds=dict(a.kinds),
                why=_why(name, old, new, b, a),
            )
        )
    grads_before = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    grads_after = {n: p.grad for n, p in twin.named_parameters() if p.grad is not None}
    shared = [n for n in grads_before if n in grads_after]
    notes = []
    if not changes:
        notes.append(
            "leaky changes nothing on this model: it has no torch.nn Leaky ReLU, PReLU or "
            "RReLU, and no BatchNorm followed by a Leaky ReLU in a Sequential"
        )
    if any(isinstance(m, torch.nn.RReLU) and m.training for m in model.modules()):
        notes.append(
            "RReLU in training mode draws its slopes at random, and leaky's draws other ones "
            "than torch's: the outputs differ by that (in eval mode they agree)"
        )
    missing = sorted(set(grads_before) ^ set(grads_after))
    if missing:
        notes.append(f"gradients not compared (a parameter of one copy only): {', '.join(missing)}")
    difference = _largest_difference(
        [grads_before[n] for n in shared], [grads_after[n] for n in shared]
    )
    report = MemoryReport(
        rows=rows,
        changes=[str(change) for change in changes],
        output_difference=_largest_difference(out_before, out_after),
        gradient_difference=difference,
        notes=notes,
    )
    if not math.isfinite(report.output_difference):
        report.notes.append("the outputs hold NaN or inf: the comparison says nothing")
    return report
