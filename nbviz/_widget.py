"""Shared widget machinery: bundle loading, binary arrays, throttled pushes.

Every nbviz widget is an ``anywidget.AnyWidget`` whose frontend is one bundled
ES module in ``nbviz/static``. While a training cell runs, the kernel cannot
answer the browser, but it can still push state. So widgets accumulate in
Python, push at most ``max_rate`` times a second (one message per push, binary
buffers), and flush whatever is pending when a cell finishes executing.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

STATIC = Path(__file__).parent / "static"
BUILD_HINT = (
    "build the frontend with `make js` (or `npm --prefix js ci && npm --prefix js run build`), "
    "or reinstall nbviz with `pip install -e .`, which builds it"
)


class BundleMissingError(RuntimeError):
    """A widget's JavaScript bundle has not been built."""


def bundle_path(name: str) -> Path:
    return STATIC / f"{name}.js"


def warn_if_bundles_missing(names: list[str]) -> None:
    missing = [n for n in names if not bundle_path(n).exists()]
    if missing:
        warnings.warn(
            f"nbviz's frontend bundles are missing ({', '.join(missing)}.js in {STATIC}); "
            f"widgets cannot be shown until you {BUILD_HINT}. Headless cores work as usual.",
            stacklevel=3,
        )


# ---------------------------------------------------------------------------
# Binary array codec (jupyter-scatter's convention)


def _narrow(arr: np.ndarray) -> np.ndarray:
    """The smallest dtype that the browser reads natively and that holds ``arr``."""
    if arr.dtype == np.float64 or arr.dtype == np.float16:
        return arr.astype(np.float32)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        lo = int(arr.min()) if arr.size else 0
        hi = int(arr.max()) if arr.size else 0
        if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
            # JS has BigInt64Array, but nothing downstream wants BigInts.
            return arr.astype(np.float64)
        return arr.astype(np.int32)
    return arr


def array_to_json(arr: Any, widget: Any = None) -> dict | None:
    """Serialise an array as ``{"buffer", "dtype", "shape"}``; ipywidgets sends the
    memoryview as a binary buffer rather than JSON."""
    if arr is None:
        return None
    arr = np.ascontiguousarray(_narrow(np.asarray(arr)))
    return {
        "buffer": memoryview(arr.reshape(-1)),
        "dtype": str(arr.dtype),
        "shape": list(arr.shape),
    }


def array_from_json(value: dict | None, widget: Any = None) -> np.ndarray | None:
    if value is None:
        return None
    flat = np.frombuffer(bytes(value["buffer"]), dtype=value["dtype"])
    return flat.reshape(value["shape"])


array_serialization = {"to_json": array_to_json, "from_json": array_from_json}


def Array(**kwargs: Any) -> traitlets.Any:
    """A synced trait holding a numpy array (or None), sent as a binary buffer."""
    return traitlets.Any(None, allow_none=True, **kwargs).tag(sync=True, **array_serialization)


def nested_to_json(value: Any, widget: Any = None) -> Any:
    """Numpy arrays anywhere in dicts and lists -> binary array records (as `Array`'s)."""
    if isinstance(value, np.ndarray):
        return array_to_json(value)
    if isinstance(value, dict):
        return {k: nested_to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nested_to_json(v) for v in value]
    return value


def Nested(default: Any = None) -> traitlets.Any:
    """A synced trait holding dicts and lists with numpy arrays inside (per layer, per
    series, ...), each array sent as a binary buffer."""
    return traitlets.Any(default).tag(sync=True, to_json=nested_to_json)


# ---------------------------------------------------------------------------
# Rate limiting and end-of-cell flush


class Throttle:
    """Allows an action at most ``max_rate`` times per second.

    ``max_rate=None`` or ``0`` means no limit."""

    def __init__(self, max_rate: float | None):
        self.max_rate = max_rate
        self._last = -float("inf")

    def ready(self) -> bool:
        if not self.max_rate:
            return True
        return time.monotonic() - self._last >= 1.0 / self.max_rate

    def mark(self) -> None:
        self._last = time.monotonic()


def _post_execute_hook(ref: weakref.ref) -> Any:
    def hook(*_: Any) -> None:
        widget = ref()
        if widget is not None and widget.comm is not None:
            widget.cell_ended()

    return hook


class LiveWidget(anywidget.AnyWidget):
    """Base for widgets that receive data while a cell runs.

    Subclasses implement ``_push()`` (set the synced traits from the current
    state) and call ``self.mark_changed()`` after each update. Pushes are throttled
    to ``max_rate`` per second; ``flush()`` pushes now and is called at the end
    of every cell execution, so the final view equals the Python state.
    """

    _bundle: str = ""
    # Every widget has one: shown above the view as text (never HTML); "" shows none.
    title = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        *,
        max_rate: float | None = 10.0,
        layout: Any = None,
        title: str = "",
        end_of_cell_flush: bool = True,
        **traits: Any,
    ):
        path = bundle_path(self._bundle)
        if not path.exists():
            raise BundleMissingError(
                f"{type(self).__name__} needs its frontend bundle {path}, which is missing: "
                f"{BUILD_HINT}."
            )
        if max_rate is not None and (not isinstance(max_rate, (int, float)) or max_rate < 0):
            raise ValueError(
                f"max_rate must be a number of refreshes per second >= 0 or None, got {max_rate!r}"
            )
        self._throttle = Throttle(max_rate)
        # Held while state is pushed: a followed run's view is fed from a reader thread
        # while the kernel's thread answers the browser.
        self._lock = threading.RLock()
        self._dirty = False
        self._unhook = None
        if layout is not None:  # ipywidgets' own; None keeps its default
            traits["layout"] = layout
        super().__init__(title=str(title), **traits)
        # A view fed from another thread (a followed run) pushes from that thread only.
        self._unhook = self._register_post_execute() if end_of_cell_flush else None

    # anywidget reads these as class attributes; resolved per subclass. (Only
    # where _bundle is declared: ipywidgets' add_traits subclasses again.)
    def __init_subclass__(cls, **kwargs: Any) -> None:
        if cls.__dict__.get("_bundle"):
            js, css = bundle_path(cls._bundle), STATIC / f"{cls._bundle}.css"
            if js.exists():
                cls._esm = js
            else:  # said at import; constructing the widget then raises
                warn_if_bundles_missing([cls._bundle])
            if css.exists():
                cls._css = css
        super().__init_subclass__(**kwargs)

    def _register_post_execute(self):
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython ships with ipywidgets
            return None
        ip = get_ipython()
        if ip is None:
            return None
        hook = _post_execute_hook(weakref.ref(self))
        ip.events.register("post_execute", hook)

        def unhook() -> None:
            try:
                ip.events.unregister("post_execute", hook)
            except ValueError:
                pass

        weakref.finalize(self, unhook)
        return unhook

    def mark_changed(self, force: bool = False) -> None:
        """Note new data; push it now if the throttle allows (or ``force``). Widgets call it
        after each update, and so may a composite that fed one of its views."""
        self._dirty = True
        if force or self._throttle.ready():
            self._sync(final=force)

    @property
    def pending(self) -> bool:
        """Whether data is waiting for the next push (or the end-of-cell flush)."""
        return self._dirty

    def flush(self) -> None:
        """Push pending data to the browser now (one message)."""
        if self._dirty:
            self._sync(final=True)

    def cell_ended(self) -> None:
        """Called when a cell ends (with ``end_of_cell_flush``): push what is pending."""
        self.flush()

    def _sync(self, final: bool) -> None:
        with self._lock:
            self._throttle.mark()
            with self.hold_sync():
                self._dirty = self._push(final)

    def _push(self, final: bool) -> bool:  # pragma: no cover - abstract
        """Set the synced traits from the current state; return True if some
        data was held back (it goes with the next push or the end-of-cell
        flush). ``final`` pushes end a burst (end of cell, end of epoch): they
        send everything owed."""
        raise NotImplementedError

    def close(self) -> None:
        unhook = getattr(self, "_unhook", None)  # absent if __init__ raised early
        if unhook is not None:
            unhook()
            self._unhook = None
        super().close()
