"""The shared tabular builder of the CALiSol-23 / LNPDB loaders (:mod:`nanonb.data._tables`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nanonb.data._fetch import DataQualityReport
from nanonb.data._tables import keep_min_points, standardize, tabular_taskset, top_counts


def test_standardize_leaves_unit_and_constant_columns_and_inverts():
    x = np.array([[0.0, 10.0, 5.0], [1.0, 30.0, 5.0], [1.0, 20.0, 5.0]])
    z, mean, std = standardize(x)
    assert np.allclose(z[:, 0], x[:, 0]) and np.allclose(z[:, 2], x[:, 2])  # flag and constant kept
    assert z[:, 1].mean() == pytest.approx(0.0) and z[:, 1].std() == pytest.approx(1.0)
    assert np.allclose(z * std + mean, x)


def test_top_counts_words_a_report_detail():
    assert top_counts(pd.Series([], dtype=object)) == ""
    assert top_counts(pd.Series(list("aaabbc")), n=2) == "a: 3, b: 2, ... (1 more)"


def test_keep_min_points_and_tabular_taskset():
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 2 + ["c"] * 3, "y": np.arange(9.0), "m": list("xyzxyzxyz")})
    rep = DataQualityReport("toy", n_raw=9, n_clean=9)
    sub, keep = keep_min_points(df, "g", 3, rep, lambda small, kept: f"{len(small)} small", "group", "rows")
    assert keep == ["a", "c"] and len(sub) == 7 and "below_min_points_3" in rep
    with pytest.raises(ValueError, match="No group has >= 9 rows"):
        keep_min_points(df, "g", 9, rep, lambda *_: "", "group", "rows")
    x = np.column_stack([sub["y"].to_numpy(), np.ones(len(sub))])
    ts = tabular_taskset(sub, "g", keep, x, "y", ["m"], lambda name, rows: (name, "grp"), name="toy",
                         feature_names=["f0", "f1"], report=rep, standardize_inputs=True, target_name="y",
                         target_unit="u", t0=0.0)
    assert ts.names == ["a", "c"] and ts["c"].groups == ("c", "grp")
    assert np.allclose(ts["a"].inputs[:, 0] * ts.feature_std[0] + ts.feature_mean[0], [0, 1, 2, 3], atol=1e-5)
    assert ts.quality_report is rep and ts["a"].inputs.dtype == np.float32
    assert ts["a"].group_keys == {}
    named = tabular_taskset(sub, "g", keep, x, "y", ["m"], lambda name, rows: (name, "grp"), name="toy",
                            feature_names=["f0", "f1"], report=rep, standardize_inputs=True, target_name="y",
                            target_unit="u", t0=0.0, group_keys=lambda name, rows: {"g": (name,)})
    assert named["c"].group_keys == {"g": ("c",)} and len(named.group_kfold(2, key="g")) == 2
