"""The activations in their plainest form: NumPy, float64, a few lines each.

This module is the slow, obvious oracle that every fast path in :mod:`leaky` is tested
against. Read it to learn what each activation *is*; nothing here is optimised.

Conventions at the kink x = 0 follow PyTorch, so that the reference, PyTorch and
:mod:`leaky.core.functional` can be compared everywhere:

* ReLU'(0) = 0: a unit sitting exactly at 0 gets no gradient.
* LeakyReLU'(0) = negative_slope: the negative branch owns the point 0.

Examples:
    >>> import numpy as np
    >>> x = np.array([-2.0, 0.0, 3.0])
    >>> relu(x).tolist(), relu_derivative(x).tolist()
    ([0.0, 0.0, 3.0], [0.0, 0.0, 1.0])
    >>> leaky_relu(x, 0.1).tolist(), leaky_relu_derivative(x, 0.1).tolist()
    ([-0.2, 0.0, 3.0], [0.1, 0.1, 1.0])

"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "batch_norm_leaky_relu",
    "batch_norm_leaky_relu_gradients",
    "bias_leaky_relu",
    "elu",
    "elu_derivative",
    "gelu",
    "gelu_derivative",
    "hardsigmoid",
    "hardsigmoid_derivative",
    "hardswish",
    "hardswish_derivative",
    "hardtanh",
    "hardtanh_derivative",
    "leaky_relu",
    "leaky_relu_derivative",
    "mish",
    "mish_derivative",
    "prelu",
    "prelu_derivative",
    "relu",
    "relu_derivative",
    "rrelu",
    "rrelu_derivative",
    "second_moment_gain",
    "sigmoid",
    "sigmoid_derivative",
    "silu",
    "silu_derivative",
    "softplus",
    "softplus_derivative",
    "softsign",
    "softsign_derivative",
    "tanh",
    "tanh_derivative",
]


def _f64(x: np.typing.ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ReLU: keep the positive part. Below zero both the output and the gradient are 0,
# which is how a unit can stop learning for good (a "dead" unit).
def relu(x: np.typing.ArrayLike) -> np.ndarray:
    """ReLU(x) = max(0, x)."""
    x = _f64(x)
    return np.where(x > 0, x, 0.0)


def relu_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """ReLU'(x) = 1 if x > 0 else 0."""
    x = _f64(x)
    return np.where(x > 0, 1.0, 0.0)


# Leaky ReLU: a small slope a below zero, so some gradient always flows.
def leaky_relu(x: np.typing.ArrayLike, negative_slope: float = 0.01) -> np.ndarray:
    """LeakyReLU(x) = x if x > 0 else negative_slope * x."""
    x = _f64(x)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x > 0, x, negative_slope * x)


def leaky_relu_derivative(x: np.typing.ArrayLike, negative_slope: float = 0.01) -> np.ndarray:
    """LeakyReLU'(x) = 1 if x > 0 else negative_slope."""
    x = _f64(x)
    return np.where(x > 0, 1.0, negative_slope)


# PReLU: Leaky ReLU whose slope is learned (one per channel, or one shared).
def prelu(x: np.typing.ArrayLike, weight: np.typing.ArrayLike) -> np.ndarray:
    """PReLU(x) = x if x > 0 else weight * x (weight broadcast against x)."""
    x, weight = _f64(x), _f64(weight)
    return np.where(x > 0, x, weight * x)


def prelu_derivative(
    x: np.typing.ArrayLike, weight: np.typing.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Return (dPReLU/dx, dPReLU/dweight), elementwise, before any sum over the shared slope."""
    x, weight = _f64(x), _f64(weight)
    d_x = np.where(x > 0, 1.0, weight * np.ones_like(x))
    d_weight = np.where(x > 0, 0.0, x)
    return d_x, d_weight


# RReLU: in training each negative input gets its own random slope drawn from
# U(lower, upper); in evaluation the slope is the mean (lower + upper) / 2.
def rrelu(
    x: np.typing.ArrayLike,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    slopes: np.typing.ArrayLike | None = None,
) -> np.ndarray:
    """RReLU: ``slopes`` are the training-time draws; None means evaluation (the mean slope)."""
    a = (lower + upper) / 2 if slopes is None else _f64(slopes)
    return leaky_relu(x, a)


def rrelu_derivative(
    x: np.typing.ArrayLike,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    slopes: np.typing.ArrayLike | None = None,
) -> np.ndarray:
    """Derivative of :func:`rrelu` for the same slopes."""
    a = (lower + upper) / 2 if slopes is None else _f64(slopes)
    return np.where(_f64(x) > 0, 1.0, a * np.ones_like(_f64(x)))


# Sigmoid and tanh saturate: for large |x| their derivative vanishes, and a product of
# many small derivatives is the vanishing gradient of deep sigmoid networks.
def sigmoid(x: np.typing.ArrayLike) -> np.ndarray:
    """sigmoid(x) = 1 / (1 + exp(-x)); its derivative is at most 1/4."""
    x = _f64(x)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def sigmoid_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x))."""
    s = sigmoid(x)
    return s * (1.0 - s)


def tanh(x: np.typing.ArrayLike) -> np.ndarray:
    """tanh(x)."""
    return np.tanh(_f64(x))


def tanh_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """tanh'(x) = 1 - tanh(x)^2."""
    return 1.0 - np.tanh(_f64(x)) ** 2


# Softsign (Glorot & Bengio 2010) also saturates at -1 and 1, but polynomially, not
# exponentially: its derivative falls off as 1 / x^2, so units leave saturation more easily.
def softsign(x: np.typing.ArrayLike) -> np.ndarray:
    """softsign(x) = x / (1 + |x|)."""
    x = _f64(x)
    with np.errstate(invalid="ignore"):  # inf / inf: the limit, +-1
        return np.where(np.isinf(x), np.sign(x), x / (1.0 + np.abs(x)))


def softsign_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """softsign'(x) = 1 / (1 + |x|)^2."""
    return 1.0 / (1.0 + np.abs(_f64(x))) ** 2


# Clipped rectifiers: ReLU6 is Hardtanh on [0, 6]. Beyond either bound the gradient is 0.
def hardtanh(x: np.typing.ArrayLike, min_val: float = -1.0, max_val: float = 1.0) -> np.ndarray:
    """Hardtanh(x) = min(max(x, min_val), max_val)."""
    return np.clip(_f64(x), min_val, max_val)


def hardtanh_derivative(
    x: np.typing.ArrayLike, min_val: float = -1.0, max_val: float = 1.0
) -> np.ndarray:
    """Hardtanh'(x) = 1 if min_val < x < max_val else 0 (0 at the bounds, as in PyTorch)."""
    x = _f64(x)
    return np.where((x > min_val) & (x < max_val), 1.0, 0.0)


# Comparison points: smooth functions that are also non-zero below zero.
def elu(x: np.typing.ArrayLike, alpha: float = 1.0) -> np.ndarray:
    """ELU(x) = x if x > 0 else alpha * (exp(x) - 1)."""
    x = _f64(x)
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def elu_derivative(x: np.typing.ArrayLike, alpha: float = 1.0) -> np.ndarray:
    """ELU'(x) = 1 if x > 0 else alpha * exp(x)."""
    x = _f64(x)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def gelu(x: np.typing.ArrayLike) -> np.ndarray:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (the exact form, not tanh)."""
    x = _f64(x)
    return x * _normal_cdf(x)


def gelu_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """GELU'(x) = Phi(x) + x * phi(x)."""
    x = _f64(x)
    return _normal_cdf(x) + x * _normal_pdf(x)


def silu(x: np.typing.ArrayLike) -> np.ndarray:
    """SiLU(x) = x * sigmoid(x) (also called Swish)."""
    x = _f64(x)
    return x * sigmoid(x)


def silu_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """SiLU'(x) = sigmoid(x) * (1 + x * (1 - sigmoid(x)))."""
    x = _f64(x)
    s = sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


# The mobile-network activations: piecewise-linear stand-ins for sigmoid and SiLU.
# PyTorch gives the kinks at -3 and 3 to the flat pieces.
def hardsigmoid(x: np.typing.ArrayLike) -> np.ndarray:
    """Hardsigmoid(x) = min(max(x + 3, 0), 6) / 6: 0 below -3, 1 above 3."""
    return np.clip(_f64(x) + 3.0, 0.0, 6.0) / 6.0


def hardsigmoid_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """Hardsigmoid'(x) = 1/6 if -3 < x < 3 else 0."""
    x = _f64(x)
    return np.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0)


def hardswish(x: np.typing.ArrayLike) -> np.ndarray:
    """Hardswish(x) = x * min(max(x + 3, 0), 6) / 6: 0 below -3, x above 3."""
    x = _f64(x)
    return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0


def hardswish_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """Hardswish'(x) = 0 if x <= -3, 1 if x >= 3, else x / 3 + 1/2."""
    x = _f64(x)
    return np.where(x <= -3.0, 0.0, np.where(x >= 3.0, 1.0, x / 3.0 + 0.5))


# Softplus is a smooth ReLU; Mish multiplies x by tanh of it.
def softplus(x: np.typing.ArrayLike, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    """Softplus(x) = log(1 + exp(beta * x)) / beta, and x itself once beta * x > threshold."""
    x = _f64(x)
    return np.where(beta * x > threshold, x, np.logaddexp(0.0, beta * x) / beta)


def softplus_derivative(
    x: np.typing.ArrayLike, beta: float = 1.0, threshold: float = 20.0
) -> np.ndarray:
    """Softplus'(x) = sigmoid(beta * x), and 1 once beta * x > threshold."""
    x = _f64(x)
    return np.where(beta * x > threshold, 1.0, sigmoid(beta * x))


def mish(x: np.typing.ArrayLike) -> np.ndarray:
    """Mish(x) = x * tanh(log(1 + exp(x)))."""
    x = _f64(x)
    return x * np.tanh(np.logaddexp(0.0, x))


def mish_derivative(x: np.typing.ArrayLike) -> np.ndarray:
    """Mish'(x) = tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2), sp = log(1 + exp(x))."""
    x = _f64(x)
    t = np.tanh(np.logaddexp(0.0, x))
    return t + x * sigmoid(x) * (1.0 - t * t)


# The fused op of StyleGAN-style generators: bias, Leaky ReLU, a gain, an optional clamp.
def bias_leaky_relu(
    x: np.typing.ArrayLike,
    bias: np.typing.ArrayLike | None = None,
    negative_slope: float = 0.2,
    gain: float = math.sqrt(2.0),
    clamp: float | None = None,
    dim: int = 1,
) -> np.ndarray:
    """clip(gain * LeakyReLU(x + bias), -clamp, clamp), bias broadcast along axis ``dim``."""
    x = _f64(x)
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + _f64(bias).reshape(shape)
    y = gain * leaky_relu(x, negative_slope)
    return y if clamp is None else np.clip(y, -clamp, clamp)


# BatchNorm then Leaky ReLU, per channel (axis 1). Training uses the batch's mean and biased
# variance; eval the running ones. The gradients are the chain rule written out.
def batch_norm_leaky_relu(
    x: np.typing.ArrayLike,
    weight: np.typing.ArrayLike,
    bias: np.typing.ArrayLike,
    negative_slope: float = 0.01,
    eps: float = 1e-5,
    mean: np.typing.ArrayLike | None = None,
    var: np.typing.ArrayLike | None = None,
) -> np.ndarray:
    """LeakyReLU(weight * (x - mean) / sqrt(var + eps) + bias); batch statistics if not given."""
    x = _f64(x)
    axes, shape = _channel_axes(x)
    mean = x.mean(axis=axes) if mean is None else _f64(mean)
    var = x.var(axis=axes) if var is None else _f64(var)
    x_hat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    z = _f64(weight).reshape(shape) * x_hat + _f64(bias).reshape(shape)
    return leaky_relu(z, negative_slope)


def batch_norm_leaky_relu_gradients(
    x: np.typing.ArrayLike,
    weight: np.typing.ArrayLike,
    bias: np.typing.ArrayLike,
    grad_output: np.typing.ArrayLike,
    negative_slope: float = 0.01,
    eps: float = 1e-5,
    mean: np.typing.ArrayLike | None = None,
    var: np.typing.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (input, weight, bias) of :func:`batch_norm_leaky_relu` for ``grad_output``.

    With batch statistics the mean and variance depend on x too, which adds the two
    per-channel means to the input gradient.
    """
    x, grad_output = _f64(x), _f64(grad_output)
    axes, shape = _channel_axes(x)
    batch_stats = mean is None
    mean = x.mean(axis=axes) if mean is None else _f64(mean)
    var = x.var(axis=axes) if var is None else _f64(var)
    inv_std = 1.0 / np.sqrt(var.reshape(shape) + eps)
    x_hat = (x - mean.reshape(shape)) * inv_std
    gamma = _f64(weight).reshape(shape)
    z = gamma * x_hat + _f64(bias).reshape(shape)
    grad_z = grad_output * leaky_relu_derivative(z, negative_slope)
    grad_x_hat = grad_z * gamma
    if batch_stats:
        grad_x = inv_std * (
            grad_x_hat
            - grad_x_hat.mean(axis=axes, keepdims=True)
            - x_hat * (grad_x_hat * x_hat).mean(axis=axes, keepdims=True)
        )
    else:
        grad_x = grad_x_hat * inv_std
    return grad_x, (grad_z * x_hat).sum(axis=axes), grad_z.sum(axis=axes)


def _channel_axes(x: np.ndarray) -> tuple[tuple[int, ...], list[int]]:
    axes = (0, *range(2, x.ndim))
    return axes, [1, -1] + [1] * (x.ndim - 2)


def second_moment_gain(f: object, points: int = 200) -> float:
    """Gain g with g^2 * E[f(z)^2] = 1 for z ~ N(0, 1) (Gauss-Hermite quadrature).

    This is the He et al. (2015) argument in general form: it gives sqrt(2) for ReLU
    and sqrt(2 / (1 + a^2)) for Leaky ReLU, and a principled gain for smooth
    activations (ELU, GELU, SiLU) that ``torch.nn.init.calculate_gain`` does not know.

    Examples:
        >>> round(second_moment_gain(relu), 6)
        1.414214

    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    weights = weights / math.sqrt(2.0 * math.pi)
    second_moment = float(np.sum(weights * f(nodes) ** 2))  # type: ignore[operator]
    return 1.0 / math.sqrt(second_moment)
