"""``LeakyTrainerCallback`` in real Hugging Face ``Trainer`` runs on the CPU.

A GPT-2 built from a config (random weights, nothing downloaded) and a small ReLU network
written as a Hugging Face-style model (a dict with ``loss`` out).
"""

import copy
import warnings

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers", reason="an extra: pip install 'leaky[hf]'")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="TensorBoard is an extra: leaky[tensorboard]",
)

from leaky.diagnosis.convert import convert  # noqa: E402
from leaky.diagnosis.monitor import Monitor  # noqa: E402
from leaky.integrations.hugging_face import (  # noqa: E402
    DeadUnitsWarning,
    LeakyTrainerCallback,
    add_monitor,
)

SAMPLES, BATCH = 256, 32


class Tokens(torch.utils.data.Dataset):
    def __init__(self, vocabulary: int, length: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocabulary, (SAMPLES, length), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class Features(torch.utils.data.Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(SAMPLES, 8, generator=generator)
        self.y = self.x[:, 0] - self.x[:, 1]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class Regressor(nn.Module):
    """A ReLU MLP with a quarter of its first units dead, returning ``{"loss", "logits"}``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.network = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
        with torch.no_grad():
            self.network[0].bias[:8] = -50.0

    def forward(self, x, labels=None):
        logits = self.network(x).squeeze(-1)
        loss = None if labels is None else nn.functional.mse_loss(logits, labels)
        return {"loss": loss, "logits": logits}


def _gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=97,
        n_positions=16,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


@pytest.fixture(autouse=True)
def _tensorboard_folder(tmp_path, monkeypatch):
    # Where transformers' TensorBoard callback writes (its TrainingArguments no longer say).
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))


def _arguments(tmp_path, **options):
    settings = {
        "output_dir": str(tmp_path / "out"),
        "report_to": ["tensorboard"],
        "per_device_train_batch_size": BATCH,
        "num_train_epochs": 1,
        "logging_steps": 2,
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
        **options,
    }
    return transformers.TrainingArguments(**settings)


def _scalars(tmp_path) -> dict[str, list[tuple[int, float]]]:
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_a_gpt2_from_a_config_logs_its_sites_and_layers_to_every_backend(tmp_path):
    trainer = transformers.Trainer(
        model=_gpt2(), args=_arguments(tmp_path), train_dataset=Tokens(97, 16)
    )
    callback = add_monitor(trainer, verbose=False)
    trainer.train()
    scalars = _scalars(tmp_path)
    gelu = "train/leaky/transformer.h.0.mlp.act/never_active_fraction"
    assert [step for step, _ in scalars[gelu]] == list(range(2, SAMPLES // BATCH + 1, 2))
    dead = scalars["train/leaky/transformer.h.0.mlp.act/dead_fraction"]
    assert all(value == 0 for _, value in dead)
    assert any(tag.endswith("/grad_norm") and "mlp.c_fc" in tag for tag in scalars)
    assert any(tag.endswith("/update_ratio") for tag in scalars)
    logged = [entry for entry in trainer.state.log_history if gelu.removeprefix("train/") in entry]
    assert len(logged) == SAMPLES // BATCH // 2
    # GPT-2's MLP activation is a GELU site, its units the 64 features of HF's Conv1D.
    sites = {row.name: row for row in callback.report.sites}
    assert sites["transformer.h.0.mlp.act"].kind == "gelu"
    assert sites["transformer.h.0.mlp.act"].summary.units == 64


def test_dead_units_equal_a_hand_written_loop_on_the_same_data(tmp_path):
    # Learning rate 0: the weights stay, so what each unit does depends on the samples seen,
    # not on the order the Trainer draws them in.
    model = Regressor()
    by_hand = copy.deepcopy(model)
    arguments = _arguments(tmp_path, learning_rate=0.0, logging_steps=1000, report_to=[])
    trainer = transformers.Trainer(model=model, args=arguments, train_dataset=Features())
    callback = add_monitor(trainer, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        trainer.train()
    data = Features()
    with Monitor(by_hand) as monitor:
        for start in range(0, SAMPLES, BATCH):
            batch = slice(start, start + BATCH)
            by_hand(data.x[batch], data.y[batch])["loss"].backward()
    hand = monitor.report()
    assert callback.report.batches == hand.batches == SAMPLES // BATCH
    assert callback.report.dead_units == hand.dead_units == {"network.1": list(range(8))}


def test_accumulation_counts_optimizer_steps_and_norms_are_unclipped(tmp_path):
    clip = 1e-4
    arguments = _arguments(
        tmp_path, gradient_accumulation_steps=4, max_grad_norm=clip, logging_steps=1
    )
    trainer = transformers.Trainer(model=Regressor(), args=arguments, train_dataset=Features())
    callback = add_monitor(trainer, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        trainer.train()
    norms = _scalars(tmp_path)["train/leaky/network.0/grad_norm"]
    steps = SAMPLES // BATCH // 4
    assert [step for step, _ in norms] == list(range(1, steps + 1)) == callback.watch.history.steps
    assert min(value for _, value in norms) > 100 * clip  # clipped, they would be <= clip


def test_passed_as_callbacks_it_warns_that_the_backends_come_first(tmp_path):
    arguments = _arguments(tmp_path, max_steps=2)
    trainer = transformers.Trainer(
        model=Regressor(),
        args=arguments,
        train_dataset=Features(),
        callbacks=[LeakyTrainerCallback(verbose=False)],
    )
    with pytest.warns(UserWarning, match="add_monitor"):
        trainer.train()


def test_the_verdict_is_printed_at_the_end(tmp_path, capsys):
    arguments = _arguments(tmp_path, report_to=[], max_steps=4)
    trainer = transformers.Trainer(model=Regressor(), args=arguments, train_dataset=Features())
    add_monitor(trainer)
    with pytest.warns(DeadUnitsWarning, match="'network.1'"):
        trainer.train()
    assert "leaky: dying: 25% of the units at 'network.1'" in capsys.readouterr().out


def test_bad_settings_are_refused_when_the_callback_is_made():
    with pytest.raises(ValueError, match="log_every_n_steps"):
        LeakyTrainerCallback(log_every_n_steps=0)
    with pytest.raises(ValueError, match="regular expression"):
        LeakyTrainerCallback(layers="[")


def test_the_example_trains_and_prints_the_verdict(tmp_path, monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "hf_tiny_gpt2.py"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(example), "--steps", "20"])
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "leaky: healthy" in out and "loss at step 20" in out and "Verdict: healthy" in out


def test_convert_names_the_hf_activations_it_leaves_and_swaps_them_by_what_they_compute():
    from leaky.diagnosis.convert import ForeignActivationWarning, FunctionalActivationWarning
    from leaky.nn import LeakyReLU

    model = _gpt2()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert convert(model) == []
    left = [w for w in caught if issubclass(w.category, ForeignActivationWarning)]
    assert len(left) == 1 and "transformer.h.1.mlp.act (NewGELUActivation: computes GELU" in str(
        left[0].message
    )
    # Its torch.tanh is part of the GELU, never a functional activation of its own.
    assert not [w for w in caught if issubclass(w.category, FunctionalActivationWarning)]
    changes = convert(model, "leaky_relu", only=(nn.GELU,))
    assert [change.names for change in changes] == [
        ("transformer.h.0.mlp.act",),
        ("transformer.h.1.mlp.act",),
    ]
    assert all(isinstance(block.mlp.act, LeakyReLU) for block in model.transformer.h)
    assert model(torch.randint(0, 97, (2, 16))).logits.shape == (2, 16, 97)


def test_convert_says_when_it_cannot_tell_what_an_activation_computes():
    from leaky.diagnosis.convert import ForeignActivationWarning

    class LaplaceActivation(nn.Module):
        def forward(self, x):
            return 0.5 * (1 + torch.erf(x))

    model = nn.Sequential(nn.Linear(4, 4), LaplaceActivation())
    with pytest.warns(ForeignActivationWarning, match="1 .LaplaceActivation: leaky does not know"):
        convert(model, "leaky_relu", only=(nn.GELU,))


def test_the_memory_report_of_gpt2_names_its_gelu_and_changes_nothing():
    from leaky.diagnosis.memory_report import memory_report

    report = memory_report(_gpt2(), torch.randint(0, 97, (4, 16)))
    acts = [row for row in report.rows if row.name.endswith("mlp.act")]
    assert len(acts) == 2 and all("leaky has no GELU that keeps less" in row.why for row in acts)
    assert report.saved_bytes == 0 and report.output_difference == 0


@pytest.mark.slow
def test_with_torch_compile_on_the_counts_are_the_eager_ones(tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    counts = []
    for compiled in (False, True):
        arguments = _arguments(
            tmp_path / str(compiled),
            learning_rate=0.0,
            logging_steps=1000,
            report_to=[],
            torch_compile=compiled,
        )
        trainer = transformers.Trainer(model=Regressor(), args=arguments, train_dataset=Features())
        callback = add_monitor(trainer, verbose=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeadUnitsWarning)
            trainer.train()
        assert callback.report.batches == SAMPLES // BATCH
        counts.append([(r.summary.never_active, r.summary.dead) for r in callback.report.sites])
        assert (counters["stats"]["unique_graphs"] > 0) == compiled  # compiled only when asked
    assert counts[0] == counts[1] and counts[0][0] == (8, 8)


def test_recycling_in_a_trainer_revives_the_dead_units(tmp_path):
    # The Trainer calls the model with keyword arguments: the trace uses them.
    trainer = transformers.Trainer(
        model=Regressor(), args=_arguments(tmp_path), train_dataset=Features()
    )
    callback = add_monitor(trainer, verbose=False, recycle_every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadUnitsWarning)
        trainer.train()
    scalars = _scalars(tmp_path)
    recycled = dict(scalars["train/leaky/recycled_units"])
    assert recycled[2] == 8.0
    dead = dict(scalars["train/leaky/network.1/dead_fraction"])
    assert dead[2] == pytest.approx(0.25) and dead[4] == 0.0
    assert callback.report is not None
