"""The widget contract of CONTRIBUTING.md, checked: one name per capability for its
package, its bundle and its CSS root class; every js/src/<name>.js is a bundle that some
widget loads, and the build lists exactly those."""

import json
from pathlib import Path

import nbviz
from nbviz._widget import STATIC, LiveWidget

JS_SRC = Path(__file__).resolve().parents[1] / "js" / "src"


def widget_classes() -> list[type]:
    found, todo = [], list(LiveWidget.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("nbviz.") and cls.__dict__.get("_bundle"):
            found.append(cls)
    return found


def test_every_bundle_belongs_to_one_widget_named_like_its_package():
    classes = widget_classes()
    bundles = {cls._bundle: cls for cls in classes}
    assert len(bundles) == len(classes)  # one widget per bundle
    sources = sorted(p.stem for p in JS_SRC.glob("*.js"))
    assert sorted(bundles) == sources
    assert json.loads((STATIC / "bundles.json").read_text()) == sources
    for name, cls in bundles.items():
        assert cls.__module__ == f"nbviz.{name}.widget", cls
        assert f'class: "nbviz nbviz-{name}"' in (JS_SRC / f"{name}.js").read_text(), name
        assert (JS_SRC / f"{name}.css").exists(), name


def test_every_widget_is_exported():
    exported = {getattr(nbviz, n) for n in nbviz.__all__}
    for cls in widget_classes():
        # A composite shows some views: Monitor holds MonitorPanels, and is what nbviz exports.
        shown_by = [c for c in exported if isinstance(c, type) and c.__module__ == cls.__module__]
        assert shown_by, f"{cls.__name__} is not reachable from nbviz.__all__"


def state_typedef(js: str) -> set[str]:
    """The property names of the ``@typedef {Object} <Name>State`` block that a widget's
    ``render`` types its model with (``AnyModel<Name>State``)."""
    import re

    state = re.search(r"AnyModel<(\w+)>", js).group(1)
    block = js[js.index(f"@typedef {{Object}} {state}") :]
    block = block[: block.index("*/")]
    cut = re.search(r"\n \* @typedef", block[1:])  # the next typedef, if any, ends it
    block = block[: cut.start() + 1] if cut else block
    return set(re.findall(r"@property \{.*?\} (\w+)", block))


def test_each_frontend_types_exactly_the_traits_python_syncs():
    """tsc makes reading a trait outside the state typedef an error (anywidget's types);
    this keeps the typedef equal to the traits the Python widget syncs."""
    import anywidget

    base = set(anywidget.AnyWidget.class_traits(sync=True))
    for cls in widget_classes():
        synced = set(cls.class_traits(sync=True)) - base
        typed = state_typedef((JS_SRC / f"{cls._bundle}.js").read_text())
        assert typed == synced, (cls._bundle, typed ^ synced)
