"""``leaky report``: the store's findings as a self-contained HTML page and a Markdown file.

The page is built from the store alone: each experiment's sweep and findings
(:mod:`leaky.report.sweeps`), one figure per experiment (:mod:`leaky.report.figures`), the
activation curves, and the environment the runs recorded. Text comes from the message
catalogue of the chosen language; the HTML embeds its figures as PNG data, so it opens
with no network at all, and the Markdown links the same figures as files.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from leaky.data.fsdd import FETCH_COMMAND, FSDD_CREDIT, FSDD_LICENSE, example_spectrograms
from leaky.data.mnist import MNIST_FETCH_COMMAND
from leaky.lab.config import config_to_dict
from leaky.lab.experiments import EXPERIMENTS, Finding
from leaky.lab.experiments.base import MIN_SEEDS
from leaky.lab.store import DamagedRun
from leaky.messages import LANGUAGES, Messages, get_messages
from leaky.messages.figure_files import FIGURE_FORMATS, figure_language, save_figure
from leaky.messages.style import figure_style
from leaky.report.beyond_figures import BEYOND_FIGURES
from leaky.report.curves import write_curves
from leaky.report.figures import FIGURES
from leaky.report.speech import SPEECH_FIGURE, fsdd_folder, spectrogram_figure
from leaky.report.sweeps import StoredSweep, load_sweeps, open_store_for_reading, reproduce_command
from leaky.system.atomic import ensure_output_dir, remove_stale_temporaries, staging_folder
from leaky.system.errors import ParameterError
from leaky.system.version import __version__

__all__ = ["PAGE_FORMATS", "ReportFiles", "check_page_formats", "write_report"]

PAGE_FORMATS: tuple[str, ...] = ("html", "md")
_VERDICT_CLASS = {
    "holds": "holds",
    "does not hold": "fails",
    "not significant": "tie",
    "inconclusive": "unknown",
}
_ENVIRONMENT_KEYS = ("leaky", "python", "torch", "numpy", "cpu", "machine", "threads")
_DAMAGED_NAMED = 5  # damaged runs named one by one in the notice; the rest are counted


@dataclass
class ReportFiles:
    """What ``write_report`` wrote, and what the reader should be told."""

    pages: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def html(self) -> Path | None:
        """The HTML page, when one was written."""
        return next((p for p in self.pages if p.suffix == ".html"), None)


def check_page_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Validate page formats (html, md).

    Examples:
        >>> check_page_formats(["md", "html"])
        ('md', 'html')
    """
    bad = [f for f in formats if f not in PAGE_FORMATS]
    if bad or not formats:
        raise ParameterError(
            "Expected {formats} html, md or html,md, but got " + (", ".join(bad) or "nothing"),
            "formats",
        )
    return tuple(dict.fromkeys(formats))


def _detail(finding: Finding, lang: str) -> str:
    # The seed rule (leaky.lab.experiments.base.MIN_SEEDS): a verdict on one seed says so.
    if finding.numbers.get("seeds") == 1:
        return f"{finding.detail(lang)} {get_messages(lang)('report.one_seed')}"
    return finding.detail(lang)


def _finding_rows(sweep: StoredSweep, lang: str, anchor: str) -> list[dict[str, str]]:
    return [
        {
            "claim": f.claim(lang),
            "detail": _detail(f, lang),
            "headline": f.headline(lang),
            "verdict": get_messages(lang).terms(f.verdict),
            "verdict_class": _VERDICT_CLASS[f.verdict],
            "experiment": f.experiment,
            "anchor": anchor,
        }
        for f in sweep.findings
    ]


def _notices(sweep: StoredSweep, messages: Messages) -> list[str]:
    notes = []
    if sweep.missing > 0:
        notes.append(messages("report.partial", present=len(sweep.runs), planned=sweep.planned))
    if sweep.diverged:
        notes.append(messages("report.diverged", diverged=sweep.diverged, total=len(sweep.runs)))
    if len(sweep.seeds) < MIN_SEEDS and any(f.verdict == "inconclusive" for f in sweep.findings):
        notes.append(messages("report.single_seed", seeds=len(sweep.seeds), min_seeds=MIN_SEEDS))
    if sweep.runs and not sweep.findings:
        notes.append(messages("report.no_findings"))
    if sweep.other_runs:
        notes.append(messages("report.other_runs", count=sweep.other_runs))
    return notes


def _damaged_notice(damaged: Sequence[DamagedRun], store: str, messages: Messages) -> list[str]:
    """The store's damaged runs, left out of every sweep: named, with what is wrong."""
    if not damaged:
        return []
    item = messages.entries["report.damaged_run"]  # names as they are, never translated
    named = [
        item.format(experiment=d.experiment, run_id=d.run_id, problem=d.problem)
        for d in damaged[:_DAMAGED_NAMED]
    ]
    if len(damaged) > _DAMAGED_NAMED:
        named.append(messages("report.damaged_more", count=len(damaged) - _DAMAGED_NAMED))
    runs = messages.terms("separator").join(named)
    return [messages("report.damaged_runs", store=store, count=len(damaged), runs=runs)]


def _data_line(sweep: StoredSweep, messages: Messages) -> str | None:
    # What the runs trained on, where they recorded it (MNIST: the full set or the split).
    named = sorted({str(r.results["data"]) for r in sweep.runs if "data" in r.results})
    return messages("report.data_line", data="; ".join(named)) if named else None


def _settings(config: Any) -> list[tuple[str, str]]:
    return [
        (key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
        for key, value in config_to_dict(config).items()
    ]


def _environment(sweeps: dict[str, StoredSweep | None], messages: Messages, store: str) -> list:
    runs = [run for sweep in sweeps.values() if sweep for run in sweep.runs]
    missing = messages("report.env_not_recorded")
    rows = []
    for key in _ENVIRONMENT_KEYS:
        values = sorted({str(run.versions[key]) for run in runs if key in run.versions})
        rows.append((messages(f"report.env_{key}"), ", ".join(values) or missing))
    seeds = [
        f"{name}: {', '.join(map(str, sweep.seeds))}" for name, sweep in sweeps.items() if sweep
    ]
    created = sorted(run.created for run in runs if run.created)
    rows += [
        (messages("report.env_seeds"), "; ".join(seeds) or missing),
        (messages("report.env_runs"), str(len(runs))),
        (messages("report.env_dates"), f"{created[0]} – {created[-1]}" if created else missing),
        (messages("report.env_store"), store),
    ]
    return rows


def _context(
    sweeps: dict[str, StoredSweep | None],
    figures: dict[str, Path],
    notices: list[str],
    lang: str,
    store: str,
    out: Path,
    embed: bool,
) -> dict[str, Any]:
    messages = get_messages(lang)

    def image(name: str) -> str:
        path = figures[name]
        if embed:
            return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        return f"figures/{path.name}"

    sections = []
    for name in EXPERIMENTS:
        sweep = sweeps[name]
        key = f"experiments.{name}"
        section = {
            "id": name,
            "title": messages(f"{key}.title"),
            "question": messages(f"{key}.question"),
            "command": reproduce_command(name, sweep.config if sweep else None, store),
            "present": sweep is not None,
            "part": EXPERIMENTS[name].part,
        }
        if sweep is not None:
            section |= {
                "image": image(name) if name in figures else None,
                "alt": messages(f"{key}.figure_title", depth=getattr(sweep.config, "depth", "")),
                "caption": messages(f"{key}.caption"),
                "data": _data_line(sweep, messages),
                "findings": _finding_rows(sweep, lang, name),
                "notices": _notices(sweep, messages),
                "settings": _settings(sweep.config),
            }
        sections.append(section)
    return {
        "speech": _speech_section(sweeps, figures, messages, image),
        "lang": lang,
        "t": {
            k.split(".", 1)[1]: v for k, v in messages.entries.items() if k.startswith("report.")
        },
        "generated": messages("report.generated", version=__version__),
        "seed_rule": messages("report.seed_rule", min_seeds=MIN_SEEDS),
        "report_command": " ".join(
            ["leaky", "report", "--store", shlex.quote(store), "--out", shlex.quote(str(out))]
            + (["--lang", lang] if lang != "en" else [])
        ),
        "summary": [row for s in sections if s["present"] for row in s["findings"]],
        "beyond_commands": "\n".join(
            [MNIST_FETCH_COMMAND]
            + [  # the full presets: the published settings as far as this CPU allows
                shlex.join(["leaky", "run", name, "--store", store])
                for name, experiment in EXPERIMENTS.items()
                if experiment.part == "beyond"
            ]
        ),
        "sections": sections,
        "curves": image("curves"),
        "notices": notices,
        "environment": _environment(sweeps, messages, store),
    }


def _speech_section(
    sweeps: dict[str, StoredSweep | None], figures: dict[str, Path], messages: Messages, image: Any
) -> dict[str, Any]:
    """The speech section: the spectrogram figure when FSDD is here, else how to get it."""
    accuracy = sweeps.get("accuracy")
    ran = accuracy is not None and any(
        run.cell.get("task", "").startswith("fsdd-") for run in accuracy.runs
    )
    return {
        "title": messages("speech.title"),
        "intro": messages("speech.intro"),
        "image": image(SPEECH_FIGURE) if SPEECH_FIGURE in figures else None,
        "alt": messages("speech.figure_title"),
        "caption": messages("speech.caption"),
        "credit": messages("speech.credit", credit=FSDD_CREDIT, license=FSDD_LICENSE),
        "absent": None
        if SPEECH_FIGURE in figures
        else messages("speech.absent", command=FETCH_COMMAND),
        "not_run": None if ran else messages("speech.not_run"),
        "commands": f"{FETCH_COMMAND}\nleaky demo",
    }


def _markdown_text(text: object) -> str:
    # Text from data (paths, settings) read as itself in Markdown: markup characters are
    # escaped, and no pipe or newline can end a table cell or row early.
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", str(text)).replace("\n", " ")


def _code_block(text: object, info: str = "") -> str:
    """A fenced code block that no text can close early.

    The fence is longer than any run of backticks in the text, so a path holding a
    newline and a fence stays inside the block.

    Examples:
        >>> print(_code_block("a ```` b", "sh"))
        `````sh
        a ```` b
        `````
    """
    text = str(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("leaky.report", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = _markdown_text
    environment.filters["code_block"] = _code_block
    return environment


def _draw_figures(
    sweeps: dict[str, StoredSweep | None], out: Path, lang: str
) -> tuple[dict[str, Path], list[Path], list[str]]:
    figure_lang, font, notices = figure_language(lang)
    messages = get_messages(figure_lang)
    folder = out / "figures"
    paths, png = [], {}
    with figure_style(font):
        for name, draw in {**FIGURES, **BEYOND_FIGURES}.items():
            sweep = sweeps.get(name)
            if sweep is None or not sweep.runs:
                continue
            written = save_figure(draw(sweep, messages), folder, name, ("png", "svg"))
            paths += written
            png[name] = written[0]
    try:  # what the speech networks see, when the recordings are on this machine
        examples = example_spectrograms(fsdd_folder(sweeps.get("accuracy")))
    except ValueError:  # not here (or damaged): the section says how to get them
        examples = []
    if examples:
        with figure_style(font):
            written = save_figure(
                spectrogram_figure(examples, messages), folder, SPEECH_FIGURE, ("png", "svg")
            )
        paths += written
        png[SPEECH_FIGURE] = written[0]
    curves, _, _ = write_curves(folder, lang=lang)
    paths += curves
    png["curves"] = curves[0]
    return png, paths, notices


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary pages and figures that a killed ``leaky report`` left in ``out``."""
    for fmt in PAGE_FORMATS:
        remove_stale_temporaries(out / f"report.{fmt}")
    for name in [*FIGURES, *BEYOND_FIGURES, "curves", SPEECH_FIGURE]:
        for fmt in FIGURE_FORMATS:
            remove_stale_temporaries(out / "figures" / f"{name}.{fmt}")


def write_report(
    store_path: str | Path,
    out_dir: str | Path,
    *,
    lang: str = "en",
    formats: Sequence[str] = PAGE_FORMATS,
) -> ReportFiles:
    """Write ``report.html`` and/or ``report.md`` and their figures into ``out_dir``.

    Reads only the store (opened read-only): findings are recomputed by each experiment's
    summary. Experiments absent from the store get a section that says so and how to run
    them; damaged runs are left out and named in a notice. The whole report is built in a
    temporary folder inside ``out_dir`` and moved into place at the end, figures first and
    the pages last, so an error (or a kill) midway leaves the previous report as it was;
    temporary files of a killed run go next time.
    """
    if lang not in LANGUAGES:
        raise ParameterError(
            f"Expected {{lang}} in {', '.join(LANGUAGES)}, but got {lang!r}", "lang"
        )
    formats = check_page_formats(formats)
    with open_store_for_reading(store_path) as store:
        sweeps = load_sweeps(store)
        damaged = store.damaged_runs()
    out = ensure_output_dir(out_dir)
    with staging_folder(out, "report") as stage:
        png, figure_paths, notices = _draw_figures(sweeps, stage, lang)
        notices = _damaged_notice(damaged, str(store_path), get_messages(lang)) + notices
        templates = _templates()
        pages = []
        for fmt in formats:
            context = _context(
                sweeps, png, notices, lang, str(store_path), Path(out_dir), embed=fmt == "html"
            )
            text = templates.get_template(f"report.{fmt}.j2").render(**context)
            page = stage / f"report.{fmt}"
            page.write_text(text, encoding="utf-8")
            pages.append(page)
        built = [*figure_paths, *pages]  # pages last: they point at the figures
        _remove_stale_temporaries(out)
        ensure_output_dir(out / "figures")
        for path in built:
            os.replace(path, out / path.relative_to(stage))
    final = [out / path.relative_to(stage) for path in built]
    return ReportFiles(
        pages=final[len(figure_paths) :], figures=final[: len(figure_paths)], notices=notices
    )
