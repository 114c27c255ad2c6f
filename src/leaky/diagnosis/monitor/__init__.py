"""Diagnosis: dead and saturated units, and gradient flow, in any PyTorch model."""

from leaky.diagnosis.monitor.layer_stats import LayerGradientStatistics
from leaky.diagnosis.monitor.metric import Metric
from leaky.diagnosis.monitor.monitor import Monitor, unit_dim_of_layer
from leaky.diagnosis.monitor.report import (
    DYING_ABOVE,
    EXPLODING_ABOVE,
    SATURATED_ABOVE,
    VANISHING_BELOW,
    LayerRow,
    MonitorReport,
    SiteRow,
)
from leaky.diagnosis.monitor.site_stats import SiteStatistics, SiteSummary
from leaky.diagnosis.monitor.sites import local_derivative, spec_for_module

__all__ = [
    "DYING_ABOVE",
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
