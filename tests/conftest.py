import os
import signal
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property tests: enough examples to find edge cases, no deadline (the machines are shared).
settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

torch.set_num_threads(2)

# The speech tests read the checked FSDD copy beside the repository (`../shared/data/fsdd`,
# never committed); a LEAKY_DATA_DIR set by the caller wins. Without it they skip and say why.
_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not os.environ.get("LEAKY_DATA_DIR") and (_SHARED_DATA / "fsdd").is_dir():
    os.environ["LEAKY_DATA_DIR"] = str(_SHARED_DATA)


@pytest.fixture(autouse=True)
def _ctrl_c_reaches_python():
    """Let SIGINT reach Python even when pytest runs as a background shell job.

    A non-interactive shell starts background jobs with SIGINT ignored, and Python then leaves
    it ignored (in itself and in the processes it starts): the Ctrl-C tests would see a sweep
    that cannot be interrupted. Restored for each test, put back afterwards.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
