"""Open311 GeoReport v2 view of the published catalogue (to be written)."""

from __future__ import annotations

__all__ = ["handlers"]

handlers: list = []
