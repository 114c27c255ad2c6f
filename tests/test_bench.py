"""leaky.bench: the benchmark code is checked for correctness, never for speed."""

import json

import pytest
import torch
from click.testing import CliRunner

from leaky import functional as F
from leaky.app.cli import cli
from leaky.bench import SuiteResult, compare, run_suite


def test_compare_alternates_and_reports_ratios():
    calls = []
    c = compare(lambda: calls.append("a"), lambda: calls.append("b"), pairs=4, warmup=1)
    assert calls[:2] == ["a", "b"] and calls[2:4] == ["a", "b"] and calls[4:6] == ["b", "a"]
    assert len(c.candidate) == len(c.baseline) == 4
    summary = c.summary()
    assert summary["pairs"] == 4 and summary["speedup_min"] <= summary["speedup"]
    with pytest.raises(ValueError, match="at least 1 pair"):
        compare(lambda: None, lambda: None, pairs=0)


def test_quick_kernels_suite_produces_documented_json(tmp_path):
    out = tmp_path / "b.json"
    result = CliRunner().invoke(cli, ["bench", "kernels", "--quick", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "leaky_relu forward" in result.output and "speed-up" in result.output
    data = json.loads(out.read_text())
    assert data["machine"]["torch"] == torch.__version__ and data["device"] == "cpu"
    (suite,) = data["suites"]
    fields = {
        "case",
        "candidate",
        "baseline",
        "allocates",
        "checked",
        "candidate_ms",
        "baseline_ms",
        "speedup",
        "samples_candidate_s",
        "samples_baseline_s",
    }
    for row in suite["rows"]:
        assert fields <= set(row) and row["allocates"] in ("allocating", "preallocated")
        assert len(row["samples_candidate_s"]) == len(row["samples_baseline_s"]) >= 7
    assert {r["allocates"] for r in suite["rows"]} == {"allocating", "preallocated"}
    assert any(r["baseline"] == "copy" for r in suite["rows"])
    # The stored run prints as the run printed it: docs copy its tables, a test checks them.
    shown = CliRunner().invoke(cli, ["bench", "--show", str(out)])
    assert shown.exit_code == 0, shown.output
    assert shown.output == result.output.replace(f"Wrote {out}\n", "")


def test_show_refuses_what_it_cannot_print(tmp_path):
    out = tmp_path / "b.json"
    out.write_text(json.dumps({"machine": {}, "device": "cpu", "suites": []}))
    cases = [
        (["--show", str(tmp_path / "none.json")], "Cannot read"),
        (["--show", str(tmp_path)], "Cannot read"),
        (["--show", str(out), "memory"], "holds no 'memory' suite (it holds none)"),
        (["--show", str(out), "--threads", "1"], "--threads does not apply"),
    ]
    (tmp_path / "bad.json").write_text("{")
    cases.append((["--show", str(tmp_path / "bad.json")], "is not a run written by"))
    for arguments, message in cases:
        result = CliRunner().invoke(cli, ["bench", *arguments])
        assert result.exit_code == 2 and message in result.output, (arguments, result.output)
        assert "Traceback" not in result.output


def test_a_wrong_fast_path_is_never_timed(monkeypatch):
    monkeypatch.setattr(F, "leaky_relu", lambda x, *a, **k: torch.zeros_like(x))
    with pytest.raises(AssertionError, match="refusing to time a wrong result"):
        run_suite("kernels", quick=True)


def test_bench_bad_input_and_missing_cuda():
    result = CliRunner().invoke(cli, ["bench", "nope"])
    assert result.exit_code == 2 and "unknown suite 'nope'" in result.output
    result = CliRunner().invoke(cli, ["bench", "kernels", "--quick", "--threads", "999"])
    assert result.exit_code == 2 and "--threads at most" in result.output
    if not torch.cuda.is_available():
        result = CliRunner().invoke(cli, ["bench", "--device", "cuda"])
        assert result.exit_code == 2 and "CUDA is not available" in result.output
        assert len(result.output.strip().splitlines()) == 1  # one line, no traceback


@pytest.mark.parametrize("suite", ["monitor", "train"])
def test_step_suites_check_equal_losses_and_time_both(suite):
    result = run_suite(suite, quick=True)
    assert result.rows and all(row.checked == "equal loss" for row in result.rows)
    assert all(len(row.comparison.ratios) >= 5 for row in result.rows)
    assert suite in result.table()


def test_monitor_suite_times_four_models_and_the_cost_over_every():
    result = run_suite("monitor", quick=True)
    cases = [row.case for row in result.rows]
    # The small MLP at none, defaults, every=1, 4, 64; three more at none, defaults, every=1;
    # then the small MLP compiled and in a Lightning fit, each side in its own process.
    assert len(cases) == 16 and len({case.split(",")[0] for case in cases}) == 4
    compiled, fit = result.rows[14:]
    assert "compiled, Monitor defaults" in compiled.case and compiled.baseline == "compiled without"
    assert "Lightning fit, LeakyMonitor defaults" in fit.case
    assert fit.baseline == "Lightning fit without"
    assert all(
        row.checked == "equal loss" and len(row.comparison.ratios) == 7 for row in (compiled, fit)
    )
    assert [row.candidate for row in result.rows[:5]] == [
        "no Monitor",
        "with Monitor (defaults)",
        "with Monitor (every=1)",
        "with Monitor (every=4)",
        "with Monitor (every=64)",
    ]
    assert "95% interval" in result.table()
    shares = [note for note in result.notes if note.startswith("in hooks ")]  # one per row
    assert len(shares) == 4 + 3 * 2  # each monitored, uncompiled row
    percents = [float(note.split()[2].rstrip("%")) for note in shares]
    assert all(0 < p < 100 for p in percents)
    defaults, every_1, _, every_64 = percents[:4]  # the small MLP's
    assert every_1 > defaults and every_1 > every_64  # every=1 costs more than 16 or 64


def test_bytes_kept_per_element_for_each_save_mode():
    from leaky.bench.memory import kept_bytes_per_element

    assert kept_bytes_per_element("leaky") == 0.0  # only the output, shared with the next layer
    assert kept_bytes_per_element("leaky-mask") == 0.125  # one bit
    assert kept_bytes_per_element("torch") == 4.0  # PyTorch keeps the float32 input
    assert kept_bytes_per_element("relu") == 0.0


@pytest.mark.slow
def test_memory_suite_measures_each_variant_in_its_own_process(tmp_path):
    result = run_suite("memory", quick=True)
    growth = {(m.model, m.variant): m.growth_mib for m in result.memory}
    assert all(m.baseline == "relu" for m in result.memory)
    assert len(growth) == 10 and all(v > 0 for v in growth.values())
    assert growth[("mlp", "leaky")] <= 1.05 * growth[("mlp", "relu")]
    assert growth[("mlp", "torch")] >= 1.3 * growth[("mlp", "relu")]
    data = result.to_dict()
    assert data["memory"][0]["samples_mib"] and data["bytes_per_element"]["torch"] == 4.0
    assert "MALLOC_MMAP_THRESHOLD_=65536" in result.table()
    assert SuiteResult.from_dict(json.loads(json.dumps(data))).table() == result.table()


def test_benchmark_models_start_from_the_same_weights_in_every_variant():
    from leaky.lab.benchmark_models import BATCH_NORM_VARIANTS, build

    for kind in ("dcgan", "resnet"):
        outputs = []
        for variant in BATCH_NORM_VARIANTS:
            model, x, loss = build(kind, variant, quick=True)
            outputs.append(loss(model(x)).item())
        assert len(set(outputs)) == 1, (kind, outputs)  # forward of the fused op is bitwise
    with pytest.raises(ValueError, match="Unknown variant"):
        build("dcgan", "relu", quick=True)


def test_fused_batch_norm_keeps_less_for_backward():
    from leaky.lab.benchmark_models import saved_by_autograd_mib

    saved = {
        v: saved_by_autograd_mib("dcgan", v, quick=True)
        for v in ("torch-inplace", "torch", "leaky-fused")
    }
    assert saved["leaky-fused"] < saved["torch-inplace"] < saved["torch"]
    # Exactly what the three fused blocks' BatchNorms kept is no longer kept (the published
    # discriminator's input layer has no BatchNorm): at batch 32, the float32 convolution
    # outputs of 128 x 16 x 16, 256 x 8 x 8 and 512 x 4 x 4, and each channel's saved mean
    # and inverse standard deviation.
    channels = 128 + 256 + 512
    dropped = (32 * (128 * 16 * 16 + 256 * 8 * 8 + 512 * 4 * 4) + 2 * channels) * 4 / 2**20
    assert saved["torch-inplace"] - saved["leaky-fused"] == pytest.approx(dropped)


@pytest.mark.slow
def test_batchnorm_suite_times_checked_pairs_and_measures_each_variant():
    result = run_suite("batchnorm", quick=True)
    assert [row.checked for row in result.rows] == ["equal loss", "equal loss"]
    peaks = {(m.model, m.variant): m for m in result.memory}
    assert set(peaks) == {
        (k, v) for k in ("dcgan", "resnet") for v in ("torch-inplace", "torch", "leaky-fused")
    }
    assert all(m.baseline == "torch-inplace" and m.growth_mib > 0 for m in peaks.values())
    assert peaks[("dcgan", "torch")].ratio > 1.0
    assert len(result.saved_mib) == 6 and "kept by autograd" in result.table()


def test_the_benchmark_doc_tables_are_the_committed_runs():
    # docs/benchmarks.md copies `leaky bench --show docs/bench/bench.json SUITE` after each
    # marker; examples/bench_tables.py rewrites them after a new run, never by hand.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "bench_tables.py"
    spec = importlib.util.spec_from_file_location("bench_tables", path)
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    found = tables.blocks(tables.DOC.read_text(encoding="utf-8"))
    commands = [command for command, _, _ in found]
    assert len(found) == 4 and any(c.endswith(" monitor") for c in commands), commands
    for command, shown, printed in found:
        assert shown == printed, f"the block after `{command}` is not what it prints"


def test_a_timed_process_that_fails_is_named_with_its_last_lines():
    from leaky.bench.paced import Variant, WorkerError, compare_processes

    missing = Variant("leaky.bench.monitor_variants:no_such_loop")
    with pytest.raises(WorkerError, match="no_such_loop") as error:
        compare_processes(missing, missing, pairs=1)
    assert "AttributeError" in str(error.value)
    with pytest.raises(ValueError, match="at least 2 steps per turn"):
        compare_processes(missing, missing, steps_per_turn=1)
