"""The township node's HTTP edge: controllers and the one error mapping."""

from __future__ import annotations

__all__: list[str] = []
