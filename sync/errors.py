"""Errors of the sync layer: one root and the few kinds a caller acts on differently."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SyncError",
    "CouchUnavailable",
    "CouchRejected",
    "CouchConflict",
    "DocNotFound",
    "RequestTooLarge",
    "BadRequest",
    "DocumentFailure",
    "BulkSaveFailed",
]


class SyncError(Exception):
    """Root of every error the sync layer raises."""


class CouchUnavailable(SyncError):
    """The server could not be reached or did not answer in time; worth retrying later."""


class CouchRejected(SyncError):
    """The server refused the request (401/403): bad credentials, no rights, or validation."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        self.status = status
        self.error = error
        self.reason = reason
        super().__init__(f"{status} {error}: {reason}")


class CouchConflict(SyncError):
    """The document changed under us (409): the revision given is not the current one."""


class DocNotFound(SyncError):
    """No such document, revision, attachment or database (404)."""


class RequestTooLarge(SyncError):
    """The server refused a request body as too large (413); send less at a time."""


class BadRequest(SyncError):
    """The server refused a malformed request (400), e.g. an invalid revision."""


@dataclass(frozen=True)
class DocumentFailure:
    """One document a bulk write did not store, with the server's error and reason."""

    id: str
    error: str
    reason: str


class BulkSaveFailed(SyncError):
    """Some documents of a bulk write were not stored; the others were."""

    def __init__(self, failures: list[DocumentFailure], saved: list[tuple[str, str]]) -> None:
        self.failures = failures
        self.saved = saved
        listed = "; ".join(f"{f.id}: {f.error} ({f.reason})" for f in failures)
        super().__init__(f"{len(failures)} document(s) not saved: {listed}")
