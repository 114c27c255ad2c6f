"""The commands on a model from a file: ``leaky diagnose`` and ``leaky export onnx``."""

from __future__ import annotations

import sys
from typing import Any

import click

from leaky.app.options import (
    InputError,
    batch_size_option,
    input_range_option,
    json_option,
    seed_option,
    weights_option,
)

__all__ = ["diagnose", "export_group", "memory"]


@click.command()
@click.argument("model")
@click.option("--input-shape", help="Shape of one random input sample, e.g. 1,28,28.")
@click.option(
    "--data",
    type=click.Path(),
    help=".npz with inputs 'x' (or its first array) and optional labels 'y'; or data as "
    "the experiments read it: a .csv (label column 'label'), a folder of MNIST IDX files or "
    "CIFAR-10 batches, or a file:... spec.",
)
@weights_option
@click.option(
    "--batches",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Forward and backward passes to watch.",
)
@batch_size_option
@seed_option
@input_range_option
@json_option
@click.option(
    "--plot", "plot_out", type=click.Path(dir_okay=False), help="Write a .png/.svg figure."
)
@click.option(
    "--unit-dim",
    type=int,
    default=None,
    help="Dimension of every activation output that holds the units (2 for the features "
    "of (N, L, F)). Default: per site, from the layer that produced it (Linear: last, "
    "Conv/BatchNorm: 1; 1 otherwise); the report says which.",
)
@click.option(
    "--dying-above",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help='Share of a site\'s units that must be dead for the verdict "dying" (exit 1).',
)
@click.option(
    "--memory",
    "with_memory",
    is_flag=True,
    help="Also print what leaky would save: `leaky memory` on the same model and inputs.",
)
def diagnose(model: str, with_memory: bool, **options: Any) -> None:
    """Find dead units and vanishing gradients in MODEL, given as FILE.py:FACTORY.

    FACTORY is a function or class in FILE.py that returns a torch.nn.Module (called with
    no arguments); the model is put in train mode.

    Builds the model, loads --weights if given (weights_only), runs --batches of random
    inputs (--input-shape) or of --data, with a backward pass from a scalar loss, and
    prints the report. Exit code 1 when the verdict is non-finite (NaN or inf in the
    model) or dying (--dying-above of a site's units dead), 2 for a user error, else 0.
    """
    from leaky.diagnosis.diagnose import diagnose_file

    if with_memory and options["input_shape"] is None:
        raise InputError("--memory measures on random inputs: give --input-shape, not --data")
    found = diagnose_file(model, **options)
    click.echo(str(found.report))
    if with_memory:
        from leaky.diagnosis.diagnose import memory_file

        shared = ("input_shape", "batch_size", "seed", "input_range", "weights")
        measured = memory_file(model, **{name: options[name] for name in shared})
        click.echo("\nWhat leaky would save (leaky memory):")
        click.echo(measured.report.table())
    for path in found.written:
        click.echo(f"Wrote {path}")
    if found.report.verdict in ("non-finite", "dying"):
        sys.exit(1)  # the diagnosis ran and found a problem (user errors exit 2)


@click.command()
@click.argument("model")
@click.option(
    "--input-shape",
    required=True,
    help="Shape of one random input sample, without the batch dimension, e.g. 3,64,64.",
)
@batch_size_option
@seed_option
@input_range_option
@weights_option
@click.option(
    "--no-peak",
    "peak",
    flag_value=False,
    default=True,
    help="Skip the step's peak memory (two fresh processes); count kept bytes only.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Where both copies run; on cuda the peak is the CUDA allocator's.",
)
@json_option
def memory(model: str, **options: Any) -> None:
    """What would leaky save on MODEL (FILE.py:FACTORY, as for diagnose)? Measured.

    One forward and backward of the model as it is, and of a copy whose torch.nn Leaky
    ReLU, PReLU and RReLU are leaky's modules of the same function and whose BatchNorm ->
    LeakyReLU pairs are fused: what autograd keeps for backward, per module and in total,
    why each differs, whether the two compute the same, and a training step's peak memory
    of each (a fresh process each: Linux's VmHWM on the CPU, the CUDA allocator's peak
    on a GPU).
    """
    from leaky.diagnosis.diagnose import memory_file

    measured = memory_file(model, **options)
    click.echo(measured.report.table())
    for path in measured.written:
        click.echo(f"Wrote {path}")


@click.group(name="export")
def export_group() -> None:
    """Export a model for other runtimes (ONNX)."""


@export_group.command(name="onnx")
@click.argument("model")
@click.option(
    "--input-shape",
    required=True,
    help="Shape of one input sample, without the batch dimension, e.g. 3,32,32.",
)
@click.option(
    "--batch-size",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Batch dimension of the exported input (the shapes are fixed).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The .onnx file to write (its folder is created if missing).",
)
@weights_option
@click.option(
    "--convert",
    "convert_to",
    metavar="ACTIVATION",
    help="Swap the model's ReLUs for this activation first (leaky.convert), e.g. leaky_relu.",
)
def export_onnx(model: str, input_shape: str, **options: Any) -> None:
    """Write MODEL (FILE.py:FACTORY, as for diagnose) as ONNX of standard operators.

    The model is exported in eval mode; every leaky module becomes standard ONNX operators
    (LeakyRelu, PRelu, BatchNormalization, Add/Mul). --convert runs before --weights, so
    weights trained on the converted model load.
    """
    from leaky.diagnosis.diagnose import export_file
    from leaky.diagnosis.export import node_types

    path = export_file(model, input_shape, **options)
    click.echo(f"Wrote {path} (ONNX operators: {', '.join(node_types(path))})")
