"""Tests of nanonb.active.store: the SQLite campaign log, and a campaign killed mid-round that resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from nanonb.active.store import CampaignStore

ROOT = Path(__file__).resolve().parents[1]

# A toy oracle (a quadratic in 2 descriptors, goal "min") that sleeps per measurement, so a kill lands mid-round.
TOY = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    from nanonb.active.live import run_live_campaign
    from nanonb.active.store import CampaignStore

    class Toy:
        goal, source, unit, name = "min", "toy", "a.u.", "toy"
        def __init__(self, log, sleep_s):
            self.log, self.sleep_s = log, sleep_s
        def config(self):
            return {"oracle": "toy"}
        def initial(self, rng, n):
            return [{"x": [float(v) for v in rng.uniform(-1, 1, 2)]} for _ in range(n)]
        def candidates(self, rng, incumbents, n):
            return self.initial(rng, n)
        def describe(self, designs):
            return np.array([d["x"] for d in designs])
        def measure_batch(self, items):
            for pid, d in items:
                time.sleep(self.sleep_s)
                with open(self.log, "a") as f:      # every call of the "simulator", logged or not
                    f.write(json.dumps(d, sort_keys=True) + "\\n")
                yield pid, float(np.sum(np.square(d["x"])))

    db, log, sleep_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    res = run_live_campaign(Toy(log, sleep_s), "gp", budget=12, n_init=3, batch_size=3, n_candidates=40, seed=5,
                            store=CampaignStore(db), name="toy")
    print(json.dumps(res.values.tolist()))
''')


def test_schema_roundtrip_export_and_checkpoint(tmp_path):
    store = CampaignStore(tmp_path / "c.sqlite")
    cid = store.campaign("demo", {"seed": 0})
    assert store.campaign("demo", {"seed": 0}) == cid
    with pytest.raises(ValueError, match="another config"):
        store.campaign("demo", {"seed": 1})
    ids = store.add_round(cid, 0, [{"candidate": {"x": i}, "acq_value": 0.1 * i, "model_mean": 1.0,
                                    "model_std": 0.5, "descriptors": [i, 2.0]} for i in range(3)])
    store.measure(ids[0], -1.0, source="toy")
    with pytest.raises(sqlite3.IntegrityError):  # measured once, never twice
        store.measure(ids[0], -2.0, source="toy")
    assert [p for p, _ in store.pending(cid)] == ids[1:]
    store.checkpoint(cid, 0, {"kind": "bml"}, {"w": np.arange(3.0)})
    cfg, tensors = store.load_checkpoint(cid, 0)
    assert cfg == {"kind": "bml"} and tensors["w"].tolist() == [0.0, 1.0, 2.0]
    df = store.to_frame(cid)
    assert df["value"].notna().sum() == 1 and df["acq_value"].tolist() == pytest.approx([0.0, 0.1, 0.2])
    csv = store.to_csv(tmp_path / "c.csv")
    assert csv.read_text().count("\n") == 4
    with pytest.raises(TypeError):  # a round is written whole or not at all: the 2nd proposal fails, the 1st is gone
        store.add_round(cid, 1, [{"candidate": {"x": 9}}, {"candidate": {"x": object()}}])
    assert store.n_rounds(cid) == 1 and len(store.to_frame(cid)) == 3


def _run(db, log, sleep_s, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", TOY, str(db), str(log), str(sleep_s)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_mid_round_then_resume_loses_nothing_and_repeats_nothing(tmp_path):
    ref = _run(tmp_path / "ref.sqlite", tmp_path / "ref.log", 0.0)
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    db, log = tmp_path / "c.sqlite", tmp_path / "calls.log"
    proc = _run(db, log, 0.3)
    t0 = time.monotonic()
    n_measured = 0
    while time.monotonic() - t0 < 240:  # kill once round 1 (3 proposals) is partly measured
        time.sleep(0.05)
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                n_measured = con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                continue
            if n_measured == 4:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = CampaignStore(db)
    killed_at = store.to_frame()
    before = killed_at["value"].notna().sum()
    assert 4 <= before < 12 and len(killed_at) > before  # killed mid-round: a proposal was left unmeasured
    measured_before = killed_at.dropna(subset=["value"])[["proposal_id", "value"]].to_numpy()
    store.close()
    res = _run(db, log, 0.0)
    out2, err2 = res.communicate(timeout=300)
    assert res.returncode == 0, err2
    store = CampaignStore(db)
    df = store.to_frame()
    assert len(df) == 12 and df["value"].notna().all()
    # nothing measured was lost: the values logged before the kill are still there, unchanged
    kept = df.set_index("proposal_id").loc[measured_before[:, 0].astype(int), "value"].to_numpy()
    np.testing.assert_array_equal(kept, measured_before[:, 1])
    # nothing measured twice: one measurement per proposal, distinct designs, and the simulator ran once
    # per logged design except at most the one interrupted call
    assert df["candidate"].nunique() == 12
    calls = log.read_text().splitlines()
    assert 12 <= len(calls) <= 13
    # the resumed campaign took the same path as an uninterrupted one
    assert df["value"].tolist() == pytest.approx(__import__("json").loads(out.strip().splitlines()[-1]))
