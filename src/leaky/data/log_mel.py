"""Log-mel spectrograms: librosa's mel filter bank on a ``torch.stft`` power spectrum.

What a speech network sees: the power in ``n_mels`` bands spaced evenly on the mel scale
(close together at low frequencies, where speech carries most of its information), one
column every ``hop`` samples, on a log scale, padded or cropped to ``frames`` columns so
every recording has the same shape. librosa comes with the ``speech`` extra
(``pip install 'leaky[speech]'``); it is imported only here, when features are made.

Examples:
    >>> settings = MelSettings()
    >>> settings.n_mels, settings.frames
    (32, 48)
    >>> log_mel(np.zeros(8000, dtype=np.float32), settings).shape
    (32, 48)
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = ["MelSettings", "log_mel", "mel_filter_bank"]


@dataclass(frozen=True)
class MelSettings:
    """How a recording becomes a spectrogram (part of the feature cache's key)."""

    sample_rate: int = 8000
    n_fft: int = 256  # 32 ms windows at 8 kHz
    hop: int = 128  # 16 ms between columns
    n_mels: int = 32
    frames: int = 48  # 0.77 s: longer than 90% of FSDD's recordings; longer ones are cropped
    floor: float = 1e-6  # added to the power before the log: silence is log(floor), not -inf

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop", "n_mels", "frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected `{name}` to be an int >= 1, but got {value!r}")
        if not (isinstance(self.floor, float) and math.isfinite(self.floor) and self.floor > 0):
            raise ValueError(f"Expected `floor` to be a number > 0, but got {self.floor!r}")

    def as_dict(self) -> dict[str, float]:
        """Plain data for hashing and storing."""
        return asdict(self)


@functools.lru_cache(maxsize=4)
def mel_filter_bank(settings: MelSettings) -> torch.Tensor:
    """Librosa's Slaney-normalised mel filter bank, ``(n_mels, n_fft // 2 + 1)``."""
    try:
        import librosa
    except ImportError:
        raise ValueError(
            "The speech features need librosa (its mel filter bank): pip install 'leaky[speech]'"
        ) from None
    bank = librosa.filters.mel(
        sr=settings.sample_rate, n_fft=settings.n_fft, n_mels=settings.n_mels
    )
    return torch.from_numpy(np.asarray(bank, dtype=np.float32))


def log_mel(samples: np.ndarray | list[np.ndarray], settings: MelSettings) -> np.ndarray:
    """Log-mel spectrograms: ``(n_mels, frames)`` of one recording, ``(N, ...)`` of a list.

    A list goes through one batched STFT; the result is float32.

    Each recording is padded with silence or cropped at its end to ``frames`` columns:
    FSDD's recordings are trimmed, so the digit starts at the beginning.
    """
    single = isinstance(samples, np.ndarray)
    recordings = [samples] if single else list(samples)
    wanted = (settings.frames - 1) * settings.hop  # samples that give `frames` centred columns
    batch = torch.zeros(len(recordings), wanted)
    for row, recording in zip(batch, recordings, strict=True):
        kept = torch.from_numpy(np.asarray(recording, dtype=np.float32)[:wanted])
        row[: len(kept)] = kept
    spectrum = torch.stft(
        batch,
        n_fft=settings.n_fft,
        hop_length=settings.hop,
        window=torch.hann_window(settings.n_fft),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = spectrum.abs().square()  # (N, n_fft // 2 + 1, frames)
    mel = torch.matmul(mel_filter_bank(settings), power)
    out = torch.log(mel + settings.floor).numpy()
    return out[0] if single else out
