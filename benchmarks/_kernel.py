"""Paired runs inside a real IPython kernel, for the overhead benchmarks.

Widget messages then travel over ZeroMQ as in JupyterLab. ``setup`` defines a
function ``run(live)`` (more arguments through ``args``) that prints a JSON
result; each round runs it bare and live, in alternating order, which cancels
the slow drift of a shared machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_client.manager import start_new_kernel

REPO = Path(__file__).resolve().parents[1]


def paired_rounds(setup: str, rounds: int, args: str = "", timeout: float = 1200) -> list[dict]:
    """``[{"bare": result, "live": result}, ...]``, one per round."""
    # Started in the repository's root, so that the kernel imports tests.models as we do.
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(REPO))
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        if msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))

    try:
        kc.execute_interactive(setup, output_hook=hook, timeout=600)
        results = []
        for r in range(rounds):
            order = ("bare", "live") if r % 2 == 0 else ("live", "bare")
            one = {}
            for name in order:
                out.clear()
                extra = f", {args}" if args else ""
                code = f"print(json.dumps(run({name == 'live'}{extra})))"
                kc.execute_interactive(code, output_hook=hook, timeout=timeout)
                one[name] = json.loads("".join(out))
            results.append(one)
        return results
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
