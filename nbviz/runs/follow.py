"""``nbviz.follow``: the training dashboard of a run that another process records.

A background thread reads what is new in the run directory a few times a second and
pushes it to the same panels ``nbviz.watch`` shows, so the kernel stays free for other
cells while a script (or a ``torchrun`` job) trains elsewhere. The thread stops on
``stop()``, when the widget closes, and with the kernel; it holds no file open between
reads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import ipywidgets

from ..monitor.runlog import STREAM, RecordedRun
from ..monitor.widget import dashboard_parts
from .format import RunFormatError


class Follower(ipywidgets.VBox):
    """The dashboard of a recorded run, kept up to date from its directory."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        title: str = "",
        interval: float = 0.5,
        max_rate: float = 2.0,
        layout: Any = None,
    ):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"path must be a run directory (str or Path), got {type(path).__name__}"
            )
        if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file; nbviz.follow needs a run directory")
        self.run = RecordedRun(self.path)
        self.status = ipywidgets.Label("")
        self.status.add_class("nbviz-follow-status")
        head, self.curves, self.view = dashboard_parts(
            self.run, title, max_rate, end_of_cell_flush=False
        )
        extra = {} if layout is None else {"layout": layout}
        super().__init__(children=[*head, self.status, self.curves, self.view], **extra)
        self._read()  # what is there already shows at once
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._follow, args=(interval,), name="nbviz-follow", daemon=True
        )
        self._thread.start()

    @property
    def following(self) -> bool:
        """Whether the background thread still reads the run."""
        thread = getattr(self, "_thread", None)
        return thread is not None and thread.is_alive()

    def stop(self) -> None:
        """Stop reading (the dashboard keeps what it shows); idempotent."""
        if not hasattr(self, "_stop"):  # a constructor that raised: nothing started
            return
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def close(self) -> None:
        """Stop reading and close the widgets."""
        self.stop()
        view = getattr(self, "view", None)
        if view is not None:
            view.close()
        super().close()

    def _follow(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if not self._read():
                return

    def _read(self) -> bool:
        """Read and show what is new; False when following must end (said in the status)."""
        try:
            new = self.run.update()
        except (RunFormatError, OSError) as exc:
            self.status.value = f"stopped following: {exc}"
            return False
        if self.run.meta is None:
            where = "does not exist yet" if not self.path.exists() else "has no monitor records yet"
            self.status.value = f"waiting: {self.path} {where}"
        elif not self.path.exists():
            self.status.value = f"stopped following: {self.path} was deleted"
            return False
        else:
            self.status.value = f"following {self.path}: {self.run.steps:,} steps"
        if new or self.view.pending:
            self.view.mark_changed()
        return True


def follow(
    path: str | os.PathLike,
    *,
    title: str = "",
    interval: float = 0.5,
    max_rate: float = 2.0,
    layout: Any = None,
) -> Follower:
    """Show a run that ``nbviz.watch(..., logdir=path)`` records, live, from any process.

    >>> import nbviz
    >>> view = nbviz.follow("runs/exp1")  # doctest: +SKIP

    ``interval``: seconds between reads of the directory (in a background thread: the
    kernel stays free); ``max_rate``: pushes to the browser per second at most. A path
    that does not exist yet is waited for. ``view.stop()`` ends the reading.
    """
    return Follower(path, title=title, interval=interval, max_rate=max_rate, layout=layout)


__all__ = ["STREAM", "Follower", "follow"]
