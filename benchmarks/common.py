"""What the benchmark scripts share: where the repository, its tests' generators and the shared data are."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # real speech read in place (see its README); never copied


def test_helpers() -> None:
    """Make the tests' signal and corpus generators (``tests/signals.py``, ``tests/bad_inputs.py``) importable."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
