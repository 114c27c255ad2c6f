"""Two gloo processes on CPU: the monitor's result equals one process that saw all the data."""

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from leaky.diagnosis.monitor import Monitor

WORLD = 2


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    first = nn.Linear(2, 4)
    with torch.no_grad():
        # Unit 0 fires only for x[:, 0] > 0.5, unit 1 only for x[:, 1] > 0.5, 2 never, 3 always.
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
        first.bias.copy_(torch.tensor([-0.5, -0.5, -1.0, 1.0]))
    return nn.Sequential(first, nn.ReLU(), nn.Linear(4, 1))


def _data() -> torch.Tensor:
    # Rank 0's half never activates unit 1 and rank 1's half never activates unit 0, so
    # each rank alone would call a live unit dead.
    rank0 = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.2, 0.3]])
    rank1 = torch.tensor([[0.1, 0.9], [0.3, 0.7], [0.2, 0.1]])
    return torch.cat([rank0, rank1])


def _summary(report) -> dict:
    site = report.sites[0].summary
    return {
        "dead": site.dead_units,
        "never": site.never_active_units,
        "samples": site.samples,
        "mean": round(site.mean, 9),
        "histogram": site.histogram,
    }


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        model = _model()
        x = _data().chunk(WORLD)[rank]
        with Monitor(model) as monitor:
            model(x).sum().backward()
        summary = _summary(monitor.report())  # collective: every rank calls it
        local = (monitor.sites["1"].state()["peak"] > 0).long().tolist()
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"summary": summary, "local_active_rank0": local}, f)
    finally:
        dist.destroy_process_group()
    # Done: leave without C++ static destructors, where this torch's gloo aborts about one
    # process exit in five ("terminate called without an active exception", after the
    # work is over and the result written). A failure above still raises as usual.
    os._exit(0)


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_on_the_concatenated_data(tmp_path):
    out = tmp_path / "rank0.json"
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(out)), nprocs=WORLD, join=True)
    distributed = json.loads(out.read_text())

    model = _model()
    with Monitor(model) as monitor:
        model(_data()).sum().backward()
    single = _summary(monitor.report())

    assert distributed["local_active_rank0"][1] == 0  # rank 0 alone would call unit 1 dead
    assert distributed["summary"]["dead"] == single["dead"] == [2]
    assert distributed["summary"]["never"] == single["never"]
    assert distributed["summary"]["samples"] == single["samples"] == 6
    assert distributed["summary"]["mean"] == pytest.approx(single["mean"])
    assert distributed["summary"]["histogram"] == single["histogram"]
