"""nanonb.sanity.check: the notebooks' claim checks."""

import math

import pytest

from nanonb.sanity import ClaimError, check


def test_passing_checks_print_and_return_the_value(capsys):
    assert check("coverage", 0.89, between=(0.8, 0.97)) == 0.89
    assert check("count", 6, equals=6) == 6
    assert check("names", ["a", "b"], equals=["a", "b"]) == ["a", "b"]
    assert check("gain", 3.0, above=0.0, below=5.0) == 3.0
    out = capsys.readouterr().out
    assert out.count("sanity check ✓") == 4 and "expected between 0.8 and 0.97" in out


@pytest.mark.parametrize("value, kw", [
    (0.6, {"between": (0.8, 0.97)}), (1e-3, {"below": 1e-12}), (-1.0, {"above": 0.0}), (5, {"equals": 6}),
    (["a"], {"equals": ["a", "b"]}), (math.nan, {"below": 1.0}), (math.inf, {"above": 0.0}),
    (1.0, {"below": 1.0}),  # strict
])
def test_failing_checks_raise_with_the_claim_and_the_value(value, kw):
    with pytest.raises(ClaimError, match="sanity check failed: my claim"):
        check("my claim", value, **kw)


def test_claim_error_is_an_assertion_error():
    assert issubclass(ClaimError, AssertionError)


@pytest.mark.parametrize("kw, msg", [({}, "needs a bound"), ({"between": (2, 1)}, "low <= high")])
def test_bad_bounds_are_refused(kw, msg):
    with pytest.raises(ClaimError, match=msg):
        check("x", 1.0, **kw)


def test_non_numbers_are_refused_for_numeric_bounds():
    with pytest.raises(ClaimError, match="is not a number"):
        check("x", "abc", below=1.0)


def test_quiet(capsys):
    check("x", 1.0, below=2.0, quiet=True)
    assert capsys.readouterr().out == ""
