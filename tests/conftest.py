"""Fixtures shared by the Python unit tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP's
    waiting makes every call ~50x slower; put the setting back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class FakeClock:
    """A stand-in for ``time.monotonic`` that moves only when a test sets ``now``."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The clock every widget's throttle reads (nbviz._widget's ``time.monotonic``), under
    the test's control: set ``clock.now`` to move time; put back after the test."""
    from nbviz import _widget

    fake = FakeClock()
    monkeypatch.setattr(_widget.time, "monotonic", fake)
    return fake


class FakeShell:
    """IPython as a widget sees it: ``events.register("post_execute", hook)``; the test
    ends a cell with ``end_cell()``."""

    def __init__(self):
        self.hooks = []
        self.events = self

    def register(self, name, fn):
        assert name == "post_execute"
        self.hooks.append(fn)

    def unregister(self, name, fn):
        self.hooks.remove(fn)

    def end_cell(self):
        for hook in list(self.hooks):
            hook()


@pytest.fixture
def ipython(monkeypatch):
    """A notebook's shell for the widgets made in the test (``IPython.get_ipython``)."""
    shell = FakeShell()
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    return shell
