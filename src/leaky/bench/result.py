"""What a suite returns: rows of candidate-vs-baseline figures, printable and JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from leaky.bench.timing import Comparison

__all__ = ["BenchRow", "MemoryRow", "SuiteResult"]


@dataclass
class MemoryRow:
    """Median peak growth of one variant, its ratio to the baseline variant's, every sample."""

    model: str
    variant: str
    growth_mib: float
    baseline: str
    ratio: float
    samples_mib: list[float] = field(default_factory=list)


@dataclass
class BenchRow:
    """One measured pair: what was timed, whether it allocates, and the samples."""

    case: str
    candidate: str
    baseline: str
    allocates: str  # "allocating", "preallocated" or "-" where it does not apply
    comparison: Comparison
    checked: str  # how the two were checked to compute the same thing

    def to_dict(self) -> dict[str, Any]:
        """Summary and every raw sample."""
        return {
            "case": self.case,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "allocates": self.allocates,
            "checked": self.checked,
            **self.comparison.summary(),
            "samples_candidate_s": self.comparison.candidate,
            "samples_baseline_s": self.comparison.baseline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchRow:
        """The row :meth:`to_dict` wrote: its summary is computed again from the samples."""
        comparison = Comparison(
            candidate=[float(v) for v in data["samples_candidate_s"]],
            baseline=[float(v) for v in data["samples_baseline_s"]],
        )
        return cls(
            str(data["case"]),
            str(data["candidate"]),
            str(data["baseline"]),
            str(data["allocates"]),
            comparison,
            str(data["checked"]),
        )


@dataclass
class SuiteResult:
    """A suite's rows and notes (compile times, caveats)."""

    name: str
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    bytes_per_element: dict[str, float] = field(default_factory=dict)
    saved_mib: dict[str, float] = field(default_factory=dict)  # kept by autograd, per model

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every row with its raw samples."""
        return {
            "name": self.name,
            "rows": [r.to_dict() for r in self.rows],
            "memory": [asdict(m) for m in self.memory],
            "bytes_per_element": self.bytes_per_element,
            "saved_mib": self.saved_mib,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteResult:
        """The suite :meth:`to_dict` wrote, printable again with :meth:`table`.

        Examples:
            >>> row = BenchRow("op", "leaky", "torch", "allocating", Comparison([1.0], [2.0]), "-")
            >>> suite = SuiteResult("kernels", rows=[row], notes=["a note"])
            >>> SuiteResult.from_dict(suite.to_dict()).table() == suite.table()
            True
        """
        return cls(
            name=str(data["name"]),
            rows=[BenchRow.from_dict(row) for row in data["rows"]],
            notes=[str(note) for note in data["notes"]],
            memory=[MemoryRow(**row) for row in data["memory"]],
            bytes_per_element={str(k): float(v) for k, v in data["bytes_per_element"].items()},
            saved_mib={str(k): float(v) for k, v in data["saved_mib"].items()},
        )

    def table(self) -> str:
        """Median times, candidate's min-max, and the speed-up over the baseline."""
        header = (
            "case",
            "memory",
            "candidate ms",
            "(min-max)",
            "baseline ms",
            "speed-up",
            "95% interval",
            "baseline",
        )
        body = []
        for row in self.rows:
            s = row.comparison.summary()
            body.append(
                (
                    row.case,
                    row.allocates,
                    f"{s['candidate_ms']:.3f}",
                    f"{s['candidate_min_ms']:.3f}-{s['candidate_max_ms']:.3f}",
                    f"{s['baseline_ms']:.3f}",
                    f"{s['speedup']:.2f}x",
                    f"{s['speedup_ci_low']:.2f}-{s['speedup_ci_high']:.2f}",
                    row.baseline,
                )
            )
        lines = _columns(header, body) if body else []
        if self.memory:
            lines += _columns(
                ("model", "variant", "peak growth MiB", "ratio", "to"),
                [
                    (m.model, m.variant, f"{m.growth_mib:.1f}", f"{m.ratio:.2f}x", m.baseline)
                    for m in self.memory
                ],
            )
        if self.bytes_per_element:
            lines += _columns(
                ("variant", "bytes kept per element beyond the output"),
                [(v, f"{b:g}") for v, b in self.bytes_per_element.items()],
            )
        if self.saved_mib:
            lines += _columns(
                ("model and variant", "MiB kept by autograd for backward"),
                [(k, f"{v:.1f}") for k, v in self.saved_mib.items()],
            )
        return "\n".join([f"[{self.name}]", *lines, *(f"note: {n}" for n in self.notes)])


def _columns(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *body]
    ]
