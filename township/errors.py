"""Errors of the township node: one root below the domain's, and the kinds HTTP tells apart."""

from __future__ import annotations

from core.errors import DomainError

__all__ = [
    "TownshipError",
    "EnrolmentDenied",
    "TooManyAttempts",
    "NodeNotReady",
    "Unauthenticated",
    "PeriodFull",
    "BookingInvalid",
]


class TownshipError(DomainError):
    """Root of the errors the township node raises; the message is for the user, in Chinese."""


class EnrolmentDenied(TownshipError):
    """A kiosk may not enrol: wrong, expired or revoked code (403)."""

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class TooManyAttempts(TownshipError):
    """Too many wrong codes for one village lately (429); try again after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class NodeNotReady(TownshipError):
    """This node lacks what the request needs until an administrator acts (503)."""


class Unauthenticated(TownshipError):
    """A server-to-server call without the district's key, or with a wrong one (401)."""


class PeriodFull(TownshipError):
    """No staff slot of the period is free for a booking (409)."""


class BookingInvalid(TownshipError):
    """A booking the node cannot take: bad body, day, case or item (400)."""
