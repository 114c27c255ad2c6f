"""Helpers shared by the tests: comparisons, edge values, small models, store reads."""

import http.server
import threading

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def assert_bitwise_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Same dtype, shape and bits (NaN payloads and the sign of zero included)."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    view = _INT_VIEW[actual.element_size()]
    a = actual.detach().contiguous().view(view)
    b = expected.detach().contiguous().view(view)
    if not torch.equal(a, b):
        bad = (a != b).nonzero()[:5].tolist()
        raise AssertionError(
            f"tensors differ bitwise at {bad}: {actual.detach().flatten()[:8]} vs "
            f"{expected.detach().flatten()[:8]}"
        )


# Values that break careless implementations.
EDGE_VALUES = [
    float("nan"),
    float("inf"),
    float("-inf"),
    0.0,
    -0.0,
    1e-45,  # smallest float32 subnormal
    -1e-45,
    1e-310,  # float64 subnormal (flushes to 0 in float32)
    -1e-310,
    6e-8,  # float16 subnormal
    -6e-8,
    1.0,
    -1.0,
    3.4e38,
    -3.4e38,
]


def edge_tensor(dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(EDGE_VALUES, dtype=torch.float64).to(dtype)


@st.composite
def float_tensors(draw, dtype: torch.dtype, min_dims: int = 0, max_dims: int = 4):
    """Tensors of any small shape (empty included) with edge values mixed in."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=6))
    elements = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64),
        st.sampled_from(EDGE_VALUES),
    )
    values = draw(hnp.arrays(np.float64, shape, elements=elements))
    with np.errstate(over="ignore"):
        return torch.from_numpy(values).to(dtype)


slopes = st.one_of(
    st.sampled_from([0.0, 0.01, 0.1, 0.2, 0.3, 1.0, 5.0]),
    st.floats(min_value=0.0, max_value=10.0, allow_subnormal=True),
)


class BasicBlock(torch.nn.Module):
    """ResNet's BasicBlock as torchvision writes it: conv-bn-relu-conv-bn, an in-place
    residual add, and the same ``relu`` module called a second time."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


def stored_runs(path) -> int:
    """Runs in a store file, read with plain sqlite3 (0 while it cannot be read).

    Opened read-only: a probe before leaky creates the store must not leave an empty file
    there, which leaky refuses as a store.
    """
    import sqlite3
    from contextlib import closing
    from pathlib import Path

    try:
        with closing(sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def wav_bytes(
    samples=None, *, rate: int = 8000, channels: int = 1, width: int = 2, seed: int = 0
) -> bytes:
    """A small WAV file's bytes: by default 0.2 s of a seeded tone at 8 kHz, mono, 16-bit."""
    import io
    import wave

    if samples is None:
        t = np.arange(1600) / rate
        tone = 0.3 * np.sin(2 * np.pi * (300 + 40 * seed) * t)
        samples = (tone * 32767).astype("<i2")
    data = np.asarray(samples).astype({1: "u1", 2: "<i2", 4: "<i4"}[width]).tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(data * channels)
    return buffer.getvalue()


def write_fsdd(folder, speakers=("ann", "bob"), indices=range(7)):
    """A small FSDD-shaped folder (``folder/recordings/{digit}_{speaker}_{index}.wav``)."""
    recordings = folder / "recordings"
    recordings.mkdir(parents=True)
    for s, speaker in enumerate(speakers):
        for digit in range(10):
            for index in indices:
                seed = digit * 7 + s + index % 3
                (recordings / f"{digit}_{speaker}_{index}.wav").write_bytes(wav_bytes(seed=seed))
    return folder


def stored_bits(store) -> dict[str, str]:
    """Each stored run's status, cell, metrics, layers and results, by run id, as text.

    ``repr`` keeps every bit of a float (and says nan), so equal text is bitwise equality.
    """
    return {
        r.run_id: repr((r.status, r.cell, r.metrics, r.layers, r.results)) for r in store.runs()
    }


class LoopbackServer:
    """Serves path -> (bytes, declared length) on 127.0.0.1 from a thread; counts requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, int]] = {}
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, length = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)  # fewer bytes than declared: the connection just ends

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, path: str, body: bytes, declared: int | None = None) -> str:
        self.routes[path] = (body, len(body) if declared is None else declared)
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
