"""The kiosk's exceptions: each carries a message a village agent can act on, in Chinese."""

from __future__ import annotations

__all__ = ["KioskError", "EnrolmentFailed", "NotFoundHere"]


class KioskError(Exception):
    """Root of the kiosk's errors; ``str()`` is the Chinese message shown to the agent."""


class EnrolmentFailed(KioskError):
    """The township did not enrol this kiosk (wrong code, revoked, unreachable…)."""


class NotFoundHere(KioskError):
    """Something asked for is not in this kiosk's store."""
