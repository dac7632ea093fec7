"""Where the excerpts of the real datasets' annotation files are: `shared/fixtures/real` beside
the checkout (as CI lays it out), else the workplace's copy. Tests that read them skip when
neither is there."""

from __future__ import annotations

from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real",
    Path("/work/shared/fixtures/real"),
)
REAL_FIXTURES = next((path for path in _CANDIDATES if path.is_dir()), _CANDIDATES[0])
