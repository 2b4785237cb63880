"""Shared helpers for the unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["vectors"]

# The shared test vectors live in ../shared/vectors beside the repository root.
VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def vectors(name: str) -> Any:
    """Load one shared vector file, e.g. ``vectors("id_numbers")``."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
