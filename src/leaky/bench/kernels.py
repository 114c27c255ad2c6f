"""The ``kernels`` suite: leaky's ops against PyTorch's, and against a plain copy.

Every pair is first checked to compute the same thing (bitwise where leaky promises it,
within float tolerance otherwise), so a fast path that is wrong is never reported as fast.
"allocating" rows create their output; "preallocated" rows write into an existing buffer
(PyTorch's in-place op, leaky's ``inplace=True``, and ``Tensor.copy_`` for the copy, which is
the physical limit of a memory-bound op).

On CUDA, ``leaky`` (``impl="auto"``) runs the Triton kernels, so the rows against eager
PyTorch (the composition StyleGAN2's ``bias_act`` uses as its reference) and against
``torch.compile`` time them; further rows put each kernel against leaky's own PyTorch path
(``impl="torch"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as torch_f

from leaky.bench.result import BenchRow, SuiteResult
from leaky.bench.timing import compare
from leaky.core import functional as F
from leaky.core import kernels as core_kernels

__all__ = ["ResultMismatchError", "run_kernels"]


def _row(
    case: str,
    candidate: str,
    baseline: str,
    allocates: str,
    fns: tuple[Callable[[], object], Callable[[], object]],
    checked: str,
    pairs: int,
    device: str,
) -> BenchRow:
    return BenchRow(
        case,
        candidate,
        baseline,
        allocates,
        compare(fns[0], fns[1], pairs=pairs, device=device),
        checked,
    )


class ResultMismatchError(AssertionError):
    """A benchmarked pair computes different things: it is not timed."""


def _same(
    a: torch.Tensor,
    b: torch.Tensor,
    bitwise: bool,
    where: torch.Tensor | None = None,
    tolerance: float = 1e-5,
) -> None:
    """Check a pair; ``where`` restricts a tolerance check to the elements it marks."""
    if bitwise:
        ok = torch.equal(a, b)
    else:
        if where is not None:
            a, b = a[where], b[where]
        ok = torch.allclose(a, b, rtol=tolerance, atol=tolerance)
    if not ok:
        raise ResultMismatchError("benchmarked pair differs: refusing to time a wrong result")


def run_kernels(*, quick: bool = False, device: str = "cpu") -> SuiteResult:
    """Time the kernels; ``quick`` uses 4 Mi elements and 7 pairs instead of 64 Mi and 11."""
    n = 4 * 2**20 if quick else 64 * 2**20
    pairs = 7 if quick else 11
    side = math.isqrt(n)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(side, side, device=device, generator=g)
    grad = torch.randn(side, side, device=device, generator=g)
    buf_a, buf_b = torch.empty_like(x), torch.empty_like(x)
    slope = 0.01
    result = SuiteResult("kernels")
    rows = result.rows

    _same(F.leaky_relu(x, slope), torch_f.leaky_relu(x, slope), bitwise=True)
    rows.append(
        _row(
            "leaky_relu forward",
            "leaky",
            "torch",
            "allocating",
            (lambda: F.leaky_relu(x, slope), lambda: torch_f.leaky_relu(x, slope)),
            "bitwise",
            pairs,
            device,
        )
    )
    rows.append(
        _row(
            "leaky_relu forward",
            "leaky",
            "copy",
            "allocating",
            (lambda: F.leaky_relu(x, slope), lambda: x.clone()),
            "-",
            pairs,
            device,
        )
    )
    buf_a.copy_(x)
    buf_b.copy_(x)
    _same(F.leaky_relu(buf_a, slope, inplace=True), torch_f.leaky_relu_(buf_b, slope), True)
    # In place on data that stays positive after the first call: the same work every time.
    rows.append(
        _row(
            "leaky_relu forward",
            "leaky",
            "torch",
            "preallocated",
            (
                lambda: F.leaky_relu(buf_a, slope, inplace=True),
                lambda: torch_f.leaky_relu_(buf_b, slope),
            ),
            "bitwise",
            pairs,
            device,
        )
    )
    rows.append(
        _row(
            "leaky_relu forward",
            "leaky",
            "copy",
            "preallocated",
            (lambda: F.leaky_relu(buf_a, slope, inplace=True), lambda: buf_b.copy_(x)),
            "-",
            pairs,
            device,
        )
    )

    x_leaky = x.clone().requires_grad_()
    x_torch = x.clone().requires_grad_()

    def fwd_bwd(
        fn: Callable[[torch.Tensor], torch.Tensor], inp: torch.Tensor
    ) -> Callable[[], object]:
        def run() -> object:
            inp.grad = None
            fn(inp).backward(grad)
            return inp.grad

        return run

    leaky_step = fwd_bwd(lambda t: F.leaky_relu(t, slope), x_leaky)
    torch_step = fwd_bwd(lambda t: torch_f.leaky_relu(t, slope), x_torch)
    _same(leaky_step(), torch_step(), bitwise=True)
    rows.append(
        _row(
            "leaky_relu forward+backward",
            "leaky",
            "torch",
            "allocating",
            (leaky_step, torch_step),
            "bitwise",
            pairs,
            device,
        )
    )
    mask_step = fwd_bwd(lambda t: F.leaky_relu(t, slope, save="mask"), x_leaky)
    output_step = fwd_bwd(lambda t: F.leaky_relu(t, slope, save="output"), x_torch)
    _same(mask_step(), output_step(), bitwise=True)
    rows.append(
        _row(
            "leaky_relu forward+backward, save='mask'",
            "leaky mask",
            "leaky save='output'",
            "allocating",
            (mask_step, output_step),
            "bitwise",
            pairs,
            device,
        )
    )

    channels = side
    bias = torch.randn(channels, device=device, generator=g)
    gain = math.sqrt(2.0)
    b_leaky, b_eager = bias.clone().requires_grad_(), bias.clone().requires_grad_()
    leaky_fused = fwd_bwd(lambda t: F.bias_leaky_relu(t, b_leaky, 0.2, gain), x_leaky)
    eager = fwd_bwd(lambda t: torch_f.leaky_relu(t + b_eager, 0.2) * gain, x_torch)
    # The fused op adds the bias after the gain (same real number, other rounding), so at a
    # pre-activation within rounding of 0 the two may take different sides of the kink.
    away_from_kink = (x + bias.view(1, -1)).abs() > 1e-4
    _same(leaky_fused(), eager(), bitwise=False, where=away_from_kink)
    rows.append(
        _row(
            "bias_leaky_relu forward+backward",
            "leaky",
            "eager torch",
            "allocating",
            (leaky_fused, eager),
            "allclose 1e-5",
            pairs,
            device,
        )
    )

    compiled_composition = torch.compile(lambda t, b: torch_f.leaky_relu(t + b, 0.2) * gain)
    start = time.perf_counter()
    compiled = fwd_bwd(lambda t: compiled_composition(t, b_eager), x_torch)
    _same(leaky_fused(), compiled(), bitwise=False, where=away_from_kink)  # first call compiles
    result.notes.append(
        f"torch.compile of the eager composition: {time.perf_counter() - start:.1f} s to "
        "compile (forward and backward), not included in its timings"
    )
    rows.append(
        _row(
            "bias_leaky_relu forward+backward",
            "leaky",
            "torch.compile",
            "allocating",
            (leaky_fused, compiled),
            "allclose 1e-5",
            pairs,
            device,
        )
    )

    if device != "cpu":
        rows.extend(_triton_rows(x, grad, bias, slope, gain, pairs, device))
        result.notes.append(
            "'triton' rows: leaky's Triton kernel against leaky's PyTorch path (impl='torch')"
        )

    weight = torch.full((1,), 0.25, device=device)
    _same(F.prelu(x, weight), torch_f.prelu(x, weight), bitwise=True)
    rows.append(
        _row(
            "prelu forward",
            "leaky",
            "torch",
            "allocating",
            (lambda: F.prelu(x, weight), lambda: torch_f.prelu(x, weight)),
            "bitwise",
            pairs,
            device,
        )
    )
    _same(F.rrelu(x), torch_f.rrelu(x), bitwise=True)
    rows.append(
        _row(
            "rrelu forward (eval)",
            "leaky",
            "torch",
            "allocating",
            (lambda: F.rrelu(x), lambda: torch_f.rrelu(x)),
            "bitwise",
            pairs,
            device,
        )
    )
    result.notes.append(
        f"{side}x{side} float32 on {device}; {pairs} alternating pairs; "
        "speed-up = baseline time / leaky time (> 1: leaky faster)"
    )
    return result


def _triton_rows(
    x: torch.Tensor,
    grad: torch.Tensor,
    bias: torch.Tensor,
    slope: float,
    gain: float,
    pairs: int,
    device: str,
) -> list[BenchRow]:
    """Each Triton kernel against leaky's PyTorch path on the same data (CUDA only)."""
    if not core_kernels.use_triton("auto", x):  # looked up at call time (tests patch it)
        return []

    def step(fn: Callable[[torch.Tensor], torch.Tensor], *leaves: torch.Tensor):
        inputs = [t.detach().clone().requires_grad_() for t in leaves]

        def run() -> object:
            for t in inputs:
                t.grad = None
            fn(*inputs).backward(grad)
            return inputs[0].grad

        return run

    rows = []
    pairs_of_steps = [
        (
            "bias_leaky_relu forward+backward",
            lambda impl: step(lambda t, b: F.bias_leaky_relu(t, b, 0.2, gain, impl=impl), x, bias),
            "allclose 1e-5",
        ),
        (
            "leaky_relu forward+backward, save='mask'",
            lambda impl: step(lambda t: F.leaky_relu(t, slope, save="mask", impl=impl), x),
            "bitwise",
        ),
    ]
    # The same data as (batch, 64 channels, length): a convolution's output.
    bn_shape = (x.shape[0], 64, x.shape[1] // 64)
    images, bn_grad = x.view(bn_shape), grad.view(bn_shape)
    weight = torch.linspace(0.5, 1.5, 64, device=device)
    shift = torch.linspace(-0.3, 0.3, 64, device=device)
    pairs_of_steps.append(
        (
            f"batch_norm_leaky_relu forward+backward {tuple(images.shape)}",
            lambda impl: _bn_step(images, weight, shift, bn_grad, impl),
            "allclose 1e-4",
        )
    )
    # As on the CPU: at a pre-activation within rounding of 0 the two may take either side.
    away_from_kink = (x + bias.view(1, -1)).abs() > 1e-4
    for case, make, checked in pairs_of_steps:
        kernel, path = make("triton"), make("torch")
        if checked == "bitwise":
            _same(kernel(), path(), bitwise=True)
        elif case.startswith("bias_leaky_relu"):
            _same(kernel(), path(), bitwise=False, where=away_from_kink)
        else:
            _same(kernel(), path(), bitwise=False, tolerance=1e-4)
        rows.append(
            _row(
                case,
                "triton",
                "leaky torch path",
                "allocating",
                (kernel, path),
                checked,
                pairs,
                device,
            )
        )
    return rows


def _bn_step(
    images: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor, grad: torch.Tensor, impl: str
) -> Callable[[], object]:
    leaf = images.detach().clone().requires_grad_()
    w, b = weight.clone().requires_grad_(), shift.clone().requires_grad_()

    def run() -> object:
        leaf.grad = w.grad = b.grad = None
        y = F.batch_norm_leaky_relu(leaf, None, None, w, b, True, negative_slope=0.2, impl=impl)
        y.backward(grad)
        return leaf.grad

    return run
