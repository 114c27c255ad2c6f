"""The report's speech section: what the speech networks see, where the data came from.

A figure of log-mel spectrograms, a few speakers saying each digit, drawn from the FSDD
recordings on this machine (a handful of files are read; nothing is trained), the credit and
licence of the Free Spoken Digit Dataset, and, when the recordings are not here, how to get
them. The speech results themselves are the accuracy experiment's ``fsdd-*`` rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from leaky.messages import Messages
from leaky.report.sweeps import Sweep

__all__ = ["SPEECH_FIGURE", "fsdd_folder", "spectrogram_figure"]

SPEECH_FIGURE = "speech"  # the figure's file name (figures/speech.png)


def fsdd_folder(accuracy: Sweep | None) -> str | None:
    """The FSDD folder the accuracy sweep named (``data_dir``), or None for the default places."""
    config: Any = accuracy.config if accuracy is not None else None
    return getattr(config, "data_dir", "") or None


def spectrogram_figure(examples: list[tuple[int, str, np.ndarray]], messages: Messages) -> Figure:
    """One row per speaker, one column per digit: each recording's log-mel spectrogram."""
    speakers = list(dict.fromkeys(speaker for _, speaker, _ in examples))
    digits = sorted({digit for digit, _, _ in examples})
    fig = Figure(
        figsize=(1.25 * len(digits) + 1.0, 1.35 * len(speakers) + 1.0), layout="constrained"
    )
    axes = fig.subplots(len(speakers), len(digits), squeeze=False, sharex=True, sharey=True)
    low = min(float(np.percentile(mel, 5)) for _, _, mel in examples)
    high = max(float(mel.max()) for _, _, mel in examples)
    image = None
    for digit, speaker, mel in examples:
        ax = axes[speakers.index(speaker), digits.index(digit)]
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=low, vmax=high)
    for col, digit in enumerate(digits):
        axes[0, col].set_title(str(digit))
    for row, speaker in enumerate(speakers):
        axes[row, 0].set_ylabel(speaker, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.supxlabel(messages("speech.xlabel"), fontsize=10)
    fig.supylabel(messages("speech.ylabel"), fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label=messages("speech.colorbar"))
    fig.suptitle(messages("speech.figure_title"))
    return fig
