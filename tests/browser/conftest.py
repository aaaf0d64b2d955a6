"""Fixtures for nbviz browser tests (a real JupyterLab in headless Chromium).

Fixtures:

* ``chromium_path`` (session): the Chromium/Chrome binary; fails (never skips) when none.
* ``lab_server`` (session): a running :class:`lab.LabServer`
  (``.url``, ``.root_dir``, ``.log_path``, ``.request()``...).
* ``lab_browser`` (session): a Playwright Chromium ``Browser``.
* ``lab_context`` / ``lab_page`` (function): a fresh browser context (1280x900, scale 1)
  and page. On a failing test a screenshot and the browser console go to
  ``test-artifacts/screenshots/FAILED-<test>.png`` / ``.console.txt``.
* ``lab`` (function): a :class:`lab.Lab` bound to ``lab_page``; afterwards
  the page is closed, every kernel of the server is shut down and the user settings
  (theme...) are reset, so tests do not leak into each other.

Every test in this folder gets the ``browser`` marker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .lab import (
    CHROMIUM_ARGS,
    CHROMIUM_HELP,
    SCREENSHOT_DIR,
    VIEWPORT,
    Lab,
    LabError,
    LabServer,
    find_chromium,
)

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"_nbviz_rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def chromium_path() -> str:
    try:
        path, problem = find_chromium(), CHROMIUM_HELP
    except LabError as e:
        path, problem = None, str(e)
    if path is None:
        pytest.fail(problem, pytrace=False)  # fail, never skip: CI must not go green without it
    return path


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    server = LabServer(tmp_path_factory.mktemp("jupyterlab"))
    problem = None
    try:
        server.start()
    except LabError as e:
        problem = str(e)
    if problem:
        pytest.fail(problem, pytrace=False)
    yield server
    try:
        server.shutdown_all_kernels()
    except Exception:
        pass
    server.stop()


@pytest.fixture(scope="session")
def lab_browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'", pytrace=False)
    pw = sync_playwright().start()
    try:
        browser, problem = None, None
        try:
            browser = pw.chromium.launch(
                executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
            )
        except Exception as e:
            problem = (
                f"could not launch {chromium_path}: {e}\nA working Chromium: "
                "`apt-get install -y chromium` (or `make test`), or set NBVIZ_CHROMIUM."
            )
        if problem:
            pytest.fail(problem, pytrace=False)
        yield browser
        browser.close()
    finally:
        pw.stop()


@pytest.fixture
def lab_context(lab_browser):
    context = lab_browser.new_context(viewport=dict(VIEWPORT), device_scale_factor=1)
    context.set_default_timeout(30_000)
    yield context
    context.close()


def _save_failure_artifacts(request, page) -> None:
    """Screenshot + browser console of a failed test, once, while the page is still open."""
    rep = getattr(request.node, "_nbviz_rep_call", None)
    if rep is None or not rep.failed or getattr(request.node, "_nbviz_saved", False):
        return
    request.node._nbviz_saved = True
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    stem = "FAILED-" + re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.nodeid)[-150:]
    if not page.is_closed():
        try:
            page.screenshot(path=str(SCREENSHOT_DIR / f"{stem}.png"))
        except Exception:
            pass
    console = getattr(request.node, "_nbviz_console", [])
    (SCREENSHOT_DIR / f"{stem}.console.txt").write_text("\n".join(console))


@pytest.fixture
def lab_page(lab_context, request):
    page = lab_context.new_page()
    console: list[str] = []
    request.node._nbviz_console = console
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    yield page
    _save_failure_artifacts(request, page)


@pytest.fixture
def lab(lab_page, lab_server, request):
    helper = Lab(lab_page, lab_server.url, lab_server.root_dir, server=lab_server)
    yield helper
    _save_failure_artifacts(request, lab_page)
    # Close the page first so Lab does not react to the kernels we delete, then free the
    # CPUs and undo UI-changed settings (theme) for the next test.
    try:
        lab_page.close()
    except Exception:
        pass
    try:
        lab_server.shutdown_all_kernels()
    except Exception:
        pass
    lab_server.reset_settings()
