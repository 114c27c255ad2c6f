"""The playground's setup as a short Python script: from the page to real code.

:func:`export_script` writes a script that builds the same data
(:func:`leaky.playground.datasets.make_playground_data`), the same networks
(:func:`leaky.lab.models.mlp`: leaky's own activation modules, initialised from the seed
as the page does) and the same training loop, step for step on the same batches, then
measures each network with a :class:`leaky.monitor.Monitor` over the training points, as
the page does, and prints what the page shows: losses, dead units per layer, the gradient
of the first layer over the last and the monitor's verdict. Run with the same seed, its
losses equal the page's session's (``tests/test_playground_export.py`` checks it).

Examples:
    >>> from leaky.playground.params import PlaygroundParams
    >>> script = export_script(PlaygroundParams(depth=2, activation="relu"), steps=10)
    >>> "mlp(" in script and "Monitor(" in script and "STEPS = 10" in script
    True
    >>> compile(script, "leaky_playground.py", "exec") is not None
    True
"""

from __future__ import annotations

from leaky.core.spec import get_spec
from leaky.playground.params import PlaygroundParams

__all__ = ["DEFAULT_STEPS", "export_script"]

DEFAULT_STEPS = 500  # trained by a script exported before the page took any step

_OPTIMIZERS = {
    "sgd": "torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)",
    "momentum": "torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)",
    "adam": "torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)",
}

_TEMPLATE = '''\
"""{title}

Exported from the leaky playground: the same data, networks and training as the page,
step for step (seed {seed}). Settings changed while the page was training are not
replayed: this script trains with the settings below from step 0.

    python leaky_playground.py
"""

import torch
from torch import nn

from leaky.lab.models import mlp
from leaky.monitor import Monitor
from leaky.playground.datasets import make_playground_data

SEED = {seed}
STEPS = {steps}
REPORT_EVERY = {report_every}  # steps between two printed losses
LEARNING_RATE = {learning_rate!r}
BATCH_SIZE = {batch_size}
BIAS_SHIFT = {bias_shift!r}  # subtracted from every hidden bias at the start
{prelu_setting}{recycle_setting}
# The playground's {dataset} data (noise {noise!r}), split at random into train and test.
{data_call}
x, y = data.x_train, data.y_train


def loss_of(output, target):
    """{loss_doc}"""
{loss_body}


def build(activation, **options):
    """A {depth} x {width} MLP with leaky's activation modules, drawn from the seed."""
    torch.manual_seed(SEED)  # the "torch" initialisation draws from the global generator
    model = mlp(
        x.shape[1],
        {outputs},
        depth={depth},
        width={width},
        activation=activation,
        init="{init}",
        generator=torch.Generator().manual_seed(SEED),
        **options,
    )
{rrelu_seed}{prelu_slope}    return model


def linears(model):
    """The Linear layers in forward order (the last one is the output layer)."""
    return [m for m in model if isinstance(m, nn.Linear)]


{build_models}
for model in models.values():
    with torch.no_grad():
        for layer in linears(model)[:-1]:  # push every hidden pre-activation down
            layer.bias.sub_(BIAS_SHIFT)


def optimizer_for(model):
    """{optimizer_doc}"""
    return {optimizer}


optimizers = {{name: optimizer_for(model) for name, model in models.items()}}


def train_loss(model):
    """The loss on every training point (evaluation mode, as the page measures it)."""
    model.eval()
    with torch.no_grad():
        loss = float(loss_of(model(x), y))
    model.train()
    return loss
{recycle_function}

def measure(name, model):
    """One forward and backward pass over the training points with a Monitor attached.

    A unit is dead when it passes no gradient for any training point.
    """
    model.eval()  # as the page measures: RReLU at its mean slope
    with Monitor(model, functional=False, bins=0) as monitor:
        loss = loss_of(model(x), y)
        loss.backward()
    with torch.no_grad():
        test_loss = float(loss_of(model(data.x_test), data.y_test))
    model.zero_grad(set_to_none=True)
    model.train()
    report = monitor.report()
    dead = [row.summary.dead_fraction or 0.0 for row in report.sites]
    ratio = report.gradient_ratio
    print(f"\\n{{name}}: train loss {{float(loss):.6f}}, test loss {{test_loss:.6f}}")
    print("  dead units per hidden layer: " + " ".join(f"{{share:.0%}}" for share in dead))
    shown = "unknown" if ratio is None else f"{{ratio:.3g}}"
    print(f"  gradient, first layer over last: {{shown}}; verdict: {{report.verdict}}")
    slopes = [m.weight.mean().item() for m in model if isinstance(m, nn.PReLU)]
    if slopes:
        print("  PReLU mean slope per layer: " + " ".join(f"{{s:.3f}}" for s in slopes))
    print(report)


# The page's batches: drawn from their own generator, the same batch for every network.
order = torch.Generator().manual_seed(SEED + 2)
print("step " + " ".join(f"{{name + ' loss':>22}}" for name in models))
print(f"{{0:>4}} " + " ".join(f"{{train_loss(m):>22.6f}}" for m in models.values()))
for step in range(1, STEPS + 1):
    batch = torch.randint(0, len(x), (BATCH_SIZE,), generator=order)
    for name, model in models.items():
        optimizers[name].zero_grad(set_to_none=True)
        loss_of(model(x[batch]), y[batch]).backward()
        optimizers[name].step()
{recycle_call}    if step % REPORT_EVERY == 0 or step == STEPS:
        print(f"{{step:>4}} " + " ".join(f"{{train_loss(m):>22.6f}}" for m in models.values()))

for name, model in models.items():
    measure(name, model)
'''

_RECYCLE_FUNCTION = '''

recycling = torch.Generator().manual_seed(SEED + 3)


def recycle_dead(model, optimizer):
    """ReDo: units dead on every training point get new weights in, zero weights out."""
    model.eval()
    with Monitor(model, gradients=False, bins=0, every=1) as monitor:
        model(x)
    model.train()
    dead = monitor.report().dead_units
    if dead:
        recycle(model, dead, x[:2], optimizer=optimizer, generator=recycling)
'''

_RECYCLE_CALL = """\
    if step % RECYCLE_EVERY == 0:
        for name, model in models.items():
            recycle_dead(model, optimizers[name])
"""


def _call(function: str, arguments: str) -> str:
    # On one line when it fits in 100 characters (the project's own width), else broken.
    line = f"{function}({arguments})"
    return line if len(line) <= 100 else f"{function}(\n    {arguments}\n)"


def _options(params: PlaygroundParams, activation: str) -> str:
    options = params.activation_options(activation)
    if activation == "prelu":  # set after building: see PRELU_INIT
        return ""
    return "".join(f", {k}={v!r}" for k, v in options.items())


def export_script(
    params: PlaygroundParams, *, steps: int = DEFAULT_STEPS, report_every: int | None = None
) -> str:
    """A runnable script that trains ``params``' networks for ``steps`` steps, as the page does.

    Args:
        params: the page's settings.
        steps: training steps (the page's step count, to print what it shows).
            Default: :data:`DEFAULT_STEPS`
        report_every: steps between two printed training losses; None prints about ten.
            Default: None

    Raises:
        ValueError: ``steps`` or ``report_every`` is not a positive integer.
    """
    for name, value in (("steps", steps), ("report_every", report_every)):
        if value is None and name == "report_every":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected `{name}` to be an integer >= 1, but got {value!r}")
    every = report_every if report_every is not None else max(1, steps // 10)
    regression = params.dataset == "fn1d"
    title = " and ".join(get_spec(a).title for a in params.activations())
    names = list(params.activations())
    if params.compare and names[0] == names[1]:  # the same activation twice: two names
        names[0] += " (compared)"
    build = [
        f'    "{name}": build("{activation}"{_options(params, activation)}),'
        for name, activation in zip(names, params.activations(), strict=True)
    ]
    build_models = "models = {\n" + "\n".join(build) + "\n}"
    if params.compare:  # the compared network starts from the main one's weights
        build_models += (
            f"\nwith torch.no_grad():  # one difference only: the activation"
            f'\n    for target, source in zip(linears(models["{names[0]}"]), '
            f'linears(models["{names[1]}"])):'
            "\n        target.weight.copy_(source.weight)"
            "\n        target.bias.copy_(source.bias)"
        )
    rrelu = "rrelu" in params.activations()
    recycling = params.recycle_every > 0
    text = _TEMPLATE.format(
        title=f"{title}: {params.depth} x {params.width} MLP on {params.dataset}, trained "
        f"{steps} steps.",
        seed=params.seed,
        steps=steps,
        report_every=every,
        learning_rate=params.learning_rate,
        batch_size=params.batch_size,
        bias_shift=params.bias_shift,
        prelu_setting=(
            f"PRELU_INIT = {params.prelu_init!r}  # PReLU's initial slope\n"
            if "prelu" in params.activations()
            else ""
        ),
        recycle_setting=(
            f"RECYCLE_EVERY = {params.recycle_every}  # steps between recyclings of dead units\n"
            if recycling
            else ""
        ),
        dataset=params.dataset,
        data_call=_call(
            "data = make_playground_data",
            f'"{params.dataset}", noise={params.noise!r}, '
            f"train_fraction={params.train_fraction!r}, seed=SEED",
        ),
        noise=params.noise,
        train_fraction=params.train_fraction,
        loss_doc="Mean squared error." if regression else "Cross-entropy over the two classes.",
        loss_body=(
            "    return nn.functional.mse_loss(output.squeeze(-1), target)"
            if regression
            else "    return nn.functional.cross_entropy(output, target)"
        ),
        depth=params.depth,
        width=params.width,
        outputs=1 if regression else 2,
        init=params.init,
        rrelu_seed=(
            "    for module in model.modules():  # RReLU's random slopes, from their own seed\n"
            "        if isinstance(module, nn.RReLU):\n"
            "            module.generator = torch.Generator().manual_seed(SEED + 1)\n"
            if rrelu
            else ""
        ),
        prelu_slope=(
            "    # PReLU's initial slope: set here, since mlp's `init` names the weights' scheme.\n"
            "    for module in model.modules():\n"
            "        if isinstance(module, nn.PReLU):\n"
            "            with torch.no_grad():\n"
            "                module.weight.fill_(PRELU_INIT)\n"
            if "prelu" in params.activations()
            else ""
        ),
        build_models=build_models,
        optimizer=_OPTIMIZERS[params.optimizer],
        optimizer_doc=f"The page's optimiser: {params.optimizer}.",
        recycle_function=_RECYCLE_FUNCTION if recycling else "",
        recycle_call=_RECYCLE_CALL if recycling else "",
    )
    if recycling:
        text = text.replace(
            "from leaky.playground.datasets import make_playground_data\n",
            "from leaky.playground.datasets import make_playground_data\n"
            "from leaky.repair import recycle\n",
        )
    return text
