"""A model from a file, as the commands take it: ``FILE.py:FACTORY``, weights, input shape."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from leaky.system.errors import ParameterError

__all__ = [
    "build_model",
    "first_line",
    "load_factory",
    "load_weights",
    "parse_range",
    "parse_shape",
    "random_batch",
]


def first_line(error: BaseException) -> str:
    """What went wrong in the user's code, in one line (``sys.exit`` said as such)."""
    if isinstance(error, SystemExit):  # the user's code ended the process: say so, go on
        return f"it called sys.exit({error.code!r})"
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def load_factory(target: str) -> Callable[[], torch.nn.Module]:
    """Import ``FILE.py:NAME`` and return the callable ``NAME`` (a model factory or class).

    Examples:
        >>> load_factory("no_such_file.py:make")
        Traceback (most recent call last):
        ...
        ValueError: Model file 'no_such_file.py' does not exist
    """
    path_text, _, name = target.rpartition(":")
    if not path_text or not name:
        raise ValueError(
            f"Expected the model as FILE.py:FACTORY (for example models.py:make_model), "
            f"but got {target!r}"
        )
    path = Path(path_text)
    if path.is_dir():
        raise ValueError(
            f"Model file {path_text!r} is a directory; expected a .py file, as FILE.py:FACTORY"
        )
    if not path.is_file():
        raise ValueError(f"Model file {path_text!r} does not exist")
    module_name = f"_leaky_user_model_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"Cannot import {path_text!r} as Python; is it a .py file?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # the user's file failed (or exited)
        raise ValueError(f"Importing {path_text} failed: {first_line(error)}") from error
    factory = getattr(module, name, None)
    if factory is not None and not callable(factory):
        raise ValueError(
            f"{name} in {path_text} is not callable (its type is {type(factory).__name__}); "
            "give a function or class that returns the model"
        )
    if not callable(factory):
        defined = sorted(
            k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
        )
        raise ValueError(
            f"{path_text} has no callable {name!r}; it defines: {', '.join(defined) or 'nothing'}"
        )
    return factory


def build_model(factory: Callable[[], Any]) -> torch.nn.Module:
    """Call the factory and check that it gave a ``torch.nn.Module``."""
    try:
        model = factory()
    except (Exception, SystemExit) as error:
        raise ValueError(f"Calling the model factory failed: {first_line(error)}") from error
    if not isinstance(model, torch.nn.Module):
        raise ValueError(
            f"Expected the factory to return a torch.nn.Module, got {type(model).__name__}"
        )
    return model


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a state_dict saved with ``torch.save`` (read with ``weights_only=True``).

    A checkpoint dict with a ``"state_dict"`` or ``"model"`` entry works too.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        text = str(error)
        if "Unsupported global" in text or ("weights_only" in text and "GLOBAL" in text):
            hint = "it holds a pickled object (a whole model?); save model.state_dict() instead"
        else:
            hint = "it is not a file written by torch.save"
        raise ValueError(f"Cannot read weights from {path}: {hint}") from error
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"Expected a state_dict in {path}, but found {type(state).__name__}")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(line.strip() for line in str(error).splitlines()[1:3])
        raise ValueError(f"The weights in {path} do not fit the model: {detail}") from error


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"1,28,28"`` into a per-sample shape.

    Examples:
        >>> parse_shape("1,28,28")
        (1, 28, 28)
    """
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ParameterError(
            "Expected {input_shape} as positive integers separated by commas (one sample, "
            f"no batch dimension), for example 1,28,28, but got {text!r}",
            "input_shape",
        )
    return shape


def parse_range(text: str) -> tuple[int, int]:
    """Parse ``"0,50257"`` into the token ids' ``(low, high)``.

    Examples:
        >>> parse_range("0,50257")
        (0, 50257)
    """
    try:
        low, high = (int(part) for part in text.split(","))
    except ValueError:
        raise ParameterError(
            "Expected {input_range} as two integers LOW,HIGH (token ids from LOW to HIGH - 1), "
            f"for example 0,50257, but got {text!r}",
            "input_range",
        ) from None
    return low, high


def random_batch(
    shape: tuple[int, ...],
    generator: torch.Generator,
    input_range: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Normal floats of ``shape``, or integer token ids from ``low`` to ``high - 1``.

    Examples:
        >>> random_batch((2, 3), torch.Generator().manual_seed(0), (0, 5)).dtype
        torch.int64
    """
    if input_range is None:
        return torch.randn(shape, generator=generator)
    return torch.randint(*input_range, shape, generator=generator)
