"""Township nodes the district calls server to server (issue 6's contract, "Trust")."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db.models import TownshipNode, Unit
from central.services.directory import publish_township_node
from core.errors import FieldError, InvalidInput, NotFound
from core.hierarchy import Level

__all__ = ["register_node", "node_of", "nodes"]


def _check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise InvalidInput(
            FieldError(
                "url",
                "节点地址应为 http(s)://主机[:端口], 不带账号",
                "The node URL is http(s)://host[:port], without credentials",
            )
        )
    return url


def register_node(
    session: Session, township: str, url: str, *, new_key: bool = False
) -> str | None:
    """Record township ``township``'s node at ``url`` and publish its directory document.

    A first registration (or ``new_key``) mints a random key and returns it — the only time it
    is shown; registering again with another URL keeps the key and returns None.
    """
    code = township.strip()
    unit = session.get(Unit, code)
    if unit is None or unit.level != Level.TOWNSHIP.value:
        raise NotFound("镇街", code, f"{code} 不是本区的镇街")
    url = _check_url(url)
    now = datetime.now(UTC)
    node = session.get(TownshipNode, code)
    key: str | None = None
    if node is None:
        key = secrets.token_urlsafe(32)
        node = TownshipNode(code=code, url=url, api_key=key, registered_at=now, updated_at=now)
        session.add(node)
    else:
        if new_key:
            key = secrets.token_urlsafe(32)
            node.api_key = key
        node.url = url
        node.updated_at = now
    session.flush()
    publish_township_node(session, node)
    session.commit()
    return key


def node_of(session: Session, township: str) -> TownshipNode | None:
    """The registered node of ``township``, if any."""
    return session.get(TownshipNode, township)


def nodes(session: Session) -> list[TownshipNode]:
    """Every registered node, by code."""
    return list(session.scalars(select(TownshipNode).order_by(TownshipNode.code)))
