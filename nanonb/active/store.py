"""The campaign log: one SQLite file (stdlib ``sqlite3``) recording what was proposed, measured and believed.

Tables (one row per ...):

- ``campaigns``: campaign (``name`` unique, ``config_json``: strategy, seed, budget, oracle, ...);
- ``rounds``: round of a campaign (``n_candidates`` scored, ``started_at``);
- ``proposals``: proposed candidate (``candidate_json``, ``descriptors_json``; the acquisition value
  ``acq_value`` and the model's ``model_mean`` / ``model_std`` at proposal time, target units);
- ``measurements``: measured proposal (``value`` in target units, ``source``: the oracle, e.g. ``"emt"``
  or ``"human"``); the primary key is the proposal, so a proposal is measured at most once;
- ``checkpoints``: the model of a round (``config_json`` + tensors as an ``.npz`` blob written and read
  with ``allow_pickle=False``: no pickle).

Every write is one transaction (``with conn:``): a process killed at any instant leaves either the
whole round's proposals or none, and each measurement either recorded or not. :func:`CampaignStore.pending`
lists proposals without a measurement, which a resumed campaign measures before proposing anything new.

Example
-------
>>> store = CampaignStore(":memory:")
>>> cid = store.campaign("demo", {"seed": 0})
>>> [pid] = store.add_round(cid, 0, [{"candidate": {"x": 1}, "acq_value": 0.5}])
>>> store.measure(pid, -0.1, source="toy"); len(store.pending(cid))
0
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CampaignStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, config_json TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id), round INTEGER NOT NULL, n_candidates INTEGER,
    started_at REAL NOT NULL, PRIMARY KEY (campaign_id, round));
CREATE TABLE IF NOT EXISTS proposals (
    id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL, round INTEGER NOT NULL, slot INTEGER NOT NULL,
    candidate_json TEXT NOT NULL, descriptors_json TEXT, acq_value REAL, model_mean REAL, model_std REAL,
    UNIQUE (campaign_id, round, slot), FOREIGN KEY (campaign_id, round) REFERENCES rounds(campaign_id, round));
CREATE TABLE IF NOT EXISTS measurements (
    proposal_id INTEGER PRIMARY KEY REFERENCES proposals(id), value REAL NOT NULL, source TEXT NOT NULL,
    runtime_s REAL, measured_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id), round INTEGER NOT NULL, config_json TEXT NOT NULL,
    tensors BLOB NOT NULL, PRIMARY KEY (campaign_id, round));
"""


def _npz_bytes(tensors: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v.detach() if hasattr(v, "detach") else v) for k, v in tensors.items()})
    return buf.getvalue()


class CampaignStore:
    """A campaign log in one SQLite file (``":memory:"`` for a throw-away one).

    Example
    -------
    >>> store = CampaignStore("campaign.sqlite")     # doctest: +SKIP
    >>> store.to_frame()                              # one row per proposal  # doctest: +SKIP
    """

    def __init__(self, path: str | Path = ":memory:", timeout_s: float = 30.0):
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, timeout=timeout_s)
        self.conn.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
        with self.conn:
            self.conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close the connection (everything written is already committed)."""
        self.conn.close()

    # ---------------------------------------------------------------- writes (one transaction each)
    def campaign(self, name: str, config: dict) -> int:
        """The id of campaign ``name``, created with ``config`` if new. Resuming with a different
        config is refused (``ValueError``): a log belongs to one campaign design."""
        row = self.conn.execute("SELECT id, config_json FROM campaigns WHERE name = ?", (name,)).fetchone()
        cfg = json.dumps(config, sort_keys=True, default=str)
        if row is not None:
            if row[1] != cfg:
                raise ValueError(f"campaign {name!r} exists in {self.path} with another config:\n{row[1]}\n"
                                 f"not\n{cfg}\nuse another name or another file")
            return int(row[0])
        with self.conn:
            cur = self.conn.execute("INSERT INTO campaigns (name, config_json, created_at) VALUES (?, ?, ?)",
                                    (name, cfg, time.time()))
        return int(cur.lastrowid)

    def add_round(self, campaign_id: int, rnd: int, proposals: list[dict], n_candidates: int | None = None
                  ) -> list[int]:
        """Record round ``rnd`` and its proposals atomically; returns the proposal ids (slot order).

        Each proposal dict has ``candidate`` (JSON-able) and optionally ``descriptors``, ``acq_value``,
        ``model_mean``, ``model_std`` (target units)."""
        with self.conn:
            self.conn.execute("INSERT INTO rounds (campaign_id, round, n_candidates, started_at) VALUES (?,?,?,?)",
                              (campaign_id, rnd, n_candidates, time.time()))
            ids = []
            for slot, p in enumerate(proposals):
                desc = p.get("descriptors")
                cur = self.conn.execute(
                    "INSERT INTO proposals (campaign_id, round, slot, candidate_json, descriptors_json, acq_value,"
                    " model_mean, model_std) VALUES (?,?,?,?,?,?,?,?)",
                    (campaign_id, rnd, slot, json.dumps(p["candidate"], sort_keys=True),
                     None if desc is None else json.dumps([float(v) for v in desc]),
                     *(None if p.get(k) is None else float(p[k]) for k in ("acq_value", "model_mean", "model_std"))))
                ids.append(int(cur.lastrowid))
        return ids

    def measure(self, proposal_id: int, value: float, source: str, runtime_s: float | None = None) -> None:
        """Record the measurement of one proposal (refused if it is already measured: ``sqlite3.IntegrityError``)."""
        if not np.isfinite(value):
            raise ValueError(f"proposal {proposal_id}: measured value {value!r} is not a finite number")
        with self.conn:
            self.conn.execute("INSERT INTO measurements (proposal_id, value, source, runtime_s, measured_at) "
                              "VALUES (?,?,?,?,?)", (proposal_id, float(value), source, runtime_s, time.time()))

    def checkpoint(self, campaign_id: int, rnd: int, config: dict, tensors: dict) -> None:
        """Store the model of round ``rnd``: ``config`` as JSON, ``tensors`` (name -> array) as an npz blob."""
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)",
                              (campaign_id, rnd, json.dumps(config, sort_keys=True, default=str), _npz_bytes(tensors)))

    # ---------------------------------------------------------------- reads
    def load_checkpoint(self, campaign_id: int, rnd: int) -> tuple[dict, dict[str, np.ndarray]]:
        """``(config, tensors)`` of a round's checkpoint (read with ``allow_pickle=False``)."""
        row = self.conn.execute("SELECT config_json, tensors FROM checkpoints WHERE campaign_id=? AND round=?",
                                (campaign_id, rnd)).fetchone()
        if row is None:
            raise KeyError(f"no checkpoint for campaign {campaign_id} round {rnd}")
        with np.load(io.BytesIO(row[1]), allow_pickle=False) as z:
            return json.loads(row[0]), {k: z[k] for k in z.files}

    def n_rounds(self, campaign_id: int) -> int:
        """Rounds recorded so far (the next round's number)."""
        return int(self.conn.execute("SELECT COUNT(*) FROM rounds WHERE campaign_id=?", (campaign_id,)).fetchone()[0])

    def pending(self, campaign_id: int) -> list[tuple[int, dict]]:
        """``(proposal id, candidate)`` of proposals not measured yet, in (round, slot) order."""
        rows = self.conn.execute(
            "SELECT p.id, p.candidate_json FROM proposals p LEFT JOIN measurements m ON m.proposal_id = p.id "
            "WHERE p.campaign_id=? AND m.proposal_id IS NULL ORDER BY p.round, p.slot", (campaign_id,)).fetchall()
        return [(int(i), json.loads(c)) for i, c in rows]

    def to_frame(self, campaign_id: int | None = None) -> pd.DataFrame:
        """One row per proposal (measured or not): campaign, round, slot, candidate, acq_value,
        model_mean, model_std, value, source, measured_at."""
        q = ("SELECT c.name AS campaign, p.campaign_id, p.round, p.slot, p.id AS proposal_id, p.candidate_json AS "
             "candidate, p.descriptors_json AS descriptors, p.acq_value, p.model_mean, p.model_std, m.value, "
             "m.source, m.runtime_s, m.measured_at FROM proposals p JOIN campaigns c ON c.id = p.campaign_id "
             "LEFT JOIN measurements m ON m.proposal_id = p.id")
        args: tuple = ()
        if campaign_id is not None:
            q, args = q + " WHERE p.campaign_id = ?", (campaign_id,)
        return pd.read_sql_query(q + " ORDER BY p.campaign_id, p.round, p.slot", self.conn, params=args)

    def to_csv(self, path: str | Path, campaign_id: int | None = None) -> Path:
        """Write :meth:`to_frame` to ``path`` (CSV) and return the path."""
        path = Path(path)
        self.to_frame(campaign_id).to_csv(path, index=False)
        return path
