"""Township nodes' replications as the district sees them (issue 8, "replications failing").

Each township node runs the continuous ``_replicator`` jobs to and from the district on its own
CouchDB; only the node can see their state. The district asks every registered node
``GET /api/v1/replications`` (its key in ``Authorization: Bearer``, as for bookings) and keeps
the latest answer per township in ``node_checks``: reachable or not, how many jobs fail of how
many, and the failing jobs' ids and errors (or why the node could not be asked). The nodes are
asked in parallel, each with its own timeout, so one unreachable node costs the background loop
one timeout, not one per node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import NodeCheck, TownshipNode, Unit
from central.services.nodes import nodes

__all__ = [
    "REPLICATIONS_PATH",
    "JobReport",
    "NodeReport",
    "NodeHealth",
    "check_nodes",
    "node_health",
    "unchecked_nodes",
    "troubled_nodes",
]

log = logging.getLogger(__name__)

REPLICATIONS_PATH = "/api/v1/replications"
DETAIL_CHARS = 2000
"""The longest detail kept (a node with many failing jobs)."""
POLL_THREADS = 8


class JobReport(msgspec.Struct, frozen=True):
    """One ``_replicator`` job as a node reports it (the contract of ``REPLICATIONS_PATH``)."""

    id: str
    source: str
    target: str
    state: str
    failing: bool
    error: str = ""
    lag: int | None = None


class NodeReport(msgspec.Struct, frozen=True):
    """A node's answer: its township, when it looked (UTC) and its jobs."""

    township: str
    checked_at: datetime
    jobs: list[JobReport]


@dataclass(frozen=True)
class _Probe:
    township: str
    reachable: bool
    failing_jobs: int = 0
    jobs_total: int = 0
    detail: str = ""


def _short(text: str, limit: int = DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _probe(client: httpx.Client, node: TownshipNode) -> _Probe:
    """Ask one node for its replications; any failure to get a valid answer is unreachable."""
    try:
        response = client.get(
            node.url.rstrip("/") + REPLICATIONS_PATH,
            headers={"Authorization": f"Bearer {node.api_key}"},
        )
    except httpx.TimeoutException as exc:
        return _Probe(node.code, False, detail=f"节点未在时限内回答 (timeout: {exc})")
    except httpx.HTTPError as exc:
        return _Probe(node.code, False, detail=f"无法连接节点 ({type(exc).__name__}: {exc})")
    if response.status_code == 401:
        return _Probe(node.code, False, detail="节点拒绝了区里的密钥 (HTTP 401): 请核对节点登记")
    if response.status_code != 200:
        body = _short(response.text.strip(), 200)
        return _Probe(node.code, False, detail=f"节点回答 HTTP {response.status_code}: {body}")
    try:
        report = msgspec.json.decode(response.content, type=NodeReport)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _Probe(node.code, False, detail=f"节点的回答无法识别: {exc}")
    if report.township != node.code:
        return _Probe(node.code, False, detail=f"该地址上是镇街 {report.township} 的节点")
    failing = [job for job in report.jobs if job.failing]
    detail = "; ".join(f"{job.id}: {job.error or job.state}" for job in failing)
    return _Probe(node.code, True, len(failing), len(report.jobs), _short(detail))


def check_nodes(
    sessions: sessionmaker[Session],
    timeout: float = 5.0,
    *,
    now: datetime | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Ask every registered node for its replications and store one ``node_checks`` row per
    township; return how many nodes were asked."""
    with sessions() as session:
        targets = nodes(session)
        session.expunge_all()
    if not targets:
        return 0
    # A node that accepts the connection answers from a 60 s cache, or computes its jobs' state
    # first (a few seconds): the read may take longer than the connect.
    limits = httpx.Timeout(timeout, read=3 * timeout)
    with (
        httpx.Client(timeout=limits, transport=transport) as client,
        ThreadPoolExecutor(min(POLL_THREADS, len(targets)), "node-health") as pool,
    ):
        probes = list(pool.map(lambda node: _probe(client, node), targets))
    checked_at = now or datetime.now(UTC)
    with sessions() as session:
        for probe in probes:
            _store(session, probe, checked_at)
        session.commit()
    troubled = [p.township for p in probes if not p.reachable or p.failing_jobs]
    if troubled:
        log.warning("township nodes with failing replications or unreachable: %s", troubled)
    return len(probes)


def _store(session: Session, probe: _Probe, checked_at: datetime) -> None:
    row = session.get(NodeCheck, probe.township)
    if row is None:
        row = NodeCheck(township=probe.township, last_ok_at=None)
        session.add(row)
    row.checked_at = checked_at
    row.reachable = probe.reachable
    row.failing_jobs = probe.failing_jobs
    row.jobs_total = probe.jobs_total
    row.detail = probe.detail
    if probe.reachable and not probe.failing_jobs:
        row.last_ok_at = checked_at


@dataclass(frozen=True)
class NodeHealth:
    """A registered node and the district's latest check of it (None fields: never checked)."""

    township: str
    township_name: str
    url: str
    checked_at: datetime | None
    reachable: bool | None
    failing_jobs: int
    jobs_total: int
    detail: str
    last_ok_at: datetime | None

    @property
    def troubled(self) -> bool:
        """Checked, and unreachable or with failing jobs."""
        return self.reachable is not None and (not self.reachable or self.failing_jobs > 0)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def node_health(session: Session) -> list[NodeHealth]:
    """Every registered node with its latest check, by township code."""
    names: dict[str, str] = {
        code: name for code, name in session.execute(select(Unit.code, Unit.name))
    }
    checks = {c.township: c for c in session.scalars(select(NodeCheck))}
    found: list[NodeHealth] = []
    for node in nodes(session):
        check = checks.get(node.code)
        found.append(
            NodeHealth(
                township=node.code,
                township_name=names.get(node.code, node.code),
                url=node.url,
                checked_at=_aware(check.checked_at) if check else None,
                reachable=check.reachable if check else None,
                failing_jobs=check.failing_jobs if check else 0,
                jobs_total=check.jobs_total if check else 0,
                detail=check.detail if check else "",
                last_ok_at=_aware(check.last_ok_at) if check else None,
            )
        )
    return found


def unchecked_nodes(session: Session) -> int:
    """How many registered nodes have never been checked (a node registered since the last
    poll is asked at once, not at the next one)."""
    query = (
        select(func.count())
        .select_from(TownshipNode)
        .outerjoin(NodeCheck, NodeCheck.township == TownshipNode.code)
        .where(NodeCheck.township.is_(None))
    )
    return int(session.scalar(query) or 0)


def troubled_nodes(session: Session) -> Sequence[NodeHealth]:
    """The registered nodes whose latest check found them unreachable or with failing jobs."""
    return [n for n in node_health(session) if n.troubled]
