"""Smoke test of the browser harness itself (does not import nbviz)."""

from __future__ import annotations

import sys

import pytest

from .lab import Lab

SLIDER_CELL = "import ipywidgets\nslider = ipywidgets.IntSlider(value=3)\nslider"
SLOW_CELL = "import time\nfor i in range(40): time.sleep(0.1)"


@pytest.mark.browser
def test_lab_smoke(lab: Lab):
    lab.open_notebook("smoke.ipynb", [SLIDER_CELL, SLOW_CELL])

    # the kernel is this venv's python
    assert lab.python("import sys; print(sys.prefix)").strip() == sys.prefix

    # cell 0: the slider renders in the browser
    lab.run_cell(0)
    lab.wait_cell(0)
    slider = lab.cell_output(0).locator(".widget-slider")
    slider.wait_for(state="visible", timeout=30_000)
    readout = lab.cell_output(0).locator(".widget-readout")
    assert readout.inner_text().strip() == "3"

    # cell 1 runs in the background while we look at the page
    lab.run_cell(1)
    assert lab.cell_running(1)
    assert lab.kernel_status() == "busy"
    lab.wait_cell(1, timeout=60)
    assert not lab.cell_running(1)

    assert lab.python("print(1+1)") == "2\n"

    # drag the slider: the browser must send comm messages to the kernel
    lab.start_counting_kernel_messages()
    handle = lab.cell_output(0).locator(".noUi-handle")
    track = lab.cell_output(0).locator(".noUi-target")
    hb = handle.bounding_box()
    tb = track.bounding_box()
    assert hb and tb
    lab.page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    lab.page.mouse.down()
    lab.page.mouse.move(tb["x"] + tb["width"] * 0.75, hb["y"] + hb["height"] / 2, steps=8)
    lab.page.mouse.up()
    lab.wait_kernel_idle()

    shown = int(readout.inner_text().strip())
    assert 50 <= shown <= 100, shown
    assert int(lab.python("print(slider.value)")) == shown
    comm = lab.kernel_message_log("comm_msg")
    assert lab.kernel_messages_sent("comm_msg") == len(comm) > 0
    assert any(m.get("value") == shown for m in comm), comm

    # dark theme + screenshot
    lab.set_theme("dark")
    path = lab.screenshot(None, "smoke-dark")
    assert path.is_file() and path.stat().st_size > 10_000
    lab.screenshot(lab.cell(0), "smoke-dark-slider-cell")

    # python() surfaces errors with the traceback
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        lab.python("1/0")


@pytest.mark.browser
def test_lab_isolation_and_run_all(lab: Lab, lab_server):
    """A second test in the same server: fresh workspace, light theme again, the previous
    test's kernels are gone, and run_all_and_wait reports the failing cell."""
    lab.open_notebook("isolation.ipynb", ["x = 21", "print(x * 2)", "raise ValueError('boom')"])
    assert lab.page.evaluate("() => document.body.dataset.jpThemeLight") == "true"
    sessions = lab_server.request("GET", "/api/sessions")
    assert [s["path"] for s in sessions] == ["isolation.ipynb"]
    with pytest.raises(AssertionError, match=r"cell 2 raised ValueError: boom"):
        lab.run_all_and_wait()
    assert lab.cell_output(1).inner_text().strip() == "42"
    assert lab.python("print(x)") == "21\n"
