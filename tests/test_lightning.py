"""``LeakyMonitor`` in real Lightning fits on the CPU: what it logs, when, and what it keeps."""

import copy
import warnings

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch", reason="Lightning is an extra: leaky[lightning]")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="TensorBoard is an extra: leaky[tensorboard]",
)

from leaky.diagnosis.monitor import Monitor  # noqa: E402
from leaky.integrations.lightning import DeadUnitsWarning, LeakyMonitor  # noqa: E402

BATCHES, BATCH = 16, 32


def _network() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1)
    )
    with torch.no_grad():
        model[0].bias[:8] = -50.0  # a quarter of the first site's units can never fire
    return model


def _data() -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCHES * BATCH, 8, generator=generator)
    y = x[:, :1] - x[:, 1:2]
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)


class Regressor(pl.LightningModule):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network(x)

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(tmp_path, callback, **options) -> pl.Trainer:
    settings = {
        "max_epochs": 1,
        "accelerator": "cpu",
        "devices": 1,
        "logger": pl.loggers.TensorBoardLogger(tmp_path, name="fit", version=0),
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 2,
        "deterministic": True,
        **options,
    }
    return pl.Trainer(callbacks=[callback], **settings)


def _scalars(tmp_path) -> dict[str, list[tuple[int, float]]]:
    events = event_accumulator.EventAccumulator(str(tmp_path / "fit" / "version_0"))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_a_fit_logs_per_layer_scalars_to_tensorboard(tmp_path):
    callback = LeakyMonitor(verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        _trainer(tmp_path, callback).fit(Regressor(_network()), _data())
    scalars = _scalars(tmp_path)
    dead = scalars["leaky/network.1/dead_fraction"]
    assert [step for step, _ in dead] == list(range(2, BATCHES + 1, 2))
    assert all(value == pytest.approx(0.25) for _, value in dead)
    for tag in ("network.0/grad_norm", "network.0/update_ratio", "network.3/never_active_fraction"):
        assert len(scalars[f"leaky/{tag}"]) == BATCHES // 2, tag
    assert all(0 < value < 1 for _, value in scalars["leaky/network.0/update_ratio"])
    assert "leaky/gradient_ratio" in scalars
    assert callback.report is not None and callback.report.verdict == "dying"


def test_dead_units_equal_a_hand_written_loop_on_the_same_seed_and_data(tmp_path):
    network = _network()
    by_hand = copy.deepcopy(network)
    callback = LeakyMonitor(log_every_n_steps=1000, verbose=False)  # one window: the fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        _trainer(tmp_path, callback).fit(Regressor(network), _data())
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.01)
    with Monitor(by_hand) as monitor:
        for x, y in _data():
            optimizer.zero_grad()
            nn.functional.mse_loss(by_hand(x), y).backward()
            optimizer.step()
    hand = monitor.report()
    assert callback.report.batches == hand.batches == BATCHES
    fitted = {
        name.removeprefix("network."): units for name, units in callback.report.dead_units.items()
    }
    assert fitted == hand.dead_units and hand.dead_units["1"] == list(range(8))
    for ours, theirs in zip(callback.report.sites, hand.sites, strict=True):
        assert ours.summary.never_active == theirs.summary.never_active


class CallsItsNetwork(Regressor):
    """The common pattern: training_step calls the network, never the LightningModule."""

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self.network(x), y)


def test_a_training_step_that_never_calls_the_module_is_counted_all_the_same(tmp_path):
    callback = LeakyMonitor(log_every_n_steps=1000, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        _trainer(tmp_path, callback).fit(CallsItsNetwork(_network()), _data())
    assert callback.report.batches == BATCHES
    assert [row.name for row in callback.report.sites] == ["network.1", "network.3"]
    assert callback.report.dead_units["network.1"] == list(range(8))


def test_gradient_accumulation_counts_optimizer_steps_not_micro_batches(tmp_path):
    callback = LeakyMonitor(log_every_n_steps=1, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        trainer = _trainer(tmp_path, callback, accumulate_grad_batches=4)
        trainer.fit(Regressor(_network()), _data())
    steps = [step for step, _ in _scalars(tmp_path)["leaky/network.1/dead_fraction"]]
    assert steps == [1, 2, 3, 4] == callback.watch.history.steps
    assert trainer.global_step == BATCHES // 4


def test_gradient_norms_are_taken_before_clipping(tmp_path):
    clip = 1e-4
    callback = LeakyMonitor(log_every_n_steps=1, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        _trainer(tmp_path, callback, gradient_clip_val=clip).fit(Regressor(_network()), _data())
    norms = [value for _, value in _scalars(tmp_path)["leaky/network.4/grad_norm"]]
    assert len(norms) == BATCHES and min(norms) > 100 * clip  # clipped, they would be <= clip


def test_a_dying_site_warns_once_and_the_filter_narrows_what_is_logged(tmp_path):
    callback = LeakyMonitor(layers=r"network\.1$", verbose=False)
    with pytest.warns(DeadUnitsWarning, match="'network.1'") as caught:
        _trainer(tmp_path, callback).fit(Regressor(_network()), _data())
    assert len([w for w in caught if issubclass(w.category, DeadUnitsWarning)]) == 1
    tags = set(_scalars(tmp_path))
    assert "leaky/network.1/dead_fraction" in tags
    assert not any("network.3" in tag or "network.0" in tag for tag in tags)


def test_a_resumed_fit_goes_on_from_the_checkpoint(tmp_path):
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = LeakyMonitor(verbose=False)
    with pytest.warns(DeadUnitsWarning):
        trainer = _trainer(tmp_path, first, enable_checkpointing=True)
        trainer.callbacks.append(checkpoints)
        trainer.fit(Regressor(_network()), _data())
    resumed = LeakyMonitor(verbose=False)
    trainer = _trainer(tmp_path / "again", resumed, enable_checkpointing=True, max_epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeadUnitsWarning)  # warned about before: not again
        trainer.fit(Regressor(_network()), _data(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert resumed.watch.history.steps == list(range(2, 2 * BATCHES + 1, 2))
    assert resumed.watch.history.warned == ["network.1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"log_every_n_steps": 0}, "log_every"), ({"layers": "("}, "regular expression")],
)
def test_bad_settings_are_refused_when_the_callback_is_made(options, message):
    with pytest.raises(ValueError, match=message):
        LeakyMonitor(**options)


def test_the_verdict_is_printed_at_the_end(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        _trainer(tmp_path, LeakyMonitor()).fit(Regressor(_network()), _data())
    assert "leaky: dying: 25% of the units at 'network.1'" in capsys.readouterr().out


def test_the_example_fits_and_prints_the_verdict(tmp_path, monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "lightning_mnist1d.py"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(example), "--epochs", "2"])
    runpy.run_path(str(example), run_name="__main__")
    assert list((tmp_path / "out" / "lightning" / "relu").glob("version_0/events.out.*"))
    out = capsys.readouterr().out
    assert out.startswith("leaky: ") and "test accuracy: " in out and "Verdict: " in out


@pytest.mark.slow
def test_a_compiled_module_counts_as_the_eager_one(tmp_path):
    # The LightningModule's network is compiled before fitting: the Monitor attaches before
    # its first call, so its hooks run (eagerly) and its dead units are eager's.
    torch._dynamo.reset()
    eager, compiled = LeakyMonitor(log_every_n_steps=1000, verbose=False), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        _trainer(tmp_path / "eager", eager).fit(Regressor(_network()), _data())
        module = Regressor(_network())
        module.network = torch.compile(module.network)
        compiled = LeakyMonitor(log_every_n_steps=1000, verbose=False)
        _trainer(tmp_path / "compiled", compiled).fit(module, _data())
    assert compiled.report.batches == eager.report.batches == BATCHES
    assert isinstance(module.network, torch._dynamo.eval_frame.OptimizedModule)
    names = [row.name.replace("_orig_mod.", "") for row in compiled.report.sites]
    assert names == [row.name for row in eager.report.sites]
    counts = [(row.summary.never_active, row.summary.dead) for row in compiled.report.sites]
    assert counts == [(row.summary.never_active, row.summary.dead) for row in eager.report.sites]


@pytest.mark.slow
def test_under_ddp_two_ranks_report_what_one_process_sees_on_all_the_data(tmp_path):
    # Two CPU ranks (gloo), each half of every batch: the callback's Monitor sums the counts
    # across ranks before it calls a unit dead, so the report equals one process's.
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent / "scripts" / "lightning_ddp.py"
    results = {}
    for devices in (1, 2):
        out = tmp_path / f"ddp{devices}.json"
        done = subprocess.run(
            [sys.executable, str(script), str(out), str(devices)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[devices] = json.loads(out.read_text())
    one, two = results[1], results[2]
    assert one["sites"] == two["sites"]
    assert one["sites"]["network.1"]["dead"] == list(range(8))
    assert one["sites"]["network.1"]["samples"] == 8 * 32  # every sample, counted once
    assert one["batches"] == 8 and two["batches"] == 8  # each rank ran as many steps


def test_recycling_revives_the_dead_units_and_logs_how_many(tmp_path):
    # The 8 units forced dead at 'network.1' are recycled at step 4 (ReDo: new incoming
    # weights, zero outgoing ones); the windows after it find none dead there. The module's
    # training_step calls its network directly: the trace runs on that call's input.
    callback = LeakyMonitor(log_every_n_steps=2, recycle_every=4, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        _trainer(tmp_path, callback).fit(CallsItsNetwork(_network()), _data())
    scalars = _scalars(tmp_path)
    recycled = dict(scalars["leaky/recycled_units"])
    assert recycled[4] == 8.0 and set(recycled) == {4, 8, 12, 16}
    dead = dict(scalars["leaky/network.1/dead_fraction"])
    assert dead[2] == dead[4] == pytest.approx(0.25) and dead[6] == dead[16] == 0.0
    assert callback.watch.history.recycled_at == 16


def test_recycling_settings_are_checked_when_the_callback_is_made():
    with pytest.raises(ValueError, match="recycle_every to be an integer >= 1"):
        LeakyMonitor(recycle_every=0)
    with pytest.raises(ValueError, match="recycle_units to be 'dead' or 'dormant'"):
        LeakyMonitor(recycle_every=5, recycle_units="all")
