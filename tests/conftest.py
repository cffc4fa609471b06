"""Shared pytest fixtures (keep minimal; append fixtures other test files need)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where CI and every developer checkout keep the reference data sets (never committed).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Folder holding the reference data sets: ``$NANONB_DATA_DIR`` if set, else ``<repo>/../shared/data``.

    Skips the test, with the reason, when the folder is absent.
    """
    env = os.environ.get("NANONB_DATA_DIR")
    folder = Path(env).expanduser() if env else SHARED_DATA
    if not folder.is_dir():
        pytest.skip(f"reference data folder {folder} not found: check out shared/ beside the repo "
                    "or set NANONB_DATA_DIR to a folder holding the data files")
    return folder

