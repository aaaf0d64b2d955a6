"""Run directories: training recorded to disk by any process, read back live.

`format` defines the records (append-only, length-prefixed, checksummed; documented in
``docs/run-format.md``); `files` writes a segment from a background thread and reads a
run incrementally; `follow` is the widget that shows a recorded run as it grows;
`folder` finds and reads the runs of a folder, and `widget` shows them side by side;
`tensorboard` reads TensorBoard's event files as a run.
"""

from .files import RunReader, SegmentWriter
from .format import Record, RunFormatError

__all__ = ["Record", "RunFormatError", "RunReader", "SegmentWriter"]
