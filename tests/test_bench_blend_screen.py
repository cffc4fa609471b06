"""The blend screen: candidate blends, blend oxidation limits, and the screen on CALiSol + the library."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rdkit")

from nanonb.bench.blend_screen import blend_oxidation, candidate_blends  # noqa: E402


def test_candidate_blends_sum_to_one_and_are_distinct():
    b = candidate_blends(("EC", "PC", "DMC"), step=0.25, max_components=3)
    fr = b[["EC", "PC", "DMC"]].to_numpy()
    np.testing.assert_allclose(fr.sum(1), 1.0)
    assert b["blend"].is_unique and len(np.unique(fr, axis=0)) == len(b)
    # 3 pure + 3 pairs x 3 splits + 1 triple x 3 arrangements of (0.25, 0.25, 0.5)
    assert len(b) == 3 + 9 + 3
    capped = candidate_blends(("EC", "PC", "DMC"), step=0.25, max_fraction={"EC": 0.5})
    assert capped["EC"].max() == 0.5 and len(capped) == len(b) - 1 - 2  # no pure EC, no EC 0.75 + X 0.25


def test_blend_oxidation_is_the_weakest_component():
    ox = pd.DataFrame({"solvent": ["EC", "DME"], "e_ox_mean_v": [9.5, 8.0], "e_ox_std_v": [0.01, 0.3]})
    blends = pd.DataFrame({"EC": [1.0, 0.7, 0.97], "DME": [0.0, 0.3, 0.03]})
    mean, std = blend_oxidation(blends, ox, min_fraction=0.05)
    assert mean[0] == pytest.approx(9.5, abs=0.01) and mean[1] == pytest.approx(8.0, abs=0.03)
    assert mean[2] == pytest.approx(9.5, abs=0.01)        # 3 % DME is below min_fraction
    assert std[1] > std[0]


def test_screen_runs_on_calisol_and_flags_the_front(shared_data_dir):
    from nanonb.bench.blend_screen import conductivity_model, screen_blends
    from nanonb.bench.stability import StabilityConfig
    from nanonb.data.calisol import calisol_taskset
    from nanonb.data.electrolytes_xtb import load_electrolyte_library

    cts = calisol_taskset(data_dir=shared_data_dir)
    model = conductivity_model(cts, n_iterations=5, hidden=(8,))
    cfg = StabilityConfig.quick()
    res = screen_blends(cts, load_electrolyte_library("small"), solvents=("EC", "DMC", "DME"), step=0.5,
                        conductivity_learner=model, stability_cfg=cfg)
    b = res.blends
    assert len(b) == 2 + 3 and res.support_size > 10          # pure EC is left out (MAX_FRACTION)
    assert b["on_mean_front"].any() and set(b["flag"]) <= {"confident", "on the front", "validate experimentally", ""}
    assert ((b["p_front"] >= 0) & (b["p_front"] <= 1)).all()
    assert (b["log10_k_std"] > 0).all() and (b["e_ox_std"] > 0).all()
    assert list(res.solvents["solvent"]) == ["EC", "DMC", "DME"]
