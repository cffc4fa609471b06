"""The result schema and the one ``--set`` rule (:mod:`nanonb.bench.schema`)."""

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from nanonb.bench.schema import OptionError, apply_options, json_default, make_result, parse_options


def test_make_result_validates_schema():
    row = {"split": "s", "method": "m", "kind": "meta", "k": 5, "metric": "mae", "mean": 1.0, "sem": 0.1,
           "median": 1.0, "n_tasks": 3}
    assert make_result("p", [row], 1.0, {})["results"][0] == row
    with pytest.raises(ValueError, match="kind"):
        make_result("p", [row | {"kind": "other"}], 1.0, {})
    with pytest.raises(ValueError, match="lower case"):
        make_result("p", [row | {"metric": "MAE"}], 1.0, {})
    with pytest.raises(ValueError, match="lacks"):
        make_result("p", [{"split": "s"}], 1.0, {})


@dataclass
class _Spec:
    name: str
    steps: int = 1


@dataclass
class _Cfg:
    shots: tuple = (5, 10)
    iterations: dict = field(default_factory=lambda: {"a": 1, "b": 2})
    meta: list = field(default_factory=lambda: [_Spec("x")])
    seed: int = 0


def test_set_rule_unknown_key_lists_valid_keys_and_reserved_keys_name_their_flag():
    with pytest.raises(OptionError, match=r"unknown option\(s\) \['shot'\] for _Cfg; valid keys: "
                                          r"\['iterations', 'meta', 'shots'\]"):
        apply_options(_Cfg(), {"shot": [1]}, reserved={"seed": "--seed"})
    with pytest.raises(OptionError, match="--seed"):
        apply_options(_Cfg(), {"seed": 3}, reserved={"seed": "--seed"})
    cfg = apply_options(_Cfg(), {})
    assert cfg == _Cfg()


def test_set_rule_coerces_tuples_merges_dicts_and_builds_dataclasses():
    cfg = apply_options(_Cfg(), {"shots": [1, 5], "iterations": {"b": 7}, "meta": [{"name": "m", "steps": 3}]})
    assert cfg.shots == (1, 5)
    assert cfg.iterations == {"a": 1, "b": 7}
    assert cfg.meta == [_Spec("m", 3)]


def test_parse_options_reads_json_or_strings():
    assert parse_options(["a=1", "b=[5, 10]", "c=LiPF6", "d=null", "e={\"x\": 1}"]) == {
        "a": 1, "b": [5, 10], "c": "LiPF6", "d": None, "e": {"x": 1}}
    with pytest.raises(OptionError, match="KEY=VALUE"):
        parse_options(["novalue"])
    assert json.dumps({"k": np.int64(3), "x": np.float32(0.5), "t": (1, 2)}, default=json_default) == \
        '{"k": 3, "x": 0.5, "t": [1, 2]}'
