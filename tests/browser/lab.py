# ruff: noqa: E501  (long lines are in-page JavaScript snippets)
"""Browser-test harness for nbviz: a real JupyterLab server driven by headless Chromium.

Two pieces live here (the pytest fixtures that wire them up are in ``conftest.py``):

``LabServer``
    Starts ``python -m jupyter lab`` on 127.0.0.1 with a free port, an empty temporary
    root directory and temporary settings / workspaces / runtime / config directories,
    and stops it again.

``Lab``
    Drives one Playwright page pointed at that server: writes and opens notebooks,
    runs cells (without waiting, so a test can interact while a cell still runs),
    runs code in the notebook's kernel, switches theme, takes screenshots and counts
    the kernel messages the browser sends over the websocket.

All waits are condition waits (``page.wait_for_function`` / polling the REST API with a
deadline); nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
SCREENSHOT_DIR = ARTIFACTS_DIR / "screenshots"

#: Default timeouts, in seconds.
LAB_STARTUP_TIMEOUT = 60.0
KERNEL_START_TIMEOUT = 120.0
CELL_TIMEOUT = 120.0

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

VIEWPORT = {"width": 1280, "height": 900}

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}

# User settings written into the server's temporary ``user_settings_dir``.
# Keys are plugin ids; each becomes ``<dir>/<package>/<plugin>.jupyterlab-settings``.
BASE_USER_SETTINGS: dict[str, dict[str, Any]] = {
    # No "Would you like to receive official Jupyter news?" toast, no update check,
    # no toasts at all (they cover widgets in screenshots and steal clicks).
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    # Attach every cell to the DOM (the default 'contentVisibility'/'full' modes can
    # leave off-screen cells unrendered, which makes locators flaky).
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # The harness writes notebooks from Python; autosave racing with that can
    # raise "File Changed" dialogs.
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}
# Settings a test may change through the UI and that must not leak into the next test.
VOLATILE_SETTINGS = ["@jupyterlab/apputils-extension:themes"]


class LabError(AssertionError):
    """Something went wrong in the browser / kernel (a failed cell, a failed ``python()``)."""


# --------------------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------------------

CHROMIUM_HELP = (
    "No Chromium/Chrome binary found for the nbviz browser tests. Install one with "
    "`apt-get install -y chromium` (or run `make test`, which installs it), or set "
    "NBVIZ_CHROMIUM=/path/to/chromium-or-chrome. (Playwright's own browser download "
    "is not used.)"
)


def find_chromium() -> str | None:
    """``$NBVIZ_CHROMIUM`` wins, then /usr/bin/chromium, then chromium / chromium-browser /
    google-chrome on PATH. Returns None when nothing is found."""
    env = os.environ.get("NBVIZ_CHROMIUM", "").strip()
    if env:
        path = Path(env).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        found = shutil.which(env)
        if found:
            return found
        raise LabError(f"NBVIZ_CHROMIUM={env!r} is not an executable file. {CHROMIUM_HELP}")
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# --------------------------------------------------------------------------------------
# JupyterLab server
# --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings_file(settings_dir: Path, plugin_id: str) -> Path:
    package, plugin = plugin_id.split(":")
    return settings_dir / package / f"{plugin}.jupyterlab-settings"


class LabServer:
    """A JupyterLab server in a subprocess, with everything it writes kept under ``base``."""

    def __init__(self, base: Path, startup_timeout: float = LAB_STARTUP_TIMEOUT):
        self.base = Path(base)
        self.root_dir = self.base / "root"
        self.settings_dir = self.base / "user-settings"
        self.workspaces_dir = self.base / "workspaces"
        self.runtime_dir = self.base / "runtime"
        self.config_dir = self.base / "config"
        self.ipython_dir = self.base / "ipython"
        self.log_path = self.base / "jupyterlab.log"
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    # -- lifecycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_base_settings(self) -> None:
        for plugin_id, values in BASE_USER_SETTINGS.items():
            f = _settings_file(self.settings_dir, plugin_id)
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values, indent=2))
        for plugin_id in VOLATILE_SETTINGS:
            _settings_file(self.settings_dir, plugin_id).unlink(missing_ok=True)

    def start(self) -> LabServer:
        for d in (
            self.root_dir,
            self.settings_dir,
            self.workspaces_dir,
            self.runtime_dir,
            self.config_dir,
            self.ipython_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
        self.write_base_settings()
        last_error = None
        for _attempt in range(3):  # a free port can be grabbed by someone else meanwhile
            try:
                self._start_once()
                return self
            except _PortInUse as e:
                last_error = e
        raise LabError(f"could not start JupyterLab: {last_error}")

    def _start_once(self) -> None:
        self.port = _free_port()
        env = dict(os.environ)
        env.update(
            JUPYTER_RUNTIME_DIR=str(self.runtime_dir),
            JUPYTER_CONFIG_DIR=str(self.config_dir),  # ignore ~/.jupyter
            IPYTHONDIR=str(self.ipython_dir),  # no user startup files, no shared history db
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        # Kernels get the working tree's nbviz even when it is not pip-installed.
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        # kernel.json says "python": jupyter_client maps that to sys.executable, but keep
        # the venv first on PATH anyway for anything the kernel spawns.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root_dir}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={self.settings_dir}",
            f"--LabApp.workspaces_dir={self.workspaces_dir}",
            # no request to pypi.org from the server either
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        self._log_file = open(self.log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                log = self.log_tail()
                self._close_log()
                if "already in use" in log or "Address in use" in log:
                    raise _PortInUse(log[-500:])
                raise LabError(
                    f"JupyterLab exited with code {self.proc.returncode} during startup.\n"
                    f"command: {cmd}\n--- server log ({self.log_path}) ---\n{log}"
                )
            try:
                with urllib.request.urlopen(self.url + "/api/status", timeout=2) as r:
                    if r.status == 200:
                        json.load(r)
                        break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                log = self.log_tail()
                self.stop()
                raise LabError(
                    f"JupyterLab did not answer {self.url}/api/status within "
                    f"{self.startup_timeout:.0f}s.\n--- server log ({self.log_path}) ---\n{log}"
                )
            time.sleep(0.2)  # poll interval of the deadline loop above
        # /api/status answers before the lab page handler is guaranteed up; check it too.
        self.request("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # server and the kernels it started
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    # -- REST ----------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def shutdown_all_kernels(self) -> None:
        """Delete every session and kernel (tests must not leave kernels eating the CPUs)."""
        for s in self.request("GET", "/api/sessions"):
            try:
                self.request("DELETE", f"/api/sessions/{s['id']}")
            except urllib.error.HTTPError:
                pass
        for k in self.request("GET", "/api/kernels"):
            try:
                self.request("DELETE", f"/api/kernels/{k['id']}")
            except urllib.error.HTTPError:
                pass

    def reset_settings(self) -> None:
        """Undo settings a test changed through the UI (e.g. the theme)."""
        self.write_base_settings()


class _PortInUse(Exception):
    pass


# --------------------------------------------------------------------------------------
# In-page JavaScript
# --------------------------------------------------------------------------------------

#: Installed with ``context.add_init_script`` so it runs before JupyterLab's own code.
#: It wraps ``WebSocket.prototype.send`` and listens to received frames of every
#: ``/api/kernels/`` socket, decoding both wire formats Jupyter uses:
#:   * JSON text frames (the legacy protocol), and
#:   * binary frames of the ``v1.kernel.websocket.jupyter.org`` subprotocol
#:     (JupyterLab 4 + jupyter_server 2 use this one):
#:     uint64-LE n, n uint64-LE offsets, then parts channel | header | parent_header |
#:     metadata | content | buffers...
#: It also keeps the set of shell requests whose ``status: idle`` has not come back yet,
#: so the harness can wait until the kernel has really settled.
INIT_SCRIPT = r"""
(() => {
  if (window.__nbvizWire) return;
  const wire = {
    sent: [],            // every message the page sent to a kernel: {t, channel, msg_type, msg_id, comm_id, method, state_keys, protocol}
    recvCounts: {},      // msg_type -> count of messages received from kernels
    pending: new Set(),  // msg_ids of sent shell/control requests with no 'status: idle' yet
    lastActivity: Date.now(),
    sockets: 0,
    protocols: [],
    parseErrors: 0,
  };
  window.__nbvizWire = wire;
  const dec = new TextDecoder();

  function bytesOf(data) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return null;
  }

  // Returns {channel, header, parent_header, content(optional), protocol}
  function parse(data, wantContent) {
    if (typeof data === 'string') {
      const m = JSON.parse(data);
      return {channel: m.channel, header: m.header || {}, parent_header: m.parent_header || {},
              content: m.content, protocol: 'json'};
    }
    const b = bytesOf(data);
    if (!b) return null;   // a Blob: JupyterLab never sends those
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    try {
      const n = Number(dv.getBigUint64(0, true));
      if (n < 2 || n > 4096 || 8 * (n + 1) > b.byteLength) throw new Error('not v1');
      const offs = [];
      for (let i = 0; i < n; i++) offs.push(Number(dv.getBigUint64(8 * (i + 1), true)));
      const part = (i) => dec.decode(b.subarray(offs[i], i + 1 < n ? offs[i + 1] : b.byteLength));
      const out = {channel: part(0), header: JSON.parse(part(1)), parent_header: JSON.parse(part(2)),
                   protocol: 'v1.kernel.websocket.jupyter.org'};
      if (wantContent) { try { out.content = JSON.parse(part(4)); } catch (e) {} }
      return out;
    } catch (e) {
      // Unknown binary layout (e.g. the legacy binary-buffers format): find the header's
      // msg_type in the text. The header is serialised before parent_header and content.
      const text = dec.decode(b.subarray(0, Math.min(b.byteLength, 65536)));
      const mt = /"msg_type"\s*:\s*"([A-Za-z_]+)"/.exec(text);
      const mid = /"msg_id"\s*:\s*"([^"]+)"/.exec(text);
      const ch = /"channel"\s*:\s*"([a-z]+)"/.exec(text);
      return {channel: ch ? ch[1] : null, header: {msg_type: mt ? mt[1] : null, msg_id: mid ? mid[1] : null},
              parent_header: {}, protocol: 'binary-fallback'};
    }
  }

  function onRecv(ev) {
    wire.lastActivity = Date.now();
    let m;
    try { m = parse(ev.data, false); } catch (e) { wire.parseErrors++; return; }
    if (!m) return;
    const t = m.header.msg_type;
    wire.recvCounts[t] = (wire.recvCounts[t] || 0) + 1;
    if (t === 'status') {
      // the status message's content is not decoded; 'idle' is detected from the raw frame
      const pid = m.parent_header && m.parent_header.msg_id;
      if (pid && wire.pending.has(pid)) {
        let raw = typeof ev.data === 'string' ? ev.data : dec.decode(bytesOf(ev.data) || new Uint8Array());
        if (/"execution_state"\s*:\s*"idle"/.test(raw)) wire.pending.delete(pid);
      }
    }
  }

  const origSend = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      if (this.url && this.url.indexOf('/api/kernels/') !== -1) {
        if (!this.__nbvizHooked) {
          this.__nbvizHooked = true;
          wire.sockets++;
          wire.protocols.push(this.protocol || '');
          this.addEventListener('message', onRecv);
          this.addEventListener('close', () => { wire.pending.clear(); });
        }
        const m = parse(data, true);
        if (m) {
          const rec = {t: Date.now(), channel: m.channel, msg_type: m.header.msg_type,
                       msg_id: m.header.msg_id, subshell_id: m.header.subshell_id || null,
                       protocol: m.protocol};
          if (m.content && (rec.msg_type === 'comm_msg' || rec.msg_type === 'comm_open')) {
            rec.comm_id = m.content.comm_id;
            const d = m.content.data || {};
            rec.method = d.method;
            if (d.state) rec.state_keys = Object.keys(d.state);
            if (d.state && Object.prototype.hasOwnProperty.call(d.state, 'value')) rec.value = d.state.value;
          }
          wire.sent.push(rec);
          if ((m.channel === 'shell' || m.channel === 'control') && rec.msg_id) wire.pending.add(rec.msg_id);
        }
        wire.lastActivity = Date.now();
      }
    } catch (e) {
      wire.parseErrors++;
    }
    return origSend.apply(this, arguments);
  };

  // ---- helpers used by tests/browser/lab.py ---------------------------------------
  window.__nbviz = {
    panel(path) {
      const app = window.jupyterapp;
      if (!app || !app.shell) return null;
      for (const w of app.shell.widgets('main')) {
        if (w && w.context && w.context.path === path && w.content && w.sessionContext) return w;
      }
      return null;
    },
    kernel(path) {
      const p = this.panel(path);
      return p && p.sessionContext.session ? p.sessionContext.session.kernel : null;
    },
    codeCells(path) {
      const p = this.panel(path);
      return p ? p.content.widgets.filter((c) => c.model.type === 'code') : [];
    },
    stripAnsi(s) { return String(s).replace(/\u001b\[[0-9;]*[A-Za-z]/g, ''); },
    cellError(cell) {
      for (const o of cell.model.outputs.toJSON()) {
        if (o.output_type === 'error') {
          return {ename: o.ename, evalue: o.evalue,
                  traceback: this.stripAnsi((o.traceback || []).join('\n'))};
        }
      }
      return null;
    },
    runs: {},  // "path#index" -> {done, ok, error}
  };
})();
"""


# --------------------------------------------------------------------------------------
# The helper tests use
# --------------------------------------------------------------------------------------


class Lab:
    """Drives one JupyterLab page.

    ``page`` is a Playwright (sync) page, ``url`` the server URL (``http://127.0.0.1:PORT``),
    ``root_dir`` the server's root directory (notebooks are written there).

    Typical use::

        lab.open_notebook("t.ipynb", ["w = make_widget()\nw", "train(model)"])
        lab.run_cell(0); lab.wait_cell(0)
        lab.run_cell(1)                    # returns while the cell still runs
        lab.start_counting_kernel_messages()
        ...interact with lab.cell_output(0)...
        assert lab.kernel_messages_sent("comm_msg") > 0
        lab.wait_cell(1)
        assert lab.python("print(w.value)") == "5\n"

    One notebook per ``Lab``: opening another one reloads the page.
    """

    def __init__(self, page, url: str, root_dir: Path | str, server: LabServer | None = None):
        self.page = page
        self.url = url.rstrip("/")
        self.root_dir = Path(root_dir)
        self.server = server
        self.path: str | None = None  # path of the open notebook, relative to root_dir
        # a fresh workspace per Lab, so notebooks of earlier tests are not restored
        self.workspace = "nbviz-" + uuid.uuid4().hex[:12]
        page.context.add_init_script(INIT_SCRIPT)
        self._mark = 0
        self.dialogs_seen: list[str] = []  # texts of dialogs accepted by open_notebook
        self.last_stderr = ""  # stderr of the last python() call

    # -- notebooks -----------------------------------------------------------------
    def write_notebook(self, name: str, cells: list[str]) -> Path:
        """Write an nbformat-4 notebook with one code cell per source string."""
        nb = {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": dict(KERNELSPEC),
                "language_info": {"name": "python"},
            },
            "cells": [
                {
                    "cell_type": "code",
                    "id": f"cell-{i}",
                    "metadata": {},
                    "execution_count": None,
                    "outputs": [],
                    "source": src,
                }
                for i, src in enumerate(cells)
            ],
        }
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(nb, indent=1))
        return path

    def open_notebook(
        self,
        name: str,
        cells: list[str],
        timeout: float = KERNEL_START_TIMEOUT,
        collapse_sidebars: bool = True,
    ) -> None:
        """Write ``name`` (relative to the root dir) and open it in Lab; returns once the
        notebook panel is rendered and its kernel is connected and idle.

        Each ``Lab`` uses its own fresh workspace (``/lab/workspaces/<id>/tree/<name>``), so
        notebooks opened by earlier tests are not restored. Dialogs shown while opening
        (e.g. "Select Kernel") are accepted. With ``collapse_sidebars`` the file browser is
        folded away so the notebook gets the full width."""
        self.write_notebook(name, cells)
        self.path = Path(name).as_posix()
        quoted = urllib.parse.quote(self.path)
        self.page.goto(
            f"{self.url}/lab/workspaces/{self.workspace}/tree/{quoted}",
            wait_until="domcontentloaded",
        )
        deadline = time.monotonic() + timeout
        dialogs_seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(
                    f"notebook {name} not ready after {timeout:.0f}s; "
                    f"dialogs seen: {dialogs_seen}; state: {self._ready_state()}"
                    + self._server_log_hint()
                )
            try:
                handle = self.page.wait_for_function(
                    """([path, ncells]) => {
                        if (document.querySelector('.jp-Dialog')) return 'dialog';
                        const p = window.__nbviz && window.__nbviz.panel(path);
                        if (!p || !p.context.isReady || !p.sessionContext.isReady) return false;
                        if (p.content.widgets.length < ncells) return false;
                        const k = p.sessionContext.session && p.sessionContext.session.kernel;
                        if (!k) return false;
                        if (k.status === 'dead') return 'dead';
                        if (k.status !== 'idle' || k.connectionStatus !== 'connected') return false;
                        if (!p.isVisible) return false;
                        return 'ready';
                    }""",
                    arg=[self.path, len(cells)],
                    timeout=remaining * 1000,
                    polling=100,
                )
            except Exception as e:  # playwright TimeoutError
                if "Timeout" in type(e).__name__ or "Timeout" in str(e):
                    continue  # loop raises with details
                raise
            state = handle.json_value()
            if state == "ready":
                break
            if state == "dead":
                raise LabError(f"kernel of {name} died while starting" + self._server_log_hint())
            if state == "dialog":
                dialogs_seen.append(self._dismiss_dialog())
        self.page.evaluate(
            """([path, collapse]) => {
                const shell = window.jupyterapp.shell;
                if (collapse) { shell.collapseLeft(); shell.collapseRight(); }
                shell.activateById(window.__nbviz.panel(path).id);
            }""",
            [self.path, collapse_sidebars],
        )
        self.dialogs_seen = dialogs_seen
        self._mark = self._sent_len()

    def _dismiss_dialog(self) -> str:
        """Accept whatever dialog JupyterLab shows (e.g. "Select Kernel": accepting keeps the
        preferred kernel). Returns its text, for error messages."""
        dialog = self.page.locator(".jp-Dialog").first
        element = dialog.element_handle(timeout=5000)
        text = element.inner_text()
        accept = dialog.locator(".jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            self.page.keyboard.press("Escape")
        self.page.wait_for_function("(el) => !el.isConnected", arg=element, timeout=10_000)
        return " ".join(text.split())

    def _ready_state(self) -> Any:
        try:
            return self.page.evaluate(
                """(path) => {
                    const app = window.jupyterapp;
                    if (!app) return 'window.jupyterapp missing (expose_app_in_browser?)';
                    const p = window.__nbviz.panel(path);
                    if (!p) return {panel: null, main: Array.from(app.shell.widgets('main')).map(w => w.title.label)};
                    const s = p.sessionContext;
                    const k = s.session && s.session.kernel;
                    return {contextReady: p.context.isReady, sessionReady: s.isReady,
                            kernel: k ? {status: k.status, connection: k.connectionStatus, name: k.name} : null,
                            cells: p.content.widgets.length};
                }""",
                self.path,
            )
        except Exception as e:
            return f"<{e}>"

    def _server_log_hint(self) -> str:
        if self.server is None:
            return ""
        return f"\n--- server log tail ---\n{self.server.log_tail(3000)}"

    def _require_path(self) -> str:
        if self.path is None:
            raise LabError("no notebook open: call open_notebook() first")
        return self.path

    # -- cells ---------------------------------------------------------------------
    def n_cells(self) -> int:
        return self.page.evaluate("(p) => window.__nbviz.codeCells(p).length", self._require_path())

    def run_cell(self, i: int) -> None:
        """Start executing code cell ``i`` and return immediately (use ``wait_cell``)."""
        path = self._require_path()
        ok = self.page.evaluate(
            """([path, i]) => {
                const nb = window.__nbviz;
                const p = nb.panel(path);
                const cell = nb.codeCells(path)[i];
                if (!cell) return false;
                const app = window.jupyterapp;
                app.shell.activateById(p.id);
                const index = p.content.widgets.indexOf(cell);
                p.content.deselectAll();
                p.content.activeCellIndex = index;
                const key = path + '#' + i;
                const rec = {done: false, ok: null, error: null};
                nb.runs[key] = rec;
                Promise.resolve(app.commands.execute('notebook:run-cell', {activate: false}))
                  .then((ok) => { rec.ok = ok !== false; })
                  .catch((e) => { rec.ok = false; rec.error = String(e && e.stack || e); })
                  .finally(() => { rec.done = true; });
                return true;
            }""",
            [path, i],
        )
        if not ok:
            raise LabError(f"there is no code cell {i} (notebook has {self.n_cells()})")
        # Return once the kernel is working on it (or on cells queued before it), so that
        # "kernel is busy" holds right after run_cell() for any cell that takes a while;
        # never wait for the end.
        self.page.wait_for_function(
            """([path, i]) => {
                const c = window.__nbviz.codeCells(path)[i];
                const k = window.__nbviz.kernel(path);
                const r = window.__nbviz.runs[path + '#' + i];
                if (r && r.done) return true;
                return c && c.model.executionState === 'running' && k && k.status !== 'idle';
            }""",
            arg=[path, i],
            timeout=30_000,
            polling=50,
        )

    def cell_running(self, i: int) -> bool:
        return self.page.evaluate(
            "([p, i]) => window.__nbviz.codeCells(p)[i].model.executionState === 'running'",
            [self._require_path(), i],
        )

    def wait_cell(self, i: int, timeout: float = CELL_TIMEOUT) -> None:
        """Wait until code cell ``i`` has finished; raise ``LabError`` with the cell's
        traceback if it failed (or if the kernel died)."""
        __tracebackhide__ = True  # pytest shows the test line, not this helper
        path = self._require_path()
        try:
            handle = self.page.wait_for_function(
                """([path, i]) => {
                    const nb = window.__nbviz;
                    const c = nb.codeCells(path)[i];
                    const k = nb.kernel(path);
                    if (!c) return 'nocell';
                    if (k && k.status === 'dead') return 'dead';
                    const r = nb.runs[path + '#' + i];
                    if (r && !r.done) return false;
                    if (c.model.executionState === 'running') return false;
                    if (c.model.executionCount === null && !nb.cellError(c) && !(r && r.done)) return false;
                    return 'done';
                }""",
                arg=[path, i],
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as e:
            if "Timeout" in type(e).__name__:
                raise LabError(
                    f"cell {i} still running after {timeout:.0f}s (kernel {self.kernel_status()})"
                ) from None
            raise
        state = handle.json_value()
        if state == "nocell":
            raise LabError(f"there is no code cell {i}")
        if state == "dead":
            raise LabError(f"kernel died while running cell {i}" + self._server_log_hint())
        self._raise_for_cell(i)

    def _raise_for_cell(self, i: int) -> None:
        __tracebackhide__ = True  # pytest shows the test line, not this helper
        info = self.page.evaluate(
            """([path, i]) => {
                const nb = window.__nbviz;
                const c = nb.codeCells(path)[i];
                const r = nb.runs[path + '#' + i];
                return {error: nb.cellError(c), run: r ? {ok: r.ok, error: r.error} : null,
                        count: c.model.executionCount, source: c.model.sharedModel.getSource()};
            }""",
            [self._require_path(), i],
        )
        if info["error"]:
            e = info["error"]
            raise LabError(
                f"cell {i} raised {e['ename']}: {e['evalue']}\n--- source ---\n{info['source']}"
                f"\n--- traceback ---\n{e['traceback']}"
            )
        run = info["run"]
        if run and run["ok"] is False:
            raise LabError(
                f"cell {i} did not run successfully: {run['error'] or 'no error output'}"
            )
        if info["count"] is None:
            raise LabError(f"cell {i} has no execution count after running")

    def run_all_and_wait(self, timeout: float = CELL_TIMEOUT) -> None:
        """Run all cells and wait; raises with the first failing cell's traceback."""
        __tracebackhide__ = True  # pytest shows the test line, not this helper
        path = self._require_path()
        self.page.evaluate(
            """(path) => {
                const nb = window.__nbviz;
                const app = window.jupyterapp;
                app.shell.activateById(nb.panel(path).id);
                const rec = {done: false, ok: null, error: null};
                nb.runs[path + '#all'] = rec;
                Promise.resolve(app.commands.execute('notebook:run-all-cells', {activate: false}))
                  .then((ok) => { rec.ok = ok !== false; })
                  .catch((e) => { rec.ok = false; rec.error = String(e && e.stack || e); })
                  .finally(() => { rec.done = true; });
            }""",
            path,
        )
        try:
            self.page.wait_for_function(
                """(path) => {
                    const nb = window.__nbviz;
                    const k = nb.kernel(path);
                    if (k && k.status === 'dead') return true;
                    return nb.runs[path + '#all'].done &&
                        nb.codeCells(path).every((c) => c.model.executionState !== 'running');
                }""",
                arg=path,
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as e:
            if "Timeout" in type(e).__name__:
                raise LabError(f"cells still running after {timeout:.0f}s") from None
            raise
        if self.kernel_status() == "dead":
            raise LabError("kernel died during run-all" + self._server_log_hint())
        for i in range(self.n_cells()):
            self._raise_for_cell(i)

    def cell(self, i: int):
        """Locator of code cell ``i`` (the whole cell)."""
        return self._notebook_locator().locator(".jp-Cell.jp-CodeCell").nth(i)

    def cell_output(self, i: int):
        """Locator of code cell ``i``'s output area."""
        return self.cell(i).locator(".jp-Cell-outputArea")

    def _notebook_locator(self):
        # the panel of *this* notebook (its id is set by Lab), not any other open one
        pid = self.page.evaluate("(p) => window.__nbviz.panel(p).id", self._require_path())
        return self.page.locator(f"[id='{pid}'] .jp-Notebook")

    # -- kernel --------------------------------------------------------------------
    def kernel_status(self) -> str | None:
        return self.page.evaluate(
            "(p) => { const k = window.__nbviz.kernel(p); return k ? k.status : null; }",
            self._require_path(),
        )

    def wait_kernel_idle(self, timeout: float = CELL_TIMEOUT, quiet_ms: int = 250) -> None:
        """Wait until the kernel is idle, every request the page sent (execute, comm_msg...)
        has got its ``status: idle`` back, and the websocket has been quiet ``quiet_ms``
        (ipywidgets holds back state updates while one is in flight and sends them when
        it completes, so 'no pending request' alone can flicker)."""
        try:
            self.page.wait_for_function(
                """([path, quiet]) => {
                    const k = window.__nbviz.kernel(path);
                    const w = window.__nbvizWire;
                    return k && k.status === 'idle' && w.pending.size === 0 &&
                        Date.now() - w.lastActivity >= quiet;
                }""",
                arg=[self._require_path(), quiet_ms],
                timeout=timeout * 1000,
                polling=50,
            )
        except Exception as e:
            if "Timeout" in type(e).__name__:
                pending = self.page.evaluate(
                    "() => window.__nbvizWire.sent.filter(m => window.__nbvizWire.pending.has(m.msg_id))"
                )
                raise LabError(
                    f"kernel not idle after {timeout:.0f}s (status "
                    f"{self.kernel_status()}; requests without reply: {pending})"
                ) from None
            raise

    def python(self, code: str, timeout: float = 60.0) -> str:
        """Run ``code`` in the notebook's kernel (no cell is added) and return its stdout.

        Waits for the kernel to be idle first. Raises ``LabError`` with the traceback if
        the code raised. Stderr is ignored (it is kept in ``self.last_stderr``)."""
        __tracebackhide__ = True  # pytest shows the test line, not this helper
        self.wait_kernel_idle(timeout=timeout)
        out = self.page.evaluate(
            """async ([path, code, timeoutMs]) => {
                const k = window.__nbviz.kernel(path);
                if (!k) throw new Error('notebook has no kernel');
                const out = {stdout: '', stderr: '', error: null, status: null};
                const future = k.requestExecute({code, silent: false, store_history: false,
                                                 allow_stdin: false, stop_on_error: false});
                future.onIOPub = (msg) => {
                    const t = msg.header.msg_type;
                    if (t === 'stream') out[msg.content.name === 'stderr' ? 'stderr' : 'stdout'] += msg.content.text;
                    else if (t === 'error') out.error = {ename: msg.content.ename, evalue: msg.content.evalue,
                        traceback: window.__nbviz.stripAnsi((msg.content.traceback || []).join('\\n'))};
                };
                let timer;
                const timeout = new Promise((_, reject) => {
                    timer = setTimeout(() => reject(new Error('python() timed out after ' + timeoutMs + ' ms')), timeoutMs);
                });
                try {
                    const reply = await Promise.race([future.done, timeout]);
                    out.status = reply.content.status;
                    if (reply.content.status === 'error' && !out.error)
                        out.error = {ename: reply.content.ename, evalue: reply.content.evalue,
                                     traceback: window.__nbviz.stripAnsi((reply.content.traceback || []).join('\\n'))};
                } finally { clearTimeout(timer); }
                return out;
            }""",
            [self._require_path(), code, int(timeout * 1000)],
        )
        self.last_stderr = out["stderr"]
        if out["error"]:
            e = out["error"]
            raise LabError(
                f"python() code raised {e['ename']}: {e['evalue']}\n--- code ---\n{code}"
                f"\n--- traceback ---\n{e['traceback']}"
            )
        return out["stdout"]

    # -- kernel message counting ---------------------------------------------------
    def _sent_len(self) -> int:
        return self.page.evaluate("() => window.__nbvizWire.sent.length")

    def start_counting_kernel_messages(self) -> None:
        """Forget earlier messages: ``kernel_messages_sent`` counts from here."""
        self._mark = self._sent_len()

    def kernel_messages_sent(self, msg_type: str | None = "comm_msg") -> int:
        """How many messages of ``msg_type`` (None: all) the page has sent to kernels over
        the websocket since ``start_counting_kernel_messages()`` (or since the notebook
        was opened)."""
        return len(self.kernel_message_log(msg_type))

    def kernel_message_log(self, msg_type: str | None = None) -> list[dict]:
        """The decoded messages counted by ``kernel_messages_sent``: dicts with ``channel``,
        ``msg_type``, ``msg_id``, ``subshell_id`` (JupyterLab 4.6 sends widget comm messages
        to a kernel subshell by default), ``protocol`` and, for comm messages, ``comm_id``,
        ``method``, ``state_keys`` and ``value`` (when the update carries one)."""
        log = self.page.evaluate("(m) => window.__nbvizWire.sent.slice(m)", self._mark)
        return [m for m in log if msg_type is None or m.get("msg_type") == msg_type]

    def kernel_messages_received(self) -> dict[str, int]:
        """msg_type -> count of messages received from kernels since the page loaded."""
        return self.page.evaluate("() => ({...window.__nbvizWire.recvCounts})")

    # -- look --------------------------------------------------------------------
    def set_theme(self, theme: str, timeout: float = 30.0) -> None:
        """Switch to "light" or "dark" and wait until the body reflects it."""
        if theme not in THEMES:
            raise ValueError(f"theme must be one of {sorted(THEMES)}, not {theme!r}")
        self.page.evaluate(
            "(name) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})",
            THEMES[theme],
        )
        self.page.wait_for_function(
            "(light) => document.body.dataset.jpThemeLight === light",
            arg="true" if theme == "light" else "false",
            timeout=timeout * 1000,
        )
        # the theme CSS is swapped in by a <link>; wait for the variables to apply
        self.page.wait_for_function(
            """(light) => {
                const bg = getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim();
                const probe = document.createElement('div');
                probe.style.color = bg; document.body.appendChild(probe);
                const rgb = getComputedStyle(probe).color.match(/\\d+/g).map(Number);
                probe.remove();
                const lum = (rgb[0] + rgb[1] + rgb[2]) / 3;
                return light ? lum > 128 : lum < 128;
            }""",
            arg=theme == "light",
            timeout=timeout * 1000,
        )
        # Lab covers the page with its splash screen while it swaps themes.
        self.page.wait_for_function(
            "() => !document.getElementById('jupyterlab-splash')", timeout=timeout * 1000
        )

    def screenshot(self, locator=None, name: str = "screenshot") -> Path:
        """Save a PNG of ``locator`` (or the whole page when None) to
        ``<repo>/test-artifacts/screenshots/<name>.png`` and return the path."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        path = SCREENSHOT_DIR / f"{safe}.png"
        if locator is None:
            self.page.screenshot(path=str(path), animations="disabled")
        else:
            locator.scroll_into_view_if_needed()
            locator.screenshot(path=str(path), animations="disabled")
        return path

    def screenshot_themes(self, locator, name: str, ready: str | None = None) -> dict[str, Path]:
        """``<name>-light.png`` now, then ``<name>-dark.png`` in Lab's dark theme (after a
        moment for canvases to redraw); copied to the README's docs/ when the environment
        sets NBVIZ_UPDATE_DOCS. ``ready``: a JS predicate on the located element that must
        hold before each picture (e.g. that charts have drawn their lines)."""

        def wait_ready() -> None:
            if ready:
                self.page.wait_for_function(ready, arg=locator.element_handle(), timeout=30_000)

        wait_ready()
        shots = {"light": self.screenshot(locator, f"{name}-light")}
        self.set_theme("dark")
        self.page.wait_for_timeout(400)
        wait_ready()
        shots["dark"] = self.screenshot(locator, f"{name}-dark")
        if os.environ.get("NBVIZ_UPDATE_DOCS"):
            docs = Path(__file__).resolve().parents[2] / "docs"
            for theme, path in shots.items():
                shutil.copy(path, docs / f"{name}-{theme}.png")
        return shots
