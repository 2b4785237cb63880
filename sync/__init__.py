"""Sanji's sync layer: document stores, CouchDB client adapter, replication, topology set-up."""

from __future__ import annotations

__all__: list[str] = []
