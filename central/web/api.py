"""JSON API under /api/v1 (to be written)."""

from __future__ import annotations

__all__ = ["handlers"]

handlers: list = []
