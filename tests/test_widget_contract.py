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
        # A composite shows some views: Monitor holds MonitorView, and is what nbviz exports.
        shown_by = [c for c in exported if isinstance(c, type) and c.__module__ == cls.__module__]
        assert shown_by, f"{cls.__name__} is not reachable from nbviz.__all__"
