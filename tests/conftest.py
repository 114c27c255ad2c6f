import os

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
