"""Password and one-time code hashing with Argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_secret", "verify_secret", "DUMMY_HASH"]

_hasher = PasswordHasher()
DUMMY_HASH = _hasher.hash("not-a-real-password")
"""Verified against when a user is unknown, so timing does not reveal which names exist."""


def hash_secret(secret: str) -> str:
    """Argon2id hash of ``secret``."""
    return _hasher.hash(secret)


def verify_secret(hashed: str, secret: str) -> bool:
    """True if ``secret`` matches ``hashed``."""
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False
