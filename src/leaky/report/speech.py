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
from leaky.report.sweeps import StoredSweep

__all__ = ["SPEECH_FIGURE", "fsdd_folder", "spectrogram_figure"]

SPEECH_FIGURE = "speech"  # the figure's file name (figures/speech.png)


def fsdd_folder(accuracy: StoredSweep | None) -> str | None:
    """The FSDD folder the accuracy sweep named (``data_dir``), or None for the default places."""
    config: Any = accuracy.config if accuracy is not None else None
    return getattr(config, "data_dir", "") or None


def spectrogram_figure(examples: list[tuple[int, str, np.ndarray]], messages: Messages) -> Figure:
    """One row per speaker, one column per digit: each recording's log-mel spectrogram.

    Drawn as one mosaic image (one axes), which renders far faster than 30 small axes.
    """
    speakers = list(dict.fromkeys(speaker for _, speaker, _ in examples))
    digits = sorted({digit for digit, _, _ in examples})
    bands, frames = examples[0][2].shape
    gap = 2
    low = min(float(np.percentile(mel, 5)) for _, _, mel in examples)
    high = max(float(mel.max()) for _, _, mel in examples)
    mosaic = np.full(
        (len(speakers) * (bands + gap) - gap, len(digits) * (frames + gap) - gap), np.nan
    )
    for digit, speaker, mel in examples:
        row = (len(speakers) - 1 - speakers.index(speaker)) * (bands + gap)  # first on top
        col = digits.index(digit) * (frames + gap)
        mosaic[row : row + bands, col : col + frames] = mel
    fig = Figure(figsize=(1.1 * len(digits) + 1.6, 1.0 * len(speakers) + 1.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_invalid(mosaic),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=low,
        vmax=high,
        interpolation="nearest",
    )
    ax.set_xticks([i * (frames + gap) + frames / 2 for i in range(len(digits))], map(str, digits))
    ax.set_yticks(
        [(len(speakers) - 1 - i) * (bands + gap) + bands / 2 for i in range(len(speakers))],
        speakers,
    )
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel(messages("speech.xlabel"))
    ax.set_ylabel(messages("speech.ylabel"))
    fig.colorbar(image, ax=ax, shrink=0.8, label=messages("speech.colorbar"))
    ax.set_title(messages("speech.figure_title"))
    return fig
