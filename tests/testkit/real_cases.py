"""The real CT cases kept in the repository (``data/real``, see its README for sources and licences)."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[2] / "data" / "real"
SIEMENS = REAL_DATA / "siemens-abdomen-ct"
SIEMENS_LIVER = REAL_DATA / "siemens-abdomen-ct-liver.nii.gz"


def require_real_data() -> Path:
    """The real-case folder; a test that needs it fails (never skips) when the repository lacks it."""
    if not SIEMENS.is_dir():
        pytest.fail(f"real CT test data missing at {REAL_DATA}: it ships with the repository (data/real/README.md)")
    return REAL_DATA
