"""Counter intake (窗口受理): a walk-in citizen's case opened at the service centre, with the
same form, pre-review and routing as the village kiosk (``core.intake``).

A counter case has no village (``village`` None), belongs to this unit and is handled by it —
or by the district for district-level items. The node writes it as its own origin: the case
and its ``submitted`` event in one ``_bulk_docs`` (``EventWriter.open_case``); the node then
writes ``received`` on it as on every case that reaches it.

Idempotence: every form carries an intake key. The save first *claims* the key with a
create-only ``_local/counter_intake:<key>`` document in the case database (CouchDB refuses a
second create with 409, so two posts of one form — even at two instances of the node — never
both write), and records the case id on it once written: a repeated post returns that case.
``_local`` documents never replicate, like the kiosk's remembered keys in ``_local/kiosk``; no
SQL table is needed. A claim whose save failed is released; one left by a crashed save (no case
id) is taken over after ``CLAIM_SECONDS``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.cases import Case, Origin, Person, Submitted, case_from_doc, local_date
from core.catalogue import CatalogueItem
from core.clock import Hlc
from core.errors import FieldError, InvalidInput
from core.fold import OPEN, CaseStatus
from core.hierarchy import Level, level_of
from core.identity import mask_resident_id
from core.intake import (
    Outcome,
    choose_mode,
    counter_options,
    draft_case,
    form_field,
    handling_unit,
    parse_intake,
    review_materials,
)
from core.routing import route_options
from sync.couch import couch_errors
from sync.errors import CouchConflict, SyncError
from sync.readmodel import CaseDoc, CaseRow
from sync.writer import EventWriter
from township.inbox import inbox_scope
from township.read_model import district_rules

__all__ = ["CLAIM_SECONDS", "Duplicate", "CounterDesk", "CounterOutcome", "counter_unit"]

CLAIM_SECONDS = 120.0
"""After this long a claimed intake key without a case counts as abandoned (a crashed save)."""
_KEY = re.compile(r"^[0-9a-f]{16,64}$")


@dataclass(frozen=True)
class Duplicate:
    """An open case of the same applicant and service in this unit's inbox."""

    case_number: str
    status: CaseStatus


CounterOutcome = Outcome[Duplicate]
"""A counter intake's outcome (duplicates listed from the read model)."""


def counter_unit(item: CatalogueItem, unit: str) -> str:
    """Who handles a case opened at ``unit``'s counter: the district's own centre handles
    whatever it opens; a township its items and village items, the district district items."""
    if level_of(unit) is Level.DISTRICT:
        return unit
    return handling_unit(item, None, unit)


def _ident(applicant: Any) -> str:
    return applicant.id_number if isinstance(applicant, Person) else applicant.credit_code


class CounterDesk:
    """The counter's intake service over the node's case database and read model."""

    def __init__(
        self, sessions: sessionmaker[Session], writer: EventWriter, unit: str, database: str
    ) -> None:
        self.sessions = sessions
        self.writer = writer
        self.unit = unit
        self.database = database

    def review(
        self,
        server: Any,
        form: dict[str, Any],
        item: CatalogueItem,
        catalogue_version: int,
        *,
        author: str,
        today: date | None = None,
    ) -> CounterOutcome:
        """Check the form: field errors (checksums, phones), pre-review, routing at the counter
        (video: the centre is online), the applicant's open cases of this service. Writes
        nothing."""
        now = datetime.now(UTC)
        today = today or local_date(now)
        calendar, _ = district_rules(server)
        intake = parse_intake(form, item)
        outcome = CounterOutcome(intake)
        outcome.review = review_materials(intake, item, today=today, calendar=calendar)
        if intake.applicant is None:
            return outcome
        outcome.options = counter_options(route_options(item, intake.applicant, online=True))
        outcome.mode = choose_mode(intake, outcome.options)
        origin = Origin(self.unit, "dryrun00")  # a dry run finds checksum and phone errors
        self._draft(outcome, item, catalogue_version, origin, 1, Hlc(0, 0, origin.key), now,
                    author)  # fmt: skip
        ident = _ident(intake.applicant)
        if ident and not {"p_id", "o_code"} & intake.errors.keys():
            outcome.duplicates = self._duplicates(item.code, ident)
        return outcome

    def _draft(
        self,
        outcome: CounterOutcome,
        item: CatalogueItem,
        catalogue_version: int,
        origin: Origin,
        counter: int,
        hlc: Hlc,
        now: datetime,
        author: str,
    ) -> Case | None:
        return draft_case(
            outcome.intake, item, outcome.review, outcome.options, outcome.mode,
            origin=origin, counter=counter, hlc=hlc, wall_time=now, author=author,
            village=None, township=self.unit, catalogue_version=catalogue_version,
            unit=counter_unit(item, self.unit),
        )  # fmt: skip

    def _duplicates(self, item_code: str, ident: str) -> list[Duplicate]:
        """Open cases of this service and applicant in the unit's inbox (read model)."""
        with self.sessions() as session:
            found = session.execute(
                select(CaseRow.case_number, CaseRow.status, CaseDoc.doc)
                .join(CaseDoc, CaseDoc.case_id == CaseRow.case_id)
                .where(
                    inbox_scope(self.unit),
                    CaseRow.item_code == item_code,
                    CaseRow.status.in_([s.value for s in OPEN]),
                    CaseRow.applicant_id_masked == mask_resident_id(ident),
                )
                .order_by(CaseRow.opened_at.desc())
            ).all()
        return [
            Duplicate(number, CaseStatus(status))
            for number, status, doc in found
            if _ident(case_from_doc(doc).applicant) == ident
        ]

    def save(
        self,
        server: Any,
        form: dict[str, Any],
        item: CatalogueItem,
        catalogue_version: int,
        *,
        author: str,
    ) -> CounterOutcome:
        """Review, then write the case and its ``submitted`` event if nothing is wrong.

        A key already saved returns that case (``repeated``); an open case of the same
        applicant and service needs ``confirm_duplicate`` on the form.
        """
        key = str(form.get("intake_key") or "").strip().lower()
        db = server[self.database]
        if _KEY.match(key):
            earlier = self._saved(db, key)
            if earlier is not None:
                return CounterOutcome(parse_intake(form, item), case=earlier, repeated=True)
        outcome = self.review(server, form, item, catalogue_version, author=author)
        if not _KEY.match(key):
            outcome.intake.error("form", "表单缺少编号, 请刷新页面后重新填写")
        if outcome.duplicates and not outcome.intake.values.get("confirm_duplicate"):
            outcome.intake.error(
                "confirm_duplicate", "该申请人已有本事项的在办件; 确需再次申请请勾选确认"
            )
        if not outcome.ok or outcome.mode is None:
            return outcome
        claim = self._claim(db, key, author)
        if isinstance(claim, Case):
            return CounterOutcome(outcome.intake, case=claim, repeated=True)
        if claim is None:
            outcome.intake.error("form", "该表单正在保存, 请稍候在收件箱查看, 不要重复提交")
            return outcome

        def build(origin: Origin, counter: int, stamp: Hlc, now: datetime) -> Case:
            case = self._draft(outcome, item, catalogue_version, origin, counter, stamp, now,
                               author)  # fmt: skip
            if case is None:  # the dry run passed: only a rule that moved with the clock
                raise InvalidInput(FieldError("form", "办件信息有误, 请检查后重试"))
            return case

        try:
            case, _ = self.writer.open_case(db, build, [Submitted()], author=author)
        except InvalidInput as exc:
            self._release(db, claim)
            for e in exc.errors:
                outcome.intake.error(form_field(e.field, outcome.intake), e.message)
            return outcome
        except BaseException:
            self._release(db, claim)
            raise
        claim["case_id"] = case.id
        try:
            with couch_errors():
                db.save(claim)
        except SyncError:  # the case is saved; only a repeat of this post could miss it
            pass
        outcome.case = case
        return outcome

    @staticmethod
    def _local_id(key: str) -> str:
        return f"_local/counter_intake:{key}"

    def _saved(self, db: Any, key: str) -> Case | None:
        """The case an earlier post of this key saved, if any."""
        with couch_errors():
            doc = db.get(self._local_id(key))
            case_id = doc.get("case_id") if doc is not None else None
            found = db.get(case_id) if case_id else None
        return case_from_doc(dict(found)) if found is not None else None

    def _claim(self, db: Any, key: str, author: str) -> dict[str, Any] | Case | None:
        """Claim ``key`` for this save (the claim document, with its rev), or the case an
        earlier post saved meanwhile, or None while another post is saving it."""
        doc: dict[str, Any] = {"_id": self._local_id(key), "by": author, "at": time.time()}
        try:
            with couch_errors():
                db.save(doc)
            return doc
        except CouchConflict:
            pass
        earlier = self._saved(db, key)
        if earlier is not None:
            return earlier
        with couch_errors():
            current = db.get(self._local_id(key)) or {}
        if time.time() - float(current.get("at") or 0) < CLAIM_SECONDS or "_rev" not in current:
            return None
        taken = {"_id": self._local_id(key), "_rev": current["_rev"], "by": author,
                 "at": time.time()}  # fmt: skip
        try:
            with couch_errors():
                db.save(taken)
        except CouchConflict:  # another post took it over first
            return None
        return taken

    def _release(self, db: Any, claim: dict[str, Any]) -> None:
        """Give a claim back after a failed save, so the same form can be posted again."""
        try:
            with couch_errors():
                db.delete(claim)
        except Exception:  # noqa: BLE001 - the claim expires after CLAIM_SECONDS anyway
            pass
