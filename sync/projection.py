"""The changes-feed follower that keeps the SQL read model (``sync.readmodel``) of cases.

As CHT's couch2pg does, it reads the source's ``_changes`` feed a page at a time with the
documents included, mirrors the ``case`` and ``case_event`` documents into SQL, refolds every
case the page touched from the documents already in SQL (never from the network) and writes
the page's rows and its checkpoint in one transaction: a page is projected entirely or not at
all, so a crash anywhere only means the page is read again.

It is idempotent: the rows are a function of the source's documents and ``today`` alone, so
replaying from 0 into empty tables, or projecting a page again, gives the same tables.
Sequences are opaque: the checkpoint stores the source's ``last_seq`` as JSON and sends it back
verbatim; sequences are never compared or incremented.

A document that is not a usable case or event document, or a case whose fold fails, is logged
and recorded in ``projection_errors`` (its case gets no ``cases`` row until it projects) and the
follower moves on; the record goes when a later change or refold projects it. Only a failure
outside one document (the source, the SQL database, the process being stopped) aborts the page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import msgspec
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from core.calendar import WorkCalendar
from core.cases import (
    Case,
    Organisation,
    Person,
    case_from_doc,
    local_date,
    parse_case_id,
    parse_event_id,
)
from core.catalogue import Eligibility
from core.errors import InvalidInput
from core.fold import CaseState, CaseStatus, fold
from core.identity import mask_resident_id
from core.sla import SlaThresholds
from sync.database import Database, Doc, Seq
from sync.errors import CouchUnavailable, DocNotFound
from sync.readmodel import (
    CASE_ID_LENGTH,
    ERROR_ID_LENGTH,
    EVENT_ID_LENGTH,
    REV_LENGTH,
    CaseDoc,
    CaseEventDoc,
    CaseRow,
    ProjectionCheckpoint,
    ProjectionError,
    digits,
    yellow_from,
)
from sync.remote import RemoteDatabase

__all__ = [
    "follow",
    "ProjectionExtension",
    "ProjectionResult",
    "project",
    "rebuild",
    "refold_all",
    "checkpoint_of",
]

log = logging.getLogger(__name__)

_SUPERVISED = frozenset({CaseStatus.ACCEPTED, CaseStatus.SUSPENDED})


@dataclass
class ProjectionResult:
    """What one ``project`` run did."""

    pages: int = 0
    changes: int = 0
    docs_written: int = 0
    docs_removed: int = 0
    cases_projected: int = 0
    errors: int = 0
    last_seq: Seq | None = None


class ProjectionExtension(Protocol):
    """More tables a tier keeps beside the read model, written in the same transactions.

    ``documents`` gets a page's changes rows that are not case documents (enrolments, kiosk
    status, …); ``cases`` gets every case id just refolded and the cases that folded, each with
    its state and the ``cases`` row just written (a case whose fold failed, or that has no case
    document, is in ``ids`` only), with the calendar and the day they were folded for.
    """

    def documents(self, session: Session, rows: Sequence[Doc]) -> None:
        """Project the page's other documents."""

    def cases(
        self,
        session: Session,
        ids: Sequence[str],
        folded: Sequence[tuple[Case, CaseState, Mapping[str, Any]]],
        calendar: WorkCalendar,
        today: date,
    ) -> None:
        """Replace what the extension keeps of the cases ``ids`` by what ``folded`` says."""


@dataclass(frozen=True)
class _Options:
    calendar: WorkCalendar
    today: date
    thresholds: SlaThresholds | None
    extension: ProjectionExtension | None = None


def _encode_seq(seq: Seq) -> str:
    return json.dumps(seq, separators=(",", ":"))


def checkpoint_of(sessions: sessionmaker[Session], source_name: str) -> Seq | None:
    """The sequence the projection of ``source_name`` has reached (as the source gave it)."""
    with sessions() as session:
        stored = session.get(ProjectionCheckpoint, source_name)
        return None if stored is None else json.loads(stored.seq)


def project(
    source: Database,
    sessions: sessionmaker[Session],
    source_name: str,
    calendar: WorkCalendar,
    today: date,
    batch: int = 500,
    *,
    thresholds: SlaThresholds | None = None,
    extension: ProjectionExtension | None = None,
) -> ProjectionResult:
    """Project ``source``'s changes since the checkpoint, a page per transaction, until caught up.

    Pages another follower of the same source has projected meanwhile are skipped."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    options = _Options(calendar, today, thresholds, extension)
    result = ProjectionResult()
    while True:
        # REPLICATION_PROTOCOL: read the checkpoint, then GET /{db}/_changes?since=…&limit=…
        # &include_docs=true; nothing is held open across the network call.
        with sessions() as session:
            stored = session.get(ProjectionCheckpoint, source_name)
            since_text = None if stored is None else stored.seq
        since: Seq = 0 if since_text is None else json.loads(since_text)
        page = source.changes(since=since, limit=batch, include_docs=True)
        rows: list[Doc] = page["results"]
        last_seq: Seq = page["last_seq"]
        with sessions.begin() as session:
            current = session.execute(
                select(ProjectionCheckpoint)
                .where(ProjectionCheckpoint.source == source_name)
                .with_for_update()
            ).scalar_one_or_none()
            if (None if current is None else current.seq) != since_text:
                continue  # another follower projected this page: read on from its checkpoint
            if rows:
                _project_page(session, source, rows, options, result)
            if rows or _encode_seq(last_seq) != since_text:
                _save_checkpoint(session, source_name, current, last_seq)
        result.last_seq = last_seq
        if not rows:
            return result
        result.pages += 1
        result.changes += len(rows)


def rebuild(
    source: Database,
    sessions: sessionmaker[Session],
    source_name: str,
    calendar: WorkCalendar,
    today: date,
    batch: int = 500,
    *,
    thresholds: SlaThresholds | None = None,
    extension: ProjectionExtension | None = None,
) -> ProjectionResult:
    """Drop the read model's rows and the checkpoint, and project the source again from 0
    (an ``extension`` clears its own tables first)."""
    with sessions.begin() as session:
        for table in (CaseRow, CaseEventDoc, CaseDoc, ProjectionError):
            session.execute(delete(table))
        session.execute(
            delete(ProjectionCheckpoint).where(ProjectionCheckpoint.source == source_name)
        )
    return project(
        source,
        sessions,
        source_name,
        calendar,
        today,
        batch,
        thresholds=thresholds,
        extension=extension,
    )


def refold_all(
    sessions: sessionmaker[Session],
    calendar: WorkCalendar,
    today: date,
    *,
    thresholds: SlaThresholds | None = None,
    batch: int = 500,
    extension: ProjectionExtension | None = None,
) -> int:
    """Refold every case from the documents in SQL for ``today`` (run daily, or after the
    calendar or thresholds change); reads no CouchDB. Returns the cases projected."""
    options = _Options(calendar, today, thresholds, extension)
    done, after = 0, ""
    while True:
        with sessions.begin() as session:
            ids = list(
                session.scalars(
                    select(CaseDoc.case_id)
                    .where(CaseDoc.case_id > after)
                    .order_by(CaseDoc.case_id)
                    .limit(batch)
                )
            )
            if not ids:
                return done
            # Keep each case's last touching seq: from its row, or the error that replaced it.
            seqs = dict(
                session.execute(
                    select(ProjectionError.doc_id, ProjectionError.seq).where(
                        ProjectionError.doc_id.in_(ids), ProjectionError.stage == "fold"
                    )
                ).all()
            )
            seqs.update(
                session.execute(
                    select(CaseRow.case_id, CaseRow.last_seq).where(CaseRow.case_id.in_(ids))
                ).all()
            )
            done += _refold(session, {i: seqs.get(i) for i in ids}, options, ProjectionResult())
            after = ids[-1]


# --- one page ---------------------------------------------------------------------------------


def _project_page(
    session: Session,
    source: Database,
    rows: Sequence[Doc],
    options: _Options,
    result: ProjectionResult,
) -> None:
    """Mirror the page's case documents into SQL, then refold the cases they belong to."""
    cases: dict[str, Doc | None] = {}  # case id → winning doc, None once deleted
    events: dict[str, tuple[str, Doc | None]] = {}  # event id → (case id, doc or None)
    seqs: dict[str, str] = {}  # doc id → its seq, JSON
    touched: dict[str, str] = {}  # case id → seq of the last change that touched it
    errors: dict[str, tuple[str | None, str]] = {}  # doc id → (case id, message)
    others: list[Doc] = []
    for row in rows:
        doc_id = row.get("id")
        if not isinstance(doc_id, str):
            log.warning("changes row without an id skipped: %r", row)
            continue
        prefix = doc_id.partition(":")[0]
        deleted = bool(row.get("deleted"))
        doc = row.get("doc")
        if doc is None and not deleted:
            doc = _fetch(source, doc_id)  # a server that left the body out of the row
            deleted = doc is None
        if isinstance(doc, Mapping) and doc.get("_deleted"):
            deleted = True
        doc_type = doc.get("type") if isinstance(doc, Mapping) and not deleted else None
        if prefix not in ("case", "case_event") and doc_type not in ("case", "case_event"):
            others.append(row)  # not a case document: other projections' business
            continue
        seq = _encode_seq(row["seq"])
        seqs[doc_id] = seq
        of_case, problem = _owner(doc_id, prefix)
        if deleted:
            problem = None  # a tombstone has nothing to project, whatever its id says
        elif problem is None:
            problem = _check_doc(doc_id, prefix, doc)
        if of_case is not None:
            touched[of_case] = seq
        if problem is not None:
            log.warning("document %s not projected: %s", doc_id, problem)
            errors[doc_id] = (of_case, problem)
            deleted = True  # whatever was projected of it before is superseded
        if of_case is None:
            continue
        body = None if deleted else dict(doc)  # type: ignore[arg-type]
        if prefix == "case":
            cases[doc_id] = body
        else:
            events[doc_id] = (of_case, body)
    if cases:
        ids = list(cases)
        session.execute(delete(CaseDoc).where(CaseDoc.case_id.in_(ids)))
        live = [
            {"case_id": i, "rev": d["_rev"], "seq": seqs[i], "doc": d}
            for i, d in cases.items()
            if d is not None
        ]
        if live:
            session.execute(insert(CaseDoc), live)
        result.docs_written += len(live)
        result.docs_removed += len(cases) - len(live)
    if events:
        ids = list(events)
        session.execute(delete(CaseEventDoc).where(CaseEventDoc.event_id.in_(ids)))
        live = [
            {"event_id": i, "case_id": c, "rev": d["_rev"], "seq": seqs[i], "doc": d}
            for i, (c, d) in events.items()
            if d is not None
        ]
        if live:
            session.execute(insert(CaseEventDoc), live)
        result.docs_written += len(live)
        result.docs_removed += len(events) - len(live)
    projected = list(seqs)
    session.execute(
        delete(ProjectionError).where(
            ProjectionError.doc_id.in_([i[:ERROR_ID_LENGTH] for i in projected]),
            ProjectionError.stage == "document",
        )
    )
    for doc_id, (of_case, message) in errors.items():
        _record_error(session, doc_id, of_case, "document", message, seqs[doc_id])
        result.errors += 1
    if touched:
        _refold(session, touched, options, result)
    if others and options.extension is not None:
        options.extension.documents(session, others)


def _fetch(source: Database, doc_id: str) -> Doc | None:
    try:
        return source.get(doc_id)
    except DocNotFound:
        return None


def _owner(doc_id: str, prefix: str) -> tuple[str | None, str | None]:
    """The case a document belongs to by its id, or why it belongs to none."""
    try:
        if prefix == "case":
            parse_case_id(doc_id)
            of_case = doc_id
        elif prefix == "case_event":
            of_case = parse_event_id(doc_id)[0]
            if len(doc_id) > EVENT_ID_LENGTH:
                return None, f"event id longer than {EVENT_ID_LENGTH} characters"
        else:
            return None, "a case or event document's id must start with its type"
    except ValueError as exc:
        return None, str(exc)
    if len(of_case) > CASE_ID_LENGTH:
        return None, f"case id longer than {CASE_ID_LENGTH} characters"
    return of_case, None


def _check_doc(doc_id: str, prefix: str, doc: Any) -> str | None:
    """Why a live document cannot be stored as one of its type's documents, or None."""
    if not isinstance(doc, Mapping):
        return "the document is not a JSON object"
    if doc.get("type") != prefix:
        return f"type {doc.get('type')!r} does not match the id's {prefix!r}"
    rev = doc.get("_rev")
    if not isinstance(rev, str) or len(rev) > REV_LENGTH:
        return "the document has no usable _rev"
    return None


def _record_error(
    session: Session, doc_id: str, case_id: str | None, stage: str, message: str, seq: str
) -> None:
    key = doc_id[:ERROR_ID_LENGTH]
    session.execute(delete(ProjectionError).where(ProjectionError.doc_id == key))
    session.execute(
        insert(ProjectionError).values(
            doc_id=key, case_id=case_id, stage=stage, error=message[:2000], seq=seq
        )
    )


def _save_checkpoint(
    session: Session, source_name: str, current: ProjectionCheckpoint | None, seq: Seq
) -> None:
    now = datetime.now(UTC)
    if current is None:
        session.add(ProjectionCheckpoint(source=source_name, seq=_encode_seq(seq), updated_at=now))
    else:
        current.seq = _encode_seq(seq)
        current.updated_at = now


# --- folding ----------------------------------------------------------------------------------


def _refold(
    session: Session,
    touched: Mapping[str, str | None],
    options: _Options,
    result: ProjectionResult,
) -> int:
    """Refold the cases ``touched`` names (case id → the seq to record) from SQL; replace rows."""
    ids = sorted(touched)
    docs: dict[str, tuple[Doc, str]] = {
        case_id: (doc, seq)
        for case_id, doc, seq in session.execute(
            select(CaseDoc.case_id, CaseDoc.doc, CaseDoc.seq).where(CaseDoc.case_id.in_(ids))
        )
    }
    events: dict[str, list[Doc]] = {i: [] for i in ids}
    for of_case, doc in session.execute(
        select(CaseEventDoc.case_id, CaseEventDoc.doc)
        .where(CaseEventDoc.case_id.in_(ids))
        .order_by(CaseEventDoc.case_id, CaseEventDoc.event_id)
    ):
        events[of_case].append(doc)
    session.execute(delete(CaseRow).where(CaseRow.case_id.in_(ids)))
    session.execute(
        delete(ProjectionError).where(
            ProjectionError.doc_id.in_(ids), ProjectionError.stage == "fold"
        )
    )
    rows: list[dict[str, Any]] = []
    folded: list[tuple[Case, CaseState, Mapping[str, Any]]] = []
    for case_id in ids:
        found = docs.get(case_id)
        if found is None:
            continue  # no case document (yet, or any more): its events wait in SQL
        doc, doc_seq = found
        seq = touched[case_id] or doc_seq
        try:
            case = case_from_doc(doc)
            state = fold(case, events[case_id], options.calendar, options.today)
            rows.append(_case_row(case, state, seq, options))
            folded.append((case, state, rows[-1]))
        except Exception as exc:  # one poisoned case must not stop the follower
            if isinstance(exc, InvalidInput):
                message = "; ".join(e.message_en or e.message for e in exc.errors)
                log.warning("case %s not projected: %s", case_id, message)
            else:
                message = f"{type(exc).__name__}: {exc}"
                log.exception("case %s not projected: the fold failed", case_id)
            _record_error(session, case_id, case_id, "fold", message, seq)
            result.errors += 1
    if rows:
        session.execute(insert(CaseRow), rows)
    if options.extension is not None:
        options.extension.cases(session, ids, folded, options.calendar, options.today)
    result.cases_projected += len(rows)
    return len(rows)


def _case_row(case: Case, state: CaseState, seq: str, options: _Options) -> dict[str, Any]:
    """The ``cases`` row of a folded case."""
    applicant = case.applicant
    flags: Iterable[Eligibility] = ()
    if isinstance(applicant, Person):
        applicant_id, phone, flags = applicant.id_number, applicant.phone, applicant.flags
    else:
        assert isinstance(applicant, Organisation)
        applicant_id, phone = applicant.credit_code, applicant.contact_phone
    representative = case.representative
    yellow_on = None
    if state.status in _SUPERVISED and state.due is not None and state.accepted_on is not None:
        yellow_on = yellow_from(
            state.accepted_on, state.due.day, options.calendar, options.thresholds
        )
    kind = case.item_kind.value
    return {
        "case_id": case.id,
        "case_number": case.case_number,
        "village": case.village,
        "township": case.township,
        "handling_unit": state.handling_unit,
        "origin_unit": case.origin.unit,
        "opened_at": case.wall_time.astimezone(UTC),
        "item_code": case.item_code,
        "item_name": case.item_name,
        "catalogue_version": case.catalogue_version,
        "kind": kind,
        "case_type": case.case_type.value,
        "handling_level": case.handling_level.value,
        "mode": case.mode.value,
        "status": state.status.value,
        "applicant_kind": "person" if isinstance(applicant, Person) else "organisation",
        "applicant_name": applicant.name,
        "applicant_id_masked": mask_resident_id(applicant_id),
        "phone": digits(phone),
        "representative_name": representative.name if representative else "",
        "representative_phone": digits(representative.phone) if representative else "",
        "elderly": Eligibility.ELDERLY in flags,
        "disabled": Eligibility.DISABLED in flags,
        "bedridden": Eligibility.BEDRIDDEN in flags,
        "assignee": state.assignee,
        "assignee_name": state.assignee_name,
        "submitted_on": state.submitted_on,
        "received_on": state.received_on,
        "accepted_on": state.accepted_on,
        "accepted_deemed": state.accepted_deemed,
        "due_on": state.due.day if state.due else None,
        "due_provisional": bool(state.due and state.due.provisional),
        "expected_due_on": state.expected_due.day if state.expected_due else None,
        "expected_due_provisional": bool(state.expected_due and state.expected_due.provisional),
        "yellow_on": yellow_on,
        "completed_on": state.completed_on,
        "on_time": state.on_time,
        "returns": state.returns,
        "conflicts": len(state.conflicts),
        "follow_up_open": state.follow_up_open,
        "last_hlc": state.last_hlc,
        "last_seq": seq,
        "folded_on": options.today,
        "state": msgspec.to_builtins(state),
    }


def follow(
    server: Any,
    database: str,
    sessions: sessionmaker[Session],
    rules: Callable[[], tuple[WorkCalendar, SlaThresholds]],
    setup_hint: str,
    extension: ProjectionExtension | None = None,
) -> ProjectionResult | None:
    """Catch the read model up with ``database`` on a CouchDB server; None while it cannot be
    read (not set up yet: ``setup_hint`` is logged; unreachable: a warning). ``rules`` gives the
    calendar and thresholds, read only when the database is there to follow."""
    try:
        calendar, thresholds = rules()
        return project(
            RemoteDatabase(server, database),
            sessions,
            database,
            calendar,
            local_date(datetime.now(UTC)),
            thresholds=thresholds,
            extension=extension,
        )
    except DocNotFound:
        log.info("no `%s` database yet (%s)", database, setup_hint)
    except CouchUnavailable as exc:
        log.warning("read model of `%s` not updated, CouchDB unreachable: %s", database, exc)
    return None
