"""Domain errors: one root, a few named kinds, each carrying a message fit for a user."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DomainError", "FieldError", "InvalidInput", "NotFound", "Conflict"]


class DomainError(Exception):
    """Root of every error the domain raises."""


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; ``message`` is Chinese, shown to the user as is."""

    field: str
    message: str
    message_en: str = ""


class InvalidInput(DomainError):
    """Input that breaks a rule; lists every field at fault so a form can show them all at once."""

    def __init__(self, errors: list[FieldError] | FieldError) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


@dataclass
class NotFound(DomainError):
    """A thing named by code or id does not exist."""

    what: str
    key: str
    message: str = field(default="")

    def __post_init__(self) -> None:
        super().__init__(self.message or f"{self.what} {self.key} 不存在")


@dataclass
class Conflict(DomainError):
    """The request clashes with what exists (a duplicate code, a stale version)."""

    message: str
    field: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.message)
