"""Hybrid logical clock: timestamps that order case events even when kiosk clocks are wrong.

A stamp is (wall milliseconds, logical counter, node). Stamps compare as that tuple, and their
string form sorts the same way, so documents can carry a plain string. The clock follows
Kulkarni et al.'s HLC, with one change DESIGN.md asks for: a remote stamp more than
``max_ahead_ms`` (a day) ahead of local wall time is adopted only up to local time plus that
bound, and the caller is told, so one kiosk with a wrong clock cannot drag the network forward.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

__all__ = ["DAY_MS", "Hlc", "HlcClock", "Merge"]

DAY_MS = 86_400_000
"""One day in milliseconds: how far ahead of local time a remote clock may pull this one."""

_WALL_DIGITS = 12  # hex digits: 2**48 ms reaches the year 10889
_LOGICAL_DIGITS = 4
_MAX_WALL = 16**_WALL_DIGITS - 1
_MAX_LOGICAL = 16**_LOGICAL_DIGITS - 1
_ENCODED = re.compile(r"^([0-9a-f]{12})([0-9a-f]{4})-(\S+)$")
_NODE = re.compile(r"^\S{1,100}$")


class Hlc(msgspec.Struct, frozen=True, order=True):
    """One hybrid-logical-clock stamp; ordered by wall time, then logical counter, then node."""

    wall_ms: int
    logical: int
    node: str

    def __post_init__(self) -> None:
        if not 0 <= self.wall_ms <= _MAX_WALL:
            raise ValueError(f"HLC wall time out of range: {self.wall_ms}")
        if not 0 <= self.logical <= _MAX_LOGICAL:
            raise ValueError(f"HLC logical counter out of range: {self.logical}")
        if not _NODE.match(self.node):
            raise ValueError(f"HLC node must be 1-100 characters without blanks: {self.node!r}")

    def encode(self) -> str:
        """Compact string form whose lexical order is the stamps' order."""
        return f"{self.wall_ms:012x}{self.logical:04x}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> Hlc:
        """Read a stamp from its string form; raise ValueError if it is not one."""
        match = _ENCODED.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"not an HLC stamp: {text!r}")
        return cls(int(match[1], 16), int(match[2], 16), match[3])

    def successor(self, node: str) -> Hlc:
        """The smallest stamp of ``node`` that is later than this one in every node's order."""
        if self.logical < _MAX_LOGICAL:
            return Hlc(self.wall_ms, self.logical + 1, node)
        # Logical overflow borrows a millisecond rather than breaking the fixed width.
        return Hlc(self.wall_ms + 1, 0, node)

    def __str__(self) -> str:
        return self.encode()


class Merge(msgspec.Struct, frozen=True):
    """What receiving a remote stamp did: the local stamp after it, the skew, the clamp flag.

    ``skew_ms`` is remote wall time minus local wall time at receipt: positive when the sender
    is ahead (always a clock error), negative when it is behind or the stamp simply travelled
    slowly (an offline kiosk) — the two cannot be told apart from one stamp.
    """

    stamp: Hlc
    skew_ms: int
    clamped: bool


class HlcClock:
    """A node's hybrid logical clock; ``now_ms`` is its wall clock in Unix milliseconds."""

    def __init__(
        self,
        node_id: str,
        now_ms: Callable[[], int],
        *,
        last: Hlc | None = None,
        max_ahead_ms: int = DAY_MS,
    ) -> None:
        if max_ahead_ms < 0:
            raise ValueError("max_ahead_ms cannot be negative")
        self.node_id = node_id
        self.max_ahead_ms = max_ahead_ms
        self._now_ms = now_ms
        start = Hlc(0, 0, node_id)  # validates node_id
        self._last = start if last is None else Hlc(last.wall_ms, last.logical, node_id)

    @property
    def last(self) -> Hlc:
        """The latest stamp this clock holds (persist it to resume after a restart)."""
        return self._last

    def tick(self, after: Hlc | None = None) -> Hlc:
        """A stamp for a local event: later than every earlier one, and than ``after`` if given.

        ``after`` is the latest stamp of the case being written to, so an event always sorts
        after the events its writer saw, even when one of them came from a clock far ahead.
        Such a stamp is returned but not adopted by the clock beyond the clamp bound, so only
        that case's later events are carried forward, not the node's.
        """
        now = self._now_ms()
        last = self._last
        stamp = Hlc(now, 0, self.node_id) if now > last.wall_ms else last.successor(self.node_id)
        adopt = True
        if after is not None and (stamp.wall_ms, stamp.logical) <= (after.wall_ms, after.logical):
            stamp = after.successor(self.node_id)
            adopt = stamp.wall_ms <= now + self.max_ahead_ms
        if adopt:
            self._last = stamp
        return stamp

    def receive(self, remote: Hlc) -> Merge:
        """Merge a stamp seen on a remote document; clamp one more than a day ahead."""
        now = self._now_ms()
        bound = now + self.max_ahead_ms
        clamped = remote.wall_ms > bound
        r_wall, r_logical = (bound, 0) if clamped else (remote.wall_ms, remote.logical)
        last = self._last
        wall = max(last.wall_ms, r_wall, now)
        if wall == last.wall_ms and wall == r_wall:
            logical = max(last.logical, r_logical) + 1
        elif wall == last.wall_ms:
            logical = last.logical + 1
        elif wall == r_wall:
            logical = r_logical + 1
        else:
            logical = 0
        if logical > _MAX_LOGICAL:
            wall, logical = wall + 1, 0
        self._last = Hlc(wall, logical, self.node_id)
        return Merge(self._last, remote.wall_ms - now, clamped)
