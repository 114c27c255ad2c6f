import os
from pathlib import Path

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
