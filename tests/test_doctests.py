"""Every docstring example in nbviz runs (examples that need a displayed widget say
``# doctest: +SKIP``)."""

import doctest
import importlib
import pkgutil

import pytest

import nbviz

MODULES = sorted(m.name for m in pkgutil.walk_packages(nbviz.__path__, "nbviz."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_package_has_examples():
    attempted = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert attempted > 50
