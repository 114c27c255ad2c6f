"""leaky report: pages and figures from a store, in both languages, checked in a real browser."""

import base64
import math
import re
import shlex
import shutil

import html5lib
import pytest
from click.testing import CliRunner

from leaky.app.cli import cli
from leaky.data.mnist import find_mnist
from leaky.lab.experiments import EXPERIMENTS
from leaky.lab.experiments.accuracy import speech_tasks_present
from leaky.lab.findings import resolve_config, run_experiment
from leaky.lab.plan import plan
from leaky.lab.store import RunRecord, Store
from leaky.messages import get_messages
from leaky.report import write_report

NS = {"h": "http://www.w3.org/1999/xhtml"}


def _mnist_present() -> bool:
    try:
        find_mnist()
    except ValueError:
        return False
    return True


# The experiments the tiny store runs: those beyond the article read MNIST from disk, and a
# clone without it (no ../shared/data) leaves them out (tests/test_beyond.py covers them).
RUN = [name for name, e in EXPERIMENTS.items() if e.part == "article" or _mnist_present()]


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """Every experiment's tiny preset, run for real into one store."""
    path = tmp_path_factory.mktemp("store") / "results.db"
    with Store(path) as store:
        for name in RUN:
            run_experiment(name, resolve_config(name, preset="tiny"), store, progress=False)
    return path


@pytest.fixture(scope="module")
def reports(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    return {lang: write_report(tiny_store, out / lang, lang=lang) for lang in ("en", "ja")}


def _parse(path):
    # Strict: any HTML parse error fails the test.
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=True).parse(
        path.read_text(encoding="utf-8")
    )


def _text(element):
    return "".join(element.itertext()).strip()


def _summary(path):
    """Summary table rows: (claim, experiment, result, verdict)."""
    document = _parse(path)
    table = document.find(".//h:section[@id='summary']//h:table", NS)
    return [
        tuple(_text(cell) for cell in row.findall("h:td", NS))
        for row in table.findall(".//h:tbody/h:tr", NS)
    ]


def _synthetic_store(path, name, overrides, result, status=lambda spec: "finished", metrics=None):
    """A store of the runs ``plan`` asks for, with results the test chooses."""
    config = resolve_config(name, overrides=overrides)
    with Store(path) as store:
        for spec in plan(name, config):
            store.save(
                RunRecord(
                    spec.run_id,
                    name,
                    spec.cell,
                    spec.seed,
                    spec.config,
                    status(spec),
                    0.1,
                    metrics=metrics(spec) if metrics else [],
                    results=result(spec),
                    versions={"leaky": "0.1.0", "python": "3.11", "threads": "2"},
                )
            )
    return path


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_report_renders_every_figure_in_both_languages(reports, lang):
    files = reports[lang]
    names = {p.stem for p in files.figures}
    speech = {"speech"} if speech_tasks_present() else set()  # spectrograms: FSDD is here
    assert names == {*RUN, "curves", *speech}
    for name in names:
        for suffix in (".png", ".svg"):
            figure = files.html.parent / "figures" / f"{name}{suffix}"
            assert figure.stat().st_size > 5000, figure
    assert {p.name for p in files.pages} == {"report.html", "report.md"}


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_html_parses_and_embeds_every_figure(reports, lang):
    html = reports[lang].html
    document = _parse(html)
    sources = [img.get("src") for img in document.iter(f"{{{NS['h']}}}img")]
    pngs = sorted(p for p in reports[lang].figures if p.suffix == ".png")
    assert len(sources) == len(pngs)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert embedded == {p.read_bytes() for p in pngs}  # each figure, as written to disk
    text = html.read_text(encoding="utf-8")
    outside_namespaces = re.sub(r'xmlns(:\w+)?="https?://[^"]*"', "", text)
    assert not re.search(r"https?://", outside_namespaces)
    assert "<script" not in text and "@import" not in text and "url(" not in text


def test_japanese_page_speaks_japanese(reports):
    html = reports["ja"].html.read_text(encoding="utf-8")
    messages = get_messages("ja")
    for word in ("勾配消失", "デッドニューロン", "活性化関数", messages("report.summary")):
        assert word in html
    assert '<html lang="ja">' in html
    english = reports["en"].html.read_text(encoding="utf-8")
    assert "勾配" not in english and '<html lang="en">' in english


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_sections_have_question_figure_numbers_verdict_and_command(reports, lang):
    document = _parse(reports[lang].html)
    for name in RUN:
        section = document.find(f".//h:section[@id='{name}']", NS)
        text = _text(section)
        assert get_messages(lang)(f"experiments.{name}.question") in text
        assert section.find(".//h:figure/h:img", NS) is not None
        assert section.find(".//h:span[@class]", NS) is not None  # a verdict
        command = _text(section.find(".//h:pre/h:code", NS))
        assert command.startswith(f"leaky run {name} ") and "--store" in command
    import torch

    environment = document.find(".//h:section[@id='environment']", NS)
    rows = {
        _text(r.find("h:th", NS)): _text(r.find("h:td", NS))
        for r in environment.iter(f"{{{NS['h']}}}tr")
    }
    assert rows["PyTorch"] == torch.__version__  # as the runs recorded it


def test_markdown_links_figures_that_exist(reports):
    md = reports["en"].pages[1]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md.read_text(encoding="utf-8"))
    speech = 1 if speech_tasks_present() else 0  # the spectrograms, when FSDD is here
    assert len(links) == len(RUN) + 1 + speech
    assert all((md.parent / link).is_file() for link in links)
    assert "| Claim | Experiment | Result | Verdict |" in md.read_text(encoding="utf-8")


def test_reproduce_command_recreates_the_sweep(tiny_store, reports):
    from leaky.report.sweeps import load_sweeps

    with Store(tiny_store) as store:
        sweeps = load_sweeps(store)
    document = _parse(reports["en"].html)
    command = _text(document.find(".//h:section[@id='born-dead']//h:pre/h:code", NS))
    result = CliRunner().invoke(cli, [*shlex.split(command)[1:], "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"0 runs done, {len(sweeps['born-dead'].runs)} already" in result.output


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_tie_is_not_significant(tmp_path, lang):
    def value(spec):  # the same accuracy for both activations, different per seed
        return {"metric": "accuracy", "value": 0.8 + 0.01 * spec.seed}

    store = _synthetic_store(
        tmp_path / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 5}, value
    )
    files = write_report(store, tmp_path / "out", lang=lang)
    rows = [r for r in _summary(files.html) if r[1] == "accuracy"]
    assert len(rows) == 1
    assert rows[0][3] == get_messages(lang).terms("not significant")


def test_dying_relu_holds_and_missing_experiments_are_named(tmp_path):
    def result(spec):
        dead = 0.5 if spec.cell["activation"] == "relu" else 0.0
        return {
            "final_dead_fraction": dead,
            "final_never_active_fraction": dead,
            "test_accuracy": 0.3 if dead else 0.6,
        }

    def metrics(spec):
        dead = 0.5 if spec.cell["activation"] == "relu" else 0.0
        return [(s, n, dead * s / 100) for s in (0, 50, 100) for n in ("dead_fraction",)]

    overrides = {"activations": "relu,leaky_relu_0.01", "lrs": "0.3", "seeds": 2, "steps": 100}
    store = _synthetic_store(tmp_path / "s.db", "dying", overrides, result, metrics=metrics)
    files = write_report(store, tmp_path / "out")
    rows = {r[0]: r for r in _summary(files.html)}
    dies = get_messages("en")("findings.dying.relu_dies.claim")
    assert rows[dies][3] == "holds" and rows[dies][2] == "50.0% dead"
    text = files.html.read_text(encoding="utf-8")
    assert text.count(get_messages("en")("report.missing_experiment")) == len(EXPERIMENTS) - 1
    assert "leaky run vanishing --quick --store" in text
    speech = {"speech"} if speech_tasks_present() else set()  # the spectrograms: FSDD is here
    assert {p.stem for p in files.figures} == {"dying", "curves", *speech}


def test_diverged_runs_and_a_single_seed_are_said_not_hidden(tmp_path):
    def value(spec):
        if spec.cell["activation"] == "leaky_relu" and spec.seed == 1:
            return {"metric": "accuracy", "value": math.nan}
        return {"metric": "accuracy", "value": 0.8}

    def status(spec):
        return "diverged" if math.isnan(value(spec)["value"]) else "finished"

    store = _synthetic_store(
        tmp_path / "d.db", "accuracy", {"tasks": "digits-cnn", "seeds": 4}, value, status
    )
    files = write_report(store, tmp_path / "d")
    (row,) = [r for r in _summary(files.html) if r[1] == "accuracy"]
    assert row[3] == "inconclusive"
    text = files.html.read_text(encoding="utf-8")
    assert get_messages("en")("report.diverged", diverged=1, total=12) in text

    store = _synthetic_store(
        tmp_path / "one.db", "accuracy", {"tasks": "digits-cnn", "seeds": 1}, value
    )
    files = write_report(store, tmp_path / "one", lang="ja")
    (row,) = [r for r in _summary(files.html) if r[1] == "accuracy"]
    assert row[3] == get_messages("ja").terms("inconclusive")
    text = files.html.read_text(encoding="utf-8")
    assert get_messages("ja")("report.single_seed", seeds=1, min_seeds=3) in text
    assert get_messages("ja")("report.seed_rule", min_seeds=3) in text  # the rule, stated once
    assert text.count(get_messages("ja")("report.seed_rule", min_seeds=3)) == 1


def test_partial_sweeps_say_how_much_is_missing(tmp_path):
    store = _synthetic_store(
        tmp_path / "p.db",
        "born-dead",
        {"depths": "2,10", "widths": "2", "trials": 100, "inits": "he"},
        lambda spec: {
            "born_dead": 50,
            "trials": 100,
            "probability": 0.5,
            "ci_low": 0.4,
            "ci_high": 0.6,
        },
    )
    with Store(store) as db:  # keep only the ReLU runs
        db._db.execute("DELETE FROM runs WHERE cell LIKE '%leaky_relu%'")
        db._db.commit()
    files = write_report(store, tmp_path / "out", formats=("md",))
    text = files.pages[0].read_text(encoding="utf-8")
    assert get_messages("en")("report.partial", present=2, planned=4) in text
    assert not (tmp_path / "out" / "report.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "nope.db"], "No results store at 'nope.db'"),
        (["--format", "pdf"], "Expected --format html, md or html,md"),
        (["--lang", "fr"], "'fr' is not one of"),
    ],
)
def test_report_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["report", "--out", "out", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "nope.db").exists()


def test_report_command_prints_the_pages(tiny_store, tmp_path):
    result = CliRunner().invoke(
        cli, ["report", "--store", str(tiny_store), "--out", str(tmp_path), "--format", "html"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "report.html")


def test_page_in_a_real_browser_offline(reports, tmp_path):
    """Headless Chromium loads the page from disk with networking off; every image decodes."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip(
            "no Chromium installed (apt-get install chromium): page not checked in a browser"
        )
    from playwright.sync_api import sync_playwright

    html = reports["ja"].html
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            requests = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(html.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
            )
            title = page.title()
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    speech = 1 if speech_tasks_present() else 0  # the spectrograms, when FSDD is here
    assert len(images) == len(RUN) + 1 + speech
    assert all(complete and width > 0 for complete, width in images), images
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert title == get_messages("ja")("report.title")
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 50_000
    print(f"screenshot: {screenshot}")


def test_the_latest_sweep_is_reported_and_the_others_are_counted(tmp_path):
    def result(spec):
        return {"born_dead": 10, "trials": 100, "probability": 0.1, "ci_low": 0.05, "ci_high": 0.2}

    overrides = {"depths": "2", "widths": "2", "activations": "relu", "inits": "he"}
    _synthetic_store(tmp_path / "s.db", "born-dead", {**overrides, "trials": 100}, result)
    _synthetic_store(
        tmp_path / "s.db", "born-dead", {**overrides, "trials": 200, "seeds": 2}, result
    )
    files = write_report(tmp_path / "s.db", tmp_path / "out", formats=("md",))
    text = files.pages[0].read_text(encoding="utf-8")
    assert "--set trials=200" in text and "--set seeds=2" in text
    assert get_messages("en")("report.other_runs", count=1) in text
    assert "P = 0.100 \\[0.066, 0.149\\]" in text  # 20 of 200, two seeds pooled (Wilson)


def _accuracy(spec, diverged=lambda spec: False):
    if diverged(spec):
        return {"metric": "accuracy", "value": math.nan}
    return {"metric": "accuracy", "value": 0.8 + 0.01 * spec.seed}


def test_a_cell_whose_every_seed_diverged_still_renders(tmp_path):
    def lost(spec):
        return spec.cell["activation"] == "leaky_relu"

    store = _synthetic_store(
        tmp_path / "s.db",
        "accuracy",
        {"tasks": "digits-cnn", "seeds": 3, "activations": "relu,leaky_relu"},
        lambda spec: _accuracy(spec, lost),
        status=lambda spec: "diverged" if lost(spec) else "finished",
    )
    files = write_report(store, tmp_path / "out")
    (row,) = [r for r in _summary(files.html) if r[1] == "accuracy"]
    assert row[3] == "inconclusive"


def test_slope_with_a_diverged_seed_is_inconclusive(tmp_path):
    def lost(spec):
        return spec.cell["negative_slope"] == 0.01 and spec.seed == 0

    store = _synthetic_store(
        tmp_path / "s.db",
        "slope",
        {"slopes": "0,0.01,1", "seeds": 4},
        lambda spec: {
            "test_accuracy": math.nan if lost(spec) else 0.5 + spec.cell["negative_slope"] * 0.0,
            "dead_fraction": 0.0,
            "never_active_fraction": 0.0,
        },
        status=lambda spec: "diverged" if lost(spec) else "finished",
    )
    files = write_report(store, tmp_path / "out")
    verdicts = {r[0]: r[3] for r in _summary(files.html)}
    assert verdicts[get_messages("en")("findings.slope.leaky_vs_relu.claim")] == "inconclusive"


def test_dying_with_nothing_beside_relu_is_inconclusive(tmp_path):
    store = _synthetic_store(
        tmp_path / "s.db",
        "dying",
        {"activations": "relu", "lrs": "0.3", "bias_shifts": "-1", "seeds": 1},
        lambda spec: {
            "final_dead_fraction": 0.4,
            "final_never_active_fraction": 0.4,
            "test_accuracy": 0.2,
        },
    )
    from leaky.report.sweeps import load_sweeps

    with Store(store) as db:
        findings = {f.key: f for f in load_sweeps(db)["dying"].findings}
    assert findings["dying.relu_dies"].verdict == "holds"
    assert "dying.leaky_recovers" not in findings  # no other activation in the sweep at all
    assert findings["dying.relu_dies"].numbers["seeds"] == 1  # a measurement on one seed...
    text = write_report(store, tmp_path / "out").html.read_text(encoding="utf-8")
    assert get_messages("en")("report.one_seed") in text  # ...says so in the page


def test_dying_grid_names_where_leaky_recovers_and_where_neither_learns(tmp_path):
    # The cell: lr 0.3 / bias -1, Leaky ReLU near 0.478 and ReLU near 0.263 with
    # a third of ReLU's units dead; at lr 1 / bias -1 both stay at chance (one ReLU run
    # diverged); at lr 0.01 ReLU keeps its units and nothing needs recovering.
    table = {
        (0.3, "relu"): (0.33, 0.263),
        (0.3, "leaky_relu_0.01"): (0.0, 0.478),
        (1.0, "relu"): (0.6, 0.10),
        (1.0, "leaky_relu_0.01"): (0.0, 0.11),
        (0.01, "relu"): (0.0, 0.6),
        (0.01, "leaky_relu_0.01"): (0.0, 0.6),
    }

    def diverged(spec):
        return spec.cell["lr"] == 1.0 and spec.cell["activation"] == "relu" and spec.seed == 0

    def result(spec):
        dead, accuracy = table[(spec.cell["lr"], spec.cell["activation"])]
        return {
            "final_dead_fraction": dead,
            "final_never_active_fraction": dead,
            "test_accuracy": math.nan if diverged(spec) else accuracy + 0.004 * spec.seed,
            "chance": 0.1,
        }

    overrides = {
        "activations": "relu,leaky_relu_0.01",
        "lrs": "0.01,0.3,1",
        "bias_shifts": "-1",
        "seeds": 3,
    }
    store = _synthetic_store(
        tmp_path / "s.db",
        "dying",
        overrides,
        result,
        status=lambda spec: "diverged" if diverged(spec) else "finished",
    )
    from leaky.report.sweeps import load_sweeps

    with Store(store) as db:
        findings = {f.key: f for f in load_sweeps(db)["dying"].findings}
    recovers = findings["dying.leaky_recovers"]
    assert recovers.verdict == "holds" and recovers.numbers["cells_where_relu_fails"] == 2
    cell = recovers.numbers["recovers"]["lr=0.3 bias_shift=-1"]
    assert cell["accuracy"][0] == pytest.approx(0.482) and cell["relu_accuracy"][0] < 0.27
    assert cell["dead"] == 0.0 and cell["relu_dead"] == 0.33 and cell["p_value"] < 0.05
    assert list(recovers.numbers["neither"]) == ["lr=1 bias_shift=-1"]
    assert recovers.numbers["neither"]["lr=1 bias_shift=-1"]["relu_diverged"] == 1
    assert "0.482" in recovers.detail() and "lr=1 bias_shift=-1" in recovers.detail()
    grid = findings["dying.relu_dies"].numbers["cells"]
    assert len(grid) == 6 and grid["relu lr=1 bias_shift=-1"]["diverged"] == 1
    assert all(len(row["accuracy"]) == 3 for row in grid.values())  # mean and 95% interval
    files = write_report(store, tmp_path / "out")
    assert "dying" in {p.stem for p in files.figures}


def test_the_seed_rule_holds_back_every_comparison_on_fewer_than_3_seeds(tmp_path):
    from leaky.lab.experiments.base import MIN_SEEDS, comparison_verdict
    from leaky.lab.experiments.init_scale import EXPERIMENT as INIT
    from leaky.lab.experiments.vanishing import EXPERIMENT as VANISHING

    assert MIN_SEEDS == 3 and comparison_verdict("does not hold", 2) == "inconclusive"
    for name in ("vanishing", "dying", "init", "accuracy", "slope"):
        assert resolve_config(name, preset="quick").seeds >= MIN_SEEDS, name
    config = resolve_config("init", overrides={"seeds": 1, "activations": "relu"})
    runs = [
        RunRecord(
            f"{init}",
            "init",
            {"activation": "relu", "init": init},
            0,
            {},
            "finished",
            0,
            results={
                "std_ratio_last_to_first": 1e-5 if init == "xavier" else 0.5,
                "stalled": init == "xavier",
            },
        )
        for init in ("xavier", "kaiming")
    ]
    (finding,) = INIT.summarize(config, runs)
    assert finding.verdict == "inconclusive" and finding.numbers["seeds"] == 1
    config = resolve_config("vanishing", overrides={"seeds": 1, "depths": "20"})
    runs = [
        RunRecord(
            a,
            "vanishing",
            {"activation": a, "depth": 20},
            0,
            {},
            "finished",
            0,
            results={"ratio_at_init": 1e-9 if a == "sigmoid" else 0.5, "stalled": a == "sigmoid"},
        )
        for a in ("sigmoid", "leaky_relu")
    ]
    verdicts = {f.key: f.verdict for f in VANISHING.summarize(config, runs)}
    assert verdicts["vanishing.sigmoid_stalls"] == "inconclusive"  # a comparison
    assert verdicts["vanishing.sigmoid_vanishes"] == "holds"  # a measurement, flagged


def test_vanishing_without_a_ratio_is_inconclusive(tmp_path):
    from leaky.lab.experiments.vanishing import EXPERIMENT

    config = resolve_config("vanishing", preset="tiny", overrides={"depths": "20"})
    runs = [
        RunRecord(
            f"{a}",
            "vanishing",
            {"activation": a, "depth": 20},
            0,
            {},
            "diverged",
            0.0,
            results={"stalled": True},
        )
        for a in ("sigmoid", "leaky_relu")
    ]
    verdicts = {f.key: f.verdict for f in EXPERIMENT.summarize(config, runs)}
    assert verdicts["vanishing.sigmoid_vanishes"] == "inconclusive"
    assert verdicts["vanishing.leaky_flows"] == "inconclusive"


def _vanishing(spec):
    return {
        "ratio_at_init": 1e-5 if spec.cell["activation"] == "sigmoid" else 0.7,
        "test_accuracy": 0.5,
        "initial_loss": 2.3,
        "final_loss": 1.0,
        "stalled": False,
        "init": "kaiming",
    }


@pytest.mark.parametrize("spoiled", ['{"grad_norms": "abc"}', '{"ratio_at_init": "abc"}'])
def test_results_of_the_wrong_shape_are_named_and_left_out_of_the_report(tmp_path, spoiled):
    # Valid JSON objects, but not what a vanishing run writes: the first
    # was silently dropped ("(2 seeds)", no note), the second failed the report as a bug.
    import sqlite3

    overrides = {"depths": "20", "activations": "sigmoid,leaky_relu", "seeds": 3}
    store = _synthetic_store(tmp_path / "s.db", "vanishing", overrides, _vanishing)
    with Store(store) as db:
        runs = db.runs("vanishing")
    spoiled_ids = [run.run_id for run in runs if run.cell["activation"] == "sigmoid"]
    with sqlite3.connect(store) as db:
        for run_id in spoiled_ids:
            db.execute("UPDATE runs SET results = ? WHERE run_id = ?", (spoiled, run_id))
    db.close()
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["report", "--store", str(store), "--out", str(out)])
    assert result.exit_code == 0 and "unexpectedly" not in result.output, result.output
    assert len(spoiled_ids) == 3 and all(run_id in result.output for run_id in spoiled_ids)
    text = (out / "report.html").read_text(encoding="utf-8")
    messages = get_messages("en")
    assert all(run_id in text for run_id in spoiled_ids)
    notice = messages("report.damaged_runs", store=store, count=3, runs="RUNS").split("RUNS")
    assert all(part.strip() in text for part in notice)
    assert messages("report.partial", present=len(runs) - 3, planned=len(runs)) in text
    key = "ratio_at_init" if "ratio_at_init" in spoiled else "test_accuracy"
    assert key in text.split(notice[0].strip(), 1)[1]  # the notice says what is wrong


def test_reproduce_command_keeps_exact_floats_and_grid_order():
    from leaky.report.sweeps import reproduce_command

    config = resolve_config("dying", overrides={"lrs": "0.3,0.1,0.333333333"})
    command = reproduce_command("dying", config, "my store.db")
    assert "--set lrs=0.3,0.1,0.333333333" in command and "--store 'my store.db'" in command
    assert "bias_shifts" not in command  # the default (0.0, -1.0), in its own order


def test_store_paths_are_text_not_markup(tmp_path):
    folder = tmp_path / "<b>*v2* x"
    folder.mkdir()
    store = _synthetic_store(
        folder / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 3}, _accuracy
    )
    files = write_report(store, tmp_path / "out", lang="ja")
    md = files.pages[1].read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", md, flags=re.S)  # code blocks show text as it is
    assert "<b>" not in prose and "\\<b\\>\\*v2\\*" in prose
    assert "<b>" not in files.html.read_text(encoding="utf-8")
    assert f"leaky report --store '{store}' --out {tmp_path / 'out'} --lang ja" in md


def _outside_code_blocks(markdown):
    """The lines of ``markdown`` outside fenced code blocks, by CommonMark's fence rules."""
    outside, fence = [], None
    for line in markdown.splitlines():
        match = re.match(r" {0,3}(`{3,}|~{3,})(.*)$", line)
        if fence is None:
            if match and not (match[1][0] == "`" and "`" in match[2]):
                fence = match[1]
            else:
                outside.append(line)
        elif (
            match
            and match[1][0] == fence[0]
            and len(match[1]) >= len(fence)
            and not match[2].strip()
        ):
            fence = None
    return outside


def test_a_store_path_cannot_break_out_of_a_code_block(tmp_path):
    folder = tmp_path / "x\n```\n# Heading\n<script>"
    folder.mkdir()
    store = _synthetic_store(
        folder / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 3}, _accuracy
    )
    files = write_report(store, tmp_path / "out", formats=("md",))
    md = files.pages[0].read_text(encoding="utf-8")
    assert md.count("# Heading") >= 2  # the path is shown, in the commands
    prose = "\n".join(_outside_code_blocks(md))
    assert not re.search(r"^ {0,3}# Heading", prose, flags=re.M)  # no heading of the path's
    assert not re.search(r"(?<!\\)<script", prose)  # no raw HTML either


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_report_that_fails_midway_keeps_the_previous_one_whole(tmp_path, monkeypatch):
    store = _synthetic_store(
        tmp_path / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 3}, _accuracy
    )
    out = tmp_path / "out"
    write_report(store, out)
    for path in out.rglob("*"):
        if path.is_file():
            path.write_bytes(b"the previous report")
    before = _tree(out)
    assert {"report.html", "report.md", "figures/accuracy.png", "figures/curves.png"} <= set(before)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("leaky.report.page.write_curves", disk_full)  # after the accuracy figure
    with pytest.raises(OSError, match="No space left"):
        write_report(store, out)
    assert _tree(out) == before  # nothing new, nothing half-written, no temporary files


def test_temporary_files_of_a_killed_report_are_removed_next_time(tmp_path):
    store = _synthetic_store(
        tmp_path / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 3}, _accuracy
    )
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    dead = _dead_pid()
    stale = [
        out / "figures" / ".vanishing.k3_x9aq2.png",  # as leaky 0.1 named them
        out / "figures" / f".accuracy.{dead}.ab12cd34.svg",
        out / f".report.{dead}.zz99yy88" / "report.html",
        out / f".report.{dead}.zz99yy88" / "figures" / "curves.png",
        out / f".report.{dead}.ab12cd34.md",
    ]
    alive = out / "figures" / ".accuracy.1.ab12cd34.svg"  # pid 1 is running: not stale
    for path in [*stale, alive]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    write_report(store, out)
    left = sorted(str(p.relative_to(out)) for p in out.rglob(".*"))
    assert left == [str(alive.relative_to(out))]
    assert (out / "report.html").is_file() and (out / "figures" / "accuracy.png").is_file()


def test_runs_of_an_unknown_config_are_counted_not_fatal(tmp_path):
    store = _synthetic_store(
        tmp_path / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 3}, _accuracy
    )
    with Store(store) as db:
        (run,) = db.runs("accuracy")[:1]
        run.run_id, run.config = "future", {**run.config, "new_setting": 1}
        run.versions = {**run.versions, "leaky": "9.0"}
        db.save(run)
    files = write_report(store, tmp_path / "out", formats=("md",))
    text = files.pages[0].read_text(encoding="utf-8")
    assert get_messages("en")("report.other_runs", count=1) in text


def test_the_same_sweep_at_another_thread_count_is_another_sweep(tmp_path):
    store = _synthetic_store(
        tmp_path / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 3}, _accuracy
    )
    with Store(store) as db:
        runs = db.runs("accuracy")
        for run in runs:
            run.run_id = run.run_id + "-1thread"
            run.versions = {**run.versions, "threads": "1"}
            db.save(run)
    files = write_report(store, tmp_path / "out", formats=("md",))
    text = files.pages[0].read_text(encoding="utf-8")
    # One sweep reported (3 seeds per cell, not 6), the other counted among other runs.
    assert get_messages("en")("report.other_runs", count=len(runs)) in text


def test_an_empty_file_is_not_a_store(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    result = CliRunner().invoke(
        cli, ["report", "--store", str(tmp_path / "empty.db"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "is empty, not a leaky results store" in result.output
    assert (tmp_path / "empty.db").read_bytes() == b"" and not (tmp_path / "o").exists()


def test_findings_json_is_strict_json(tmp_path):
    import json

    from leaky.lab.experiments import Finding
    from leaky.lab.findings import write_findings

    path = write_findings(
        tmp_path / "f.json",
        [
            Finding(
                "born-dead.leaky_never",
                "inconclusive",
                {"born_dead": 0, "trials": 0, "ci95": [math.nan, 1.0]},
            )
        ],
    )
    data = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))
    assert data[0]["numbers"]["ci95"] == [None, 1.0]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_damaged_runs_are_named_and_left_out_of_the_report(tmp_path, lang):
    import sqlite3

    store = _synthetic_store(
        tmp_path / "s.db", "accuracy", {"tasks": "digits-cnn", "seeds": 3}, _accuracy
    )
    with Store(store) as db:
        runs = db.runs("accuracy")
    spoiled = [runs[0].run_id, runs[1].run_id]
    with sqlite3.connect(store) as db:  # results edited by hand in the store
        db.execute("UPDATE runs SET results = ? WHERE run_id = ?", ('{"metric": 1 x}', spoiled[0]))
        db.execute("UPDATE runs SET results = '\"abc\"' WHERE run_id = ?", (spoiled[1],))
    db.close()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["report", "--store", str(store), "--out", str(out), "--lang", lang]
    )
    assert result.exit_code == 0, result.output
    assert all(run_id in result.output for run_id in spoiled) and str(store) in result.output
    text = (out / "report.html").read_text(encoding="utf-8")
    messages = get_messages(lang)
    assert all(run_id in text for run_id in spoiled)
    assert messages("report.partial", present=len(runs) - 2, planned=len(runs)) in text
    notice = messages("report.damaged_runs", store=store, count=2, runs="RUNS").split("RUNS")
    assert all(part.strip() in text for part in notice)
