"""The training monitor: live curves, gradient flow, histograms over time, feature maps."""

from .core import Watcher
from .widget import Monitor, MonitorView, watch

__all__ = ["Monitor", "MonitorView", "Watcher", "watch"]
