"""Every public class and function of the notebook-facing API documents itself with a runnable Example.

The examples themselves run as doctests in the test command (``pytest --doctest-modules nanonb``); expensive
ones are marked ``# doctest: +SKIP`` in their module.
"""

import inspect

import pytest

import nanonb

PUBLIC = [n for n in nanonb.__all__ if inspect.isclass(getattr(nanonb, n)) or inspect.isfunction(getattr(nanonb, n))]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_api_has_docstring_with_example(name):
    doc = inspect.getdoc(getattr(nanonb, name)) or ""
    assert len(doc) > 40, f"nanonb.{name} has no real docstring"
    assert "Example" in doc and ">>>" in doc, f"nanonb.{name}: add a short Example section with >>> lines"
