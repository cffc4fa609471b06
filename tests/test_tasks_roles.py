"""Tests for nanonb.tasks.roles and nanonb.tasks.frame: roles, units, group keys and the column report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nanonb.tasks import TaskSet
from nanonb.tasks.roles import convert_role, convert_target, is_log10_mS_per_cm


def two_key_frame() -> pd.DataFrame:
    """Six tasks; polymer P/Q/R (two tasks each), salt A..F sorting *before* the polymers' labels."""
    rows = []
    for i, (poly, salt) in enumerate([("P", "A"), ("P", "B"), ("Q", "C"), ("Q", "D"), ("R", "E"), ("R", "F")]):
        for j in range(3):
            rows.append({"t": f"t{i}", "polymer": poly, "salt": salt, "x": float(j), "y": float(i + j)})
    return pd.DataFrame(rows)


def test_group_labels_keep_column_order_and_kfold_uses_the_named_key():
    ts = TaskSet.from_frame(two_key_frame(), "t", ["x"], "y", groups=["polymer", "salt"])
    assert ts["t0"].groups == ("P", "A")                          # not sorted into ("A", "P")
    assert ts["t0"].group_keys == {"polymer": ("P",), "salt": ("A",)}
    for train, test in ts.group_kfold(3, key="polymer"):
        assert not {t.group_keys["polymer"] for t in train} & {t.group_keys["polymer"] for t in test}
        assert len(test) == 2                                      # both tasks of one polymer held out together
    with pytest.raises(ValueError, match="several group keys"):
        ts.group_kfold(3)                                          # two named keys: name one
    with pytest.raises(ValueError, match="no group key 'study'"):
        ts.group_kfold(3, key="study")
    folds = ts.select(ts.names).group_kfold(3, key="salt")          # splits keep the keys
    assert sum(len(te) for _, te in folds) == 6


def test_a_task_with_several_labels_under_a_key_cannot_be_folded_by_it():
    df = two_key_frame()
    df.loc[0, "salt"] = "Z"                                        # task t0 now holds salts A and Z
    ts = TaskSet.from_frame(df, "t", ["x"], "y", groups=["salt"])
    with pytest.raises(ValueError, match="2 labels under 'salt'"):
        ts.group_kfold(2, key="salt")


def test_unit_conversions_and_scale_checks():
    assert convert_role(np.array([-273.15 + 300.0]), "temperature", "degC", "T")[0].tolist() == pytest.approx([300.0])
    assert convert_role(np.array([32.0]), "temperature", "degF", "T")[0].tolist() == pytest.approx([273.15])
    assert convert_role(np.array([500.0]), "concentration", "mmol/kg", "m")[0].tolist() == [0.5]
    with pytest.raises(ValueError, match="look like degrees Celsius.*'degC'"):
        convert_role(np.array([20.0, 60.0]), "temperature", "K", "T")   # °C declared as K
    with pytest.raises(ValueError, match="mmol"):
        convert_role(np.array([500.0, 1000.0]), "concentration", "mol/kg", "m")
    y, unit, _ = convert_target(np.array([10.0]), "mS/cm", "k")
    assert y.tolist() == [1.0] and is_log10_mS_per_cm(unit)
    assert convert_target(np.array([np.log(10.0)]), "ln mS/cm", "k")[0].tolist() == pytest.approx([1.0])
    assert convert_target(np.array([1.0]), "S/m", "k")[0].tolist() == pytest.approx([1.0])  # 1 S/m = 10 mS/cm
    with pytest.raises(ValueError, match="log10 S/cm"):
        convert_target(np.array([-2.0]), "S/cm", "k")             # logs declared linear


def test_nan_in_a_role_column_names_the_column_and_the_task():
    df = two_key_frame().assign(T=300.0)
    df.loc[4, "T"] = np.nan
    with pytest.raises(ValueError, match=r"column 'T'.*\['t1'\]"):
        TaskSet.from_frame(df, "t", ["x"], "y", roles={"temperature": "T"}, units={"temperature": "K"})


def test_role_errors_name_the_fix():
    df = two_key_frame().assign(T=300.0)
    with pytest.raises(ValueError, match="Unknown role"):
        TaskSet.from_frame(df, "t", ["x"], "y", roles={"temp": "T"}, units={"temp": "K"})
    with pytest.raises(ValueError, match="contradicts"):
        TaskSet.from_frame(df, "t", ["x"], "y", target_unit="eV", units={"target": "meV"})
    ts = TaskSet.from_frame(df, "t", None, "y", roles={"temperature": "T"}, units={"temperature": "K"},
                            groups="polymer")
    assert ts.feature_names == ["temperature_K"] and ts.roles == {"temperature": "temperature_K"}
    assert ts.column_report.set_index("column").loc["x", "use"] == "unused"
