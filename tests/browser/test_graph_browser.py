"""ModelGraph in a real JupyterLab: expand, fold, search, details, live overlay.

The overlay cell trains a ResNet-style net and pushes per-module gradient
norms every step until the test drops a `stop` file, so the interactions in
the middle really happen while the kernel is busy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .lab import Lab

EVIL = "<img src=x onerror=alert(1)>"
DOCS = Path(__file__).resolve().parents[2] / "docs"
ROOT = ".nbviz-graph"

RESNET = f"""
import os, torch, nbviz
from tests.models import resnet18, gpt
torch.manual_seed(0)
torch.set_num_threads(1)  # 2 cores shared with Chromium: OpenMP spin-waits would starve

body = resnet18()
net = torch.nn.Sequential()
net.add_module("body", body)
net.add_module({EVIL!r}, torch.nn.Softmax(dim=1))   # a hostile module name: shown as text
x = torch.randn(8, 3, 32, 32)
graph = nbviz.ModelGraph(net, x, depth=1, title="ResNet-18-style")
graph
"""

TRAIN = """
opt = torch.optim.SGD(net.parameters(), lr=0.01)
y = torch.randint(0, 10, (8,))
watched = ["body.conv1", "body.layer1", "body.layer2", "body.layer3", "body.layer4", "body.fc"]
for step in range(100_000):  # until the test says stop
    opt.zero_grad()
    loss = torch.nn.functional.nll_loss(torch.log(net(x) + 1e-9), y)
    loss.backward()
    norms = {p: torch.stack([q.grad.norm() for q in net.get_submodule(p).parameters()]).norm()
             for p in watched}
    graph.overlay(norms, label=f"grad norm, step {step}")
    opt.step()
    if os.path.exists("stop-graph"):
        break
"""

GPT = """
import torch, nbviz
from tests.models import gpt
lm = gpt(vocab=256, n_layer=12, n_head=4, d_model=64, ctx=64)
gpt_graph = nbviz.ModelGraph(lm, torch.randint(0, 256, (1, 32)), depth=2, title="GPT-style, 12 layers")
gpt_graph
"""


FUNCTIONAL = """
import torch, nbviz
import torch.nn.functional as F
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True),
            nn.ReLU(),
        )
        self.conv = nn.Conv2d(8, 8, kernel_size=3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv(self.stem(x)))  # functional calls: op boxes of the model itself
        x = torch.relu(x.mean(dim=(2, 3)))
        return self.head(x)

fnet = Net()
fgraph = nbviz.ModelGraph(fnet, torch.randn(2, 3, 16, 16), depth=1, title="functional relu")
fgraph
"""

# Words of the repr cut across two lines (the old CSS broke "stride" into "strid" / "e=").
BROKEN_WORDS = """(pre) => {
    const broken = [];
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
        for (const m of t.data.matchAll(/\\S+/g)) {
            const r = document.createRange();
            r.setStart(t, m.index);
            r.setEnd(t, m.index + m[0].length);
            const tops = new Set([...r.getClientRects()].map((b) => Math.round(b.top)));
            if (tops.size > 1) broken.push(m[0]);
        }
    }
    return broken;
}"""

# Per repr line: [rows it takes, left of its first row, least left of the rows after].
REPR_ROWS = """(pre) => [...pre.querySelectorAll('.nbviz-graph__repr-line')].map((line) => {
    const r = document.createRange();
    r.selectNodeContents(line);
    const rows = new Map();
    for (const b of r.getClientRects()) {
        const top = Math.round(b.top);
        rows.set(top, Math.min(rows.get(top) ?? Infinity, b.left));
    }
    const lefts = [...rows.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
    return [lefts.length, lefts[0] ?? 0, lefts.length > 1 ? Math.min(...lefts.slice(1)) : null];
})"""


def widget(lab: Lab, i: int):
    return lab.cell_output(i).locator(ROOT)


def show_first(lab: Lab, name: str, cells: list[str]):
    """Open a notebook, run its first cell and wait for the graph's first layout: the widget."""
    lab.open_notebook(name, cells)
    lab.run_cell(0)
    lab.wait_cell(0)
    w = widget(lab, 0)
    w.wait_for(state="visible")
    lab.page.wait_for_function(
        "(el) => Number(el.dataset.layouts || 0) >= 1", arg=w.element_handle()
    )
    return w


def layouts(lab: Lab, i: int) -> int:
    return int(widget(lab, i).get_attribute("data-layouts") or 0)


def wait_layout_after(lab: Lab, i: int, before: int) -> None:
    lab.page.wait_for_function(
        "([el, n]) => Number(el.dataset.layouts || 0) > n",
        arg=[widget(lab, i).element_handle(), before],
        timeout=30_000,
    )


def visible(lab: Lab, i: int) -> int:
    return int(widget(lab, i).get_attribute("data-visible"))


def module(lab: Lab, i: int, path: str):
    return widget(lab, i).locator(f'.nbviz-graph__node--module[data-path="{path}"]').first


def click(lab: Lab, locator, centre: bool = False) -> None:
    """A real mouse click, with the target scrolled to the middle of the window
    (JupyterLab's floating cell toolbar covers the top of the active cell)."""
    locator.evaluate("(e) => e.scrollIntoView({block: 'center', inline: 'center'})")
    box = locator.bounding_box()
    if centre:
        lab.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    else:
        lab.page.mouse.click(
            box["x"] + min(40, box["width"] / 2), box["y"] + min(12, box["height"] / 2)
        )


def screenshots(lab: Lab, i: int, name: str) -> None:
    lab.page.mouse.move(0, 0)
    shots = {"light": lab.screenshot(widget(lab, i), f"{name}-light")}
    lab.set_theme("dark")
    lab.page.wait_for_timeout(300)  # a frame for the redraw in the new theme
    shots["dark"] = lab.screenshot(widget(lab, i), f"{name}-dark")
    lab.set_theme("light")
    if os.environ.get("NBVIZ_UPDATE_DOCS"):
        for theme, path in shots.items():
            shutil.copy(path, DOCS / f"{name}-{theme}.png")


def test_resnet_graph_expand_search_details_and_live_overlay(lab: Lab):
    dialogs = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    show_first(lab, "graph.ipynb", [RESNET, TRAIN])
    assert widget(lab, 0).locator(".nbviz-graph__title").inner_text() == "ResNet-18-style"
    collapsed = visible(lab, 0)

    # the hostile module name is text, never markup
    evil = module(lab, 0, EVIL)
    assert EVIL in evil.text_content()
    assert widget(lab, 0).locator("img").count() == 0

    # expand the body (while training runs: everything below happens with the kernel busy)
    lab.run_cell(1)
    lab.start_counting_kernel_messages()
    n = layouts(lab, 0)
    click(lab, module(lab, 0, "body"))
    wait_layout_after(lab, 0, n)
    expanded = visible(lab, 0)
    assert expanded > collapsed
    assert "nbviz-graph__node--expanded" in module(lab, 0, "body").get_attribute("class")
    assert module(lab, 0, "body.layer1").is_visible()

    # collapse it again from its header
    n = layouts(lab, 0)
    click(lab, module(lab, 0, "body").locator('[data-action="collapse"]').first)
    wait_layout_after(lab, 0, n)
    assert visible(lab, 0) == collapsed

    # search expands down to the matches and highlights them
    n = layouts(lab, 0)
    search = widget(lab, 0).locator(".nbviz-graph__search")
    search.fill("downsample")
    search.press("Enter")
    wait_layout_after(lab, 0, n)
    matches = widget(lab, 0).locator(".nbviz-graph__node--match")
    # layer2-4 each downsample once: a module matches where the match begins, so the conv
    # and the norm inside each (whose paths hold "downsample" too) are not hits of their own
    assert matches.count() == 3
    assert int(widget(lab, 0).get_attribute("data-matches")) == 3
    assert "3 matches" in widget(lab, 0).locator(".nbviz-graph__matches").inner_text()
    assert sorted(m.get_attribute("data-path") for m in matches.all()) == [
        f"body.layer{k}.0.downsample" for k in (2, 3, 4)
    ]
    assert module(lab, 0, "body.layer3.0.downsample").is_visible()

    # the details panel of a convolution: repr, parameters, histogram
    n = layouts(lab, 0)
    click(lab, module(lab, 0, "body.layer2.0.downsample"))  # open the match
    wait_layout_after(lab, 0, n)
    conv = module(lab, 0, "body.layer2.0.downsample.0")
    click(lab, conv.locator('[data-action="info"]').first)
    details = widget(lab, 0).locator(".nbviz-graph__details")
    details.wait_for(state="visible")
    text = details.inner_text()
    assert "Conv2d(" in text and "weight" in text
    assert details.locator(".nbviz-graph__hist rect").count() >= 10
    lab.screenshot(details, "graph-details")

    # the overlay colours module boxes live, while the loop runs
    lab.page.wait_for_function(
        "(el) => el.querySelectorAll('.nbviz-graph__node--valued').length > 0",
        arg=widget(lab, 0).element_handle(),
        timeout=60_000,
    )
    label = widget(lab, 0).locator(".nbviz-graph__legend-label")
    first = label.inner_text()
    legend_is = "([el, f]) => f(el.querySelector('.nbviz-graph__legend-label')?.textContent || '')"
    lab.page.wait_for_function(
        legend_is.replace("f(", "((t) => t !== " + repr(first) + ")("),
        arg=[widget(lab, 0).element_handle(), None],
        timeout=30_000,
    )
    assert "grad norm, step" in label.inner_text()
    assert lab.cell_running(1), "the loop ended before the interactions: make it longer"
    assert lab.kernel_messages_sent("comm_msg") == 0  # all of it in the browser alone

    (Path(lab.root_dir) / "stop-graph").write_text("")
    lab.wait_cell(1, timeout=120)
    last_step = int(lab.python("print(step)"))
    lab.page.wait_for_function(
        "([el, t]) => (el.querySelector('.nbviz-graph__legend-label')?.textContent || '').endsWith(t)",
        arg=[widget(lab, 0).element_handle(), f"step {last_step}"],
    )  # the end-of-cell flush shows the final values

    # export gives a standalone SVG with the class names as text
    svg = widget(lab, 0).evaluate("(el) => el.nbvizExportSvg()")
    assert svg.startswith("<svg") and "&lt;img src=x" in svg and "var(--" not in svg
    details.locator(".nbviz-graph__close").click()

    # back to an overview for the pictures: clear the search, collapse, open the body, fit
    n = layouts(lab, 0)
    search.fill("")
    search.press("Escape")
    widget(lab, 0).locator("button", has_text="collapse all").click()
    wait_layout_after(lab, 0, n)
    n = layouts(lab, 0)
    click(lab, module(lab, 0, "body"))
    wait_layout_after(lab, 0, n)
    widget(lab, 0).locator("button", has_text="fit").click()
    assert widget(lab, 0).locator(".nbviz-graph__node--valued").count() == 6
    screenshots(lab, 0, "graph-resnet")
    assert dialogs == []


def test_gpt_graph_folds_twelve_blocks_and_expands_fully(lab: Lab):
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    w = show_first(lab, "gpt.ipynb", [GPT])
    first_paint = float(w.get_attribute("data-layout-ms"))

    # a plain wheel scrolls the notebook; Ctrl + wheel zooms the graph
    svg = w.locator("svg.nbviz-graph__svg").first
    svg.evaluate("(e) => e.scrollIntoView({block: 'center'})")
    box = svg.bounding_box()
    lab.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    zoom = w.get_attribute("data-zoom")
    lab.page.mouse.wheel(0, -300)
    lab.page.wait_for_timeout(200)
    assert w.get_attribute("data-zoom") == zoom
    lab.page.keyboard.down("Control")
    lab.page.mouse.wheel(0, -300)
    lab.page.keyboard.up("Control")
    lab.page.wait_for_function(
        "([el, z]) => el.dataset.zoom !== z", arg=[w.element_handle(), zoom], timeout=10_000
    )
    w.locator("button", has_text="fit").click()

    fold = w.locator(".nbviz-graph__node--folded")
    assert fold.count() == 1
    assert fold.first.get_attribute("data-members") == "12"
    assert "×12" in fold.first.text_content()
    screenshots(lab, 0, "graph-gpt")

    n = layouts(lab, 0)
    click(lab, fold.first.locator('[data-action="unfold"]').first, centre=True)
    wait_layout_after(lab, 0, n)
    assert w.locator(".nbviz-graph__node--folded").count() == 0
    blocks = [module(lab, 0, f"transformer.h.{k}") for k in range(12)]
    assert all(b.count() == 1 for b in blocks)
    expand_ms = float(w.get_attribute("data-layout-ms"))

    # everything, to the leaves
    n = layouts(lab, 0)
    select = w.locator(".nbviz-graph__depth")
    select.select_option(index=select.locator("option").count() - 1)
    wait_layout_after(lab, 0, n)
    full_ms = float(w.get_attribute("data-layout-ms"))
    assert visible(lab, 0) > 300

    # "fit": the whole graph in view, its height too (a tall graph no longer fits by width)
    w.locator("button", has_text="fit").click()
    inside = w.evaluate(
        """(el) => {
            const v = el.querySelector('.nbviz-graph__viewport').getBoundingClientRect();
            const g = el.querySelector('.nbviz-graph__scene').getBoundingClientRect();
            return [g.top >= v.top - 1, g.bottom <= v.bottom + 1, g.left >= v.left - 1,
                    g.right <= v.right + 1, g.height > 0.5 * v.height || g.width > 0.5 * v.width];
        }"""
    )
    assert all(inside), inside
    print(
        f"GPT-style 12 layers: first paint {first_paint:.0f} ms, unfold {expand_ms:.0f} ms, "
        f"fully expanded ({visible(lab, 0)} boxes) {full_ms:.0f} ms"
    )


def test_failed_forward_shows_where_it_failed(lab: Lab):
    cell = """
import torch, nbviz
from tests.models import broken
g = nbviz.ModelGraph(broken(), torch.randn(2, 8))
g
"""
    w = show_first(lab, "broken.ipynb", [cell])
    banner = w.locator(".nbviz-graph__banner")
    assert "forward failed" in banner.inner_text()
    assert w.locator(".nbviz-graph__node--error").count() >= 1
    error = lab.python("print(g.traced.error['type'])").strip()
    assert error in banner.inner_text()


def test_search_finds_functional_ops_and_the_repr_wraps_between_words(lab: Lab):
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    w = show_first(lab, "functional.ipynb", [FUNCTIONAL])

    # "relu" finds the functional calls on screen (F.relu, torch.relu) and the ReLU module,
    # opening the stem to show it; the F.relu inside that module is its body: not a match
    n = layouts(lab, 0)
    search = w.locator(".nbviz-graph__search")
    search.fill("relu")
    search.press("Enter")
    wait_layout_after(lab, 0, n)
    ops = w.locator('.nbviz-graph__node--match[data-kind="op"]')
    assert ops.count() == 2
    tips = sorted(ops.nth(k).locator("title").first.text_content() for k in range(2))
    assert tips == ["relu (F.relu)", "relu (torch.relu)"]
    assert [m.get_attribute("data-path") for m in w.locator(
        '.nbviz-graph__node--match[data-kind="module"]').all()] == ["stem.2"]  # fmt: skip
    assert "3 matches" in w.locator(".nbviz-graph__matches").inner_text()
    w.locator("button", has_text="fit").click()
    lab.page.mouse.move(0, 0)
    shot = lab.screenshot(w, "graph-search-functional")

    # open every module to the leaves: ReLU's own F.relu shows now, and matches
    n = layouts(lab, 0)
    select = w.locator(".nbviz-graph__depth")
    select.select_option(index=select.locator("option").count() - 1)
    wait_layout_after(lab, 0, n)
    assert w.locator('.nbviz-graph__node--match[data-kind="op"]').count() == 3
    assert "4 matches" in w.locator(".nbviz-graph__matches").inner_text()

    # the stem's repr wraps between arguments, never inside a word, in both themes
    click(lab, module(lab, 0, "stem").locator('[data-action="info"]').first)
    details = w.locator(".nbviz-graph__details")
    details.wait_for(state="visible")
    pre = details.locator(".nbviz-graph__repr")
    assert "track_running_stats=True" in pre.inner_text()
    shots = {}
    for theme in ("light", "dark"):
        lab.set_theme(theme)
        lab.page.wait_for_timeout(300)
        assert pre.evaluate(BROKEN_WORDS) == []
        rows = pre.evaluate(REPR_ROWS)
        wrapped = [r for r in rows if r[0] > 1]
        assert wrapped, f"nothing wrapped: the test needs a longer repr ({rows})"
        # a continuation hangs right of where its line's text starts
        assert all(later > first + 1 for _, first, later in wrapped), rows
        assert pre.evaluate("(e) => getComputedStyle(e).borderTopStyle") == "solid"
        shots[theme] = lab.screenshot(details, f"graph-repr-{theme}")
    lab.set_theme("light")
    print(f"screenshots: {shot}, {shots['light']}, {shots['dark']}")


def test_keyboard_moves_opens_and_closes_boxes(lab: Lab):
    """One tab stop in the graph; arrows move in execution order, Enter unfolds repeats and
    opens a module, Escape closes it; every box has an accessible name, the focused one a
    visible ring; none of it reaches JupyterLab's shortcuts or the kernel."""
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    w = show_first(lab, "keys.ipynb", [GPT])
    lab.start_counting_kernel_messages()
    stops = w.locator('g.nbviz-graph__node[tabindex="0"]')
    assert stops.count() == 1
    names = w.locator("g.nbviz-graph__node").evaluate_all(
        "(gs) => gs.map((g) => g.getAttribute('aria-label'))"
    )
    assert names and all(names), names
    stops.first.focus()
    lab.page.keyboard.press("Tab")  # (Tab leaves the graph: one stop) ...
    lab.page.keyboard.press("Shift+Tab")  # ... and comes back to it
    focused = "() => document.activeElement?.closest?.('g.nbviz-graph__node')?.dataset.id ?? null"
    first = lab.page.evaluate(focused)
    assert first is not None

    def press_until(key: str, predicate: str, most: int = 40) -> None:
        for _ in range(most):
            if lab.page.evaluate(
                f"() => {{ const g = document.activeElement; return !!g && ({predicate}); }}"
            ):
                return
            lab.page.keyboard.press(key)
        raise AssertionError(f"{key} x{most} never reached {predicate}")

    lab.page.keyboard.press("ArrowDown")
    assert lab.page.evaluate(focused) not in (None, first)  # moved on
    ring = lab.page.evaluate(
        "() => getComputedStyle(document.activeElement.querySelector("
        "'.nbviz-graph__box, .nbviz-graph__container')).strokeDasharray"
    )
    assert ring not in ("", "none"), ring  # the focus ring shows

    # Enter on the folded x12 box unfolds it; the keyboard stays in the graph
    press_until("ArrowDown", "g.dataset.kind === 'fold'")
    n = layouts(lab, 0)
    lab.page.keyboard.press("Enter")
    wait_layout_after(lab, 0, n)
    assert w.locator(".nbviz-graph__node--folded").count() == 0
    assert lab.page.evaluate(focused) is not None

    # Escape closes an open block (the unfolded blocks show open at this depth), Enter
    # opens it again; aria-expanded says which, and the keyboard stays on the block
    press_until("ArrowDown", "g.dataset.path === 'transformer.h.3'")
    block_id = lab.page.evaluate(focused)
    expanded = "() => document.activeElement.getAttribute('aria-expanded')"
    assert lab.page.evaluate(expanded) == "true"
    for key, state in (("Escape", "false"), ("Enter", "true")):
        n = layouts(lab, 0)
        lab.page.keyboard.press(key)
        wait_layout_after(lab, 0, n)
        assert module(lab, 0, "transformer.h.3").get_attribute("aria-expanded") == state, key
        assert lab.page.evaluate(focused) == block_id, key
        assert lab.page.evaluate(expanded) == state, key
    # Escape on a box inside the open block closes the block, and the keyboard goes to it
    lab.page.keyboard.press("ArrowDown")
    inner = lab.page.evaluate(focused)
    assert inner != block_id
    n = layouts(lab, 0)
    lab.page.keyboard.press("Escape")
    wait_layout_after(lab, 0, n)
    assert lab.page.evaluate(focused) == block_id
    assert lab.page.evaluate(expanded) == "false"
    # JupyterLab did not take the keys: its notebook stayed in command mode, cell unchanged
    assert lab.page.evaluate("() => document.body.dataset.jpMode ?? 'command'") != "edit"
    # nor sees any: a key the graph does not use stops there too (JupyterLab holds each
    # keydown it sees, and its target, a box a later drawing replaces, with it)
    lab.page.evaluate(
        "() => { window.__keysSeen = 0;"
        " document.addEventListener('keydown', () => window.__keysSeen++); }"
    )
    for key in ("x", "Shift", "Control"):
        lab.page.keyboard.press(key)
    assert lab.page.evaluate(focused) == block_id
    assert lab.page.evaluate("() => window.__keysSeen") == 0
    assert lab.kernel_messages_sent("comm_msg") == 0
    lab.screenshot(w, "graph-keyboard")

    # export: the PNG and the SVG download, named after the title
    for button, suffix, magic in (
        ("export PNG", ".png", b"\x89PNG"),
        ("export SVG", ".svg", b"<svg"),
    ):
        with lab.page.expect_download() as got:
            w.locator("button", has_text=button).click()
        assert got.value.suggested_filename == f"GPT-style_12_layers{suffix}"
        assert Path(got.value.path()).read_bytes().startswith(magic), button


BIG_STACK = """
import torch, nbviz
torch.set_num_threads(1)

class Block(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d)
        self.up = torch.nn.Linear(d, 2 * d)
        self.act = torch.nn.GELU()
        self.down = torch.nn.Linear(2 * d, d)

    def forward(self, x, pos):
        return x + self.down(self.act(self.up(self.norm(x) * pos)))

class Stack(torch.nn.Module):
    def __init__(self, n, d):
        super().__init__()
        self.pos = torch.nn.Parameter(torch.ones(d))
        self.blocks = torch.nn.ModuleList(Block(d) for _ in range(n))
        self.head = torch.nn.Linear(d, 4)

    def forward(self, x):
        pos = torch.cos(self.pos)
        for b in self.blocks:
            x = b(x, pos)
        return self.head(x)

big = nbviz.ModelGraph(Stack(200, 8), torch.randn(2, 8), depth=1)
big.overlay({f"blocks.{i}.down": float(i) for i in range(200)}, label="block index")
big
"""

# The exported SVG, put in the page: every box drawn with its label, every edge ending at its boxes.
COMPLETE = """(el) => {
    const host = document.createElement('div');
    host.style.cssText = 'position: absolute; left: -100000px; top: 0';
    const doc = new DOMParser().parseFromString(el.nbvizExportSvg(), 'image/svg+xml');
    host.appendChild(document.importNode(doc.documentElement, true));
    document.body.appendChild(host);
    const scene = host.querySelector('svg');
    const groups = [...scene.querySelectorAll('g[data-id]')];
    const at = new Map();
    const bad = [];
    for (const g of groups) {
        const m = /translate\\(([-\\d.]+),([-\\d.]+)\\)/.exec(g.getAttribute('transform') || '');
        const box = g.querySelector(':scope > .nbviz-graph__box, :scope > rect, :scope > path');
        const text = g.querySelector('text');
        if (!m || !box || !text || !text.textContent) { bad.push(g.dataset.id); continue; }
        const b = box.getBBox();
        at.set(g.dataset.id, {x: +m[1] + b.x, y: +m[2] + b.y, w: b.width, h: b.height});
    }
    const near = (p, r) => r && p.x >= r.x - 2 && p.x <= r.x + r.w + 2 && p.y >= r.y - 2 && p.y <= r.y + r.h + 2;
    const loose = [];
    const edges = [...scene.querySelectorAll('path[data-source]')];
    for (const e of edges) {
        const a = e.getPointAtLength(0);
        const b = e.getPointAtLength(e.getTotalLength());
        if (!near(a, at.get(e.dataset.source)) || !near(b, at.get(e.dataset.target))) loose.push(e.dataset.source + '>' + e.dataset.target);
    }
    host.remove();
    return {groups: groups.length, bad, edges: edges.length, loose: loose.slice(0, 5), looseCount: loose.length};
}"""


def test_big_stack_unfolds_complete_and_interactive_while_kernel_busy(lab: Lab):
    """Thousands of boxes: repeated blocks laid out once (in a web worker), every box drawn
    with its label, every edge ending at its boxes, pan and export working, all while the
    kernel runs another cell."""
    busy = 'import os, time\nwhile not os.path.exists("stop-big"):\n    time.sleep(0.05)'
    w = show_first(lab, "big.ipynb", [BIG_STACK, busy])
    assert w.locator(".nbviz-graph__node--folded").count() == 1
    lab.run_cell(1)  # the kernel is busy from here on
    select = w.locator(".nbviz-graph__depth")
    n = layouts(lab, 0)
    select.select_option(index=select.locator("option").count() - 1)
    wait_layout_after(lab, 0, n)
    n = layouts(lab, 0)
    w.locator("input.nbviz-graph__fold-all").uncheck()
    wait_layout_after(lab, 0, n)
    assert lab.cell_running(1)
    boxes = visible(lab, 0)
    assert boxes > 2000, boxes
    assert w.get_attribute("data-elk") == "worker"
    assert int(w.get_attribute("data-blocks")) >= 1
    lab.screenshot(w, "graph-big-stack-unfolded")
    # only what is near the viewport is drawn
    drawn = w.evaluate(
        "(el) => el.querySelectorAll('.nbviz-graph__scene g.nbviz-graph__node').length"
    )
    assert 0 < drawn < boxes, drawn
    assert int(w.get_attribute("data-culled") or 0) > 0
    # search, the overlay and details at that size: the match far down the stack is shown
    # (drawn when it comes into view), highlighted and coloured; its details open
    search = w.locator(".nbviz-graph__search")
    search.fill("blocks.150.down")
    search.press("Enter")
    match = w.locator('.nbviz-graph__node--match[data-path="blocks.150.down"]')
    match.wait_for(state="visible")
    assert "1 match" in w.locator(".nbviz-graph__matches").inner_text()
    assert float(match.get_attribute("data-value")) == 150.0
    fill = match.evaluate(
        "(g) => getComputedStyle(g.querySelector(':scope > .nbviz-graph__box,"
        " :scope > .nbviz-graph__header > .nbviz-graph__header-band')).fill"
    )
    assert fill.startswith("rgb"), fill  # a viridis colour (an open box: its header band)
    click(lab, match.locator('[data-action="info"]').first)
    details = w.locator(".nbviz-graph__details")
    details.wait_for(state="visible")
    assert "blocks.150.down" in details.inner_text() and "Linear(" in details.inner_text()
    details.locator(".nbviz-graph__close").click()
    search.press("Escape")
    assert lab.cell_running(1)
    # one PNG of the whole would be illegible (over ~10^8 pixels): "export PNG" saves the
    # part in view, as drawn, at 2x, and says so
    with lab.page.expect_download() as got:
        w.locator("button", has_text="export PNG").click()
    png = Path(got.value.path()).read_bytes()
    assert png.startswith(b"\x89PNG") and w.get_attribute("data-png-extent") == "view"
    k = float(w.get_attribute("data-zoom"))
    port = w.locator(".nbviz-graph__viewport").bounding_box()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width <= 2 * (port["width"] / k + 32) + 2, (width, port, k)
    assert height <= 2 * (port["height"] / k + 32 + 28 + 44) + 2, (height, port, k)
    note = w.locator(".nbviz-graph__progress")
    assert note.is_visible() and "PNG of the part in view" in note.inner_text()
    # "fit" shows the whole graph without text, as a sketch of a few paths
    w.locator("button", has_text="fit").click()
    assert "nbviz-graph--far" in (w.get_attribute("class") or "")
    # (one path per look: the overlay's colours make about 200 here, for 2,000+ boxes)
    assert 0 < w.locator(".nbviz-graph__sketch path").count() < boxes / 4
    lab.screenshot(w, "graph-big-stack-far")
    # the export button first draws, in steps, what was never drawn, saying how far it is
    w.evaluate(
        """(el) => { const p = el.querySelector('.nbviz-graph__progress'); window.__progress = [];
        new MutationObserver(() => { if (!p.hidden) window.__progress.push(p.textContent); })
          .observe(p, {attributes: true, childList: true, characterData: true, subtree: true}); }"""
    )
    with lab.page.expect_download() as got:
        w.locator("button", has_text="export SVG").click()
    assert Path(got.value.path()).read_bytes().startswith(b"<svg")
    progress = lab.page.evaluate("() => window.__progress")
    assert any(t.startswith("exporting") for t in progress), progress
    assert w.locator(".nbviz-graph__progress").is_hidden()
    # export has every box with its label and every edge ending at its boxes, none hidden
    report = w.evaluate(COMPLETE)
    assert report["groups"] == boxes and report["bad"] == [], report
    assert report["edges"] > 1500 and report["looseCount"] == 0, report
    svg = w.evaluate("(el) => el.nbvizExportSvg()")
    assert svg.count('class="nbviz-graph__node') == 0  # classes are inlined away
    assert "visibility: hidden" not in svg and "visibility:hidden" not in svg
    assert "display:none" not in svg.replace(" ", "")
    assert "nbviz-graph--far" in (w.get_attribute("class") or "")  # and the view is as it was
    # collapse one block again, still with the kernel busy
    n = layouts(lab, 0)
    click(lab, w.locator(".nbviz-graph__button", has_text="collapse all"))
    wait_layout_after(lab, 0, n)
    assert w.locator(".nbviz-graph__node--folded").count() == 1
    assert lab.cell_running(1)
    (Path(lab.root_dir) / "stop-big").write_text("")
    lab.wait_cell(1)
    screenshots(lab, 0, "graph-big-stack")
