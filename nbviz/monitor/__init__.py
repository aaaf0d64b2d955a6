"""The training monitor: live curves, gradient flow, histograms over time, feature maps.

`TrainingRecorder` is the headless core (hooks and statistics); `Monitor` is the
dashboard widget that `watch()` returns, made of bqplot curves and `MonitorPanels`.
"""

import warnings

from .core import TrainingRecorder
from .widget import Monitor, MonitorPanels, watch

__all__ = ["Monitor", "MonitorPanels", "TrainingRecorder", "watch"]

_RENAMED = {"Watcher": TrainingRecorder, "MonitorView": MonitorPanels}  # old name -> class


def __getattr__(name: str):
    """The names of 0.1 still work, with a DeprecationWarning naming the new one."""
    if name in _RENAMED:
        new = _RENAMED[name].__name__
        warnings.warn(
            f"nbviz.monitor.{name} is now nbviz.monitor.{new}; the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return _RENAMED[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
