"""Waiting for what continuous replication and background tasks do, without blind sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

__all__ = ["poll"]

_T = TypeVar("_T")


def poll(check: Callable[[], _T], what: str, timeout: float = 20.0) -> _T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
