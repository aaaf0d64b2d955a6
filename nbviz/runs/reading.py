"""The background thread that keeps a followed view up to date."""

from __future__ import annotations

import threading
from collections.abc import Callable

import ipywidgets


class ReadLoop:
    """Calls ``read`` every ``interval`` seconds in a daemon thread, until ``read`` returns
    False, raises (said in ``status``: never a traceback in the notebook) or `stop` is
    called. The kernel's own thread stays free for other cells."""

    def __init__(
        self, read: Callable[[], bool], status: ipywidgets.Label, interval: float, name: str
    ) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(read, status, interval), name=name, daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread still reads."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """End the loop and wait for the thread (unless called from it); idempotent."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self, read: Callable[[], bool], status: ipywidgets.Label, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if not read():
                    return
            except Exception as exc:  # said in the view, never a traceback in the notebook
                status.value = f"stopped following: {type(exc).__name__}: {exc}"
                return
