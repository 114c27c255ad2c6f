"""Read one WAV recording with the standard library, checking what the speech tasks expect.

The Free Spoken Digit Dataset is 8 kHz, mono, 16-bit PCM. Anything else (another rate,
stereo, 8- or 24-bit samples, a truncated data chunk, a file that is not a WAV at all) is
one ``ValueError`` that names the file and what was found, never a wrong answer.

Examples:
    >>> import io, tempfile, wave
    >>> path = Path(tempfile.mkdtemp()) / "0_test_0.wav"
    >>> with wave.open(str(path), "wb") as w:
    ...     w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    ...     w.writeframes(np.array([0, 16384, -32768], dtype="<i2").tobytes())
    >>> read_wav(path).tolist()
    [0.0, 0.5, -1.0]
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_RATE", "read_wav"]

SAMPLE_RATE = 8000  # Hz, every FSDD recording
_MAX_SECONDS = 60  # far beyond any spoken digit: a bigger header is damage, not speech


def read_wav(path: str | os.PathLike[str], *, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The samples of a mono 16-bit PCM WAV file at ``rate`` Hz, as float32 in [-1, 1).

    Raises:
        ValueError: naming the file: not a WAV file, another sample rate, more than one
            channel, another sample width, no samples, or fewer samples than the header
            declares (a truncated file).
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as recording:
            channels = recording.getnchannels()
            width = recording.getsampwidth()
            found_rate = recording.getframerate()
            frames = recording.getnframes()
            if found_rate != rate:
                raise ValueError(
                    f"{path}: expected a sample rate of {rate} Hz, but the file has "
                    f"{found_rate} Hz; resample it (for example with sox or librosa) first"
                )
            if channels != 1:
                raise ValueError(
                    f"{path}: expected a mono recording, but the file has {channels} channels"
                )
            if width != 2:
                raise ValueError(
                    f"{path}: expected 16-bit samples, but the file has {8 * width}-bit samples"
                )
            if frames > _MAX_SECONDS * rate:
                raise ValueError(
                    f"{path}: the header declares {frames:,} samples ({frames / rate:.0f} s), "
                    f"more than {_MAX_SECONDS} s; the file is damaged or not a spoken digit"
                )
            data = recording.readframes(frames)
    except wave.Error as error:
        raise ValueError(f"{path}: not a readable WAV file ({error})") from None
    except EOFError:
        raise ValueError(f"{path}: not a readable WAV file (it ends inside its header)") from None
    except OSError as error:
        raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None
    if len(data) != 2 * frames:
        raise ValueError(
            f"{path}: truncated: the header declares {frames:,} samples but the file holds "
            f"{len(data) // 2:,}"
        )
    if frames == 0:
        raise ValueError(f"{path}: the recording holds no samples")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
