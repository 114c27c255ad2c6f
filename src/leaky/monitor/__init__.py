"""Diagnosis: dead and saturated units, and gradient flow, in any PyTorch model."""

from leaky.monitor.layer_stats import LayerGradientStatistics
from leaky.monitor.metric import Metric
from leaky.monitor.monitor import Monitor, unit_dim_of_layer
from leaky.monitor.report import (
    EXPLODING_ABOVE,
    SATURATED_ABOVE,
    VANISHING_BELOW,
    LayerRow,
    MonitorReport,
    SiteRow,
)
from leaky.monitor.site_stats import SiteStatistics, SiteSummary
from leaky.monitor.sites import local_derivative, spec_for_module

__all__ = [
    "EXPLODING_ABOVE",
    "SATURATED_ABOVE",
    "VANISHING_BELOW",
    "LayerGradientStatistics",
    "LayerRow",
    "Metric",
    "Monitor",
    "MonitorReport",
    "SiteRow",
    "SiteStatistics",
    "SiteSummary",
    "local_derivative",
    "spec_for_module",
    "unit_dim_of_layer",
]
