"""The citizen's rating (好差评) of a booked home visit, online (issue 6 item 7).

With the booking code and the contact phone, once the visit is done (or the case completed),
the citizen picks one of five levels (非常满意…非常不满意) and may add a comment. The district
writes a ``rated`` event (channel ``online``, naming the visit) as the district server into
the ``district`` database; it replicates down to the township, whose read model opens the
差评 follow-up (township ``/follow-ups``) for the bottom two levels.

Once per booking: the ``booking_ratings`` row (its primary key is the booking code) is
committed *before* the event is written, so of two simultaneous posts exactly one goes on;
if CouchDB does not take the event the row is removed again and the citizen may retry. A
crash between the two leaves a row without an event (``event_id`` empty): that booking then
counts as rated although no event exists — the rare price of never writing two ratings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import Booking, BookingRating, Unit
from central.services.bookings import AUTHOR, find_booking
from central.services.enrolments import DISTRICT_DB
from central.services.limits import check_lengths
from core.cases import RATING_LABELS, Rated, RatingChannel, case_from_doc, is_bad_rating
from core.errors import Conflict, DomainError, FieldError, InvalidInput, NotFound
from core.fold import CaseState, CaseStatus, VisitStatus
from core.hierarchy import Level
from sync.couch import couch_errors
from sync.readmodel import CaseRow
from sync.writer import EventWriter

__all__ = ["LEVELS", "NotRateable", "AlreadyRated", "rateable", "rate_booking"]

log = logging.getLogger(__name__)

LEVELS: tuple[tuple[int, str], ...] = tuple(sorted(RATING_LABELS.items(), reverse=True))
"""(level, Chinese label), 非常满意 (5) first."""


class NotRateable(Conflict):
    """The visit is not done yet."""


class AlreadyRated(Conflict):
    """This booking has its rating."""


def _state(session: Session, booking: Booking) -> CaseState | None:
    found = session.scalar(select(CaseRow.state).where(CaseRow.case_id == booking.case_id))
    return msgspec.convert(found, CaseState, strict=False) if found else None


def rateable(state: CaseState | None, booking: Booking) -> bool:
    """Whether the booking's visit is done or its case completed (by the read model)."""
    if state is None:
        return booking.status == "done"
    visit = next((v for v in state.visits if v.visit_id == booking.visit_id), None)
    done = visit is not None and visit.status is VisitStatus.DONE
    return done or state.status is CaseStatus.COMPLETED or booking.status == "done"


def _level(text: str) -> int:
    try:
        level = int(str(text).strip())
    except ValueError:
        level = 0
    if level not in RATING_LABELS:
        raise InvalidInput(FieldError("level", "请选择满意程度 (非常满意到非常不满意)", "Pick 1-5"))
    return level


def rate_booking(
    sessions: sessionmaker[Session],
    server: Callable[[], Any],
    code: str,
    phone: str,
    level_text: str,
    comment: str,
    now: datetime,
) -> str:
    """Rate the visit of booking ``code`` (with its phone); return what the citizen is told.
    Raises NotFound, InvalidInput, NotRateable or AlreadyRated (all in Chinese)."""
    comment = comment.strip()
    check_lengths({"code": code, "phone": phone, "comment": comment})
    level = _level(level_text)
    with sessions() as session:
        booking = find_booking(session, code, phone)
        if session.get(BookingRating, booking.code) is not None:
            raise AlreadyRated("这次上门服务已经评价过了, 每个预约只能评价一次")
        state = _state(session, booking)
        if not rateable(state, booking):
            raise NotRateable("工作人员上门服务完成后才能评价, 请稍后再来")
        if state is not None and any(
            r.channel is RatingChannel.ONLINE and r.visit_id == booking.visit_id
            for r in state.ratings
        ):
            raise AlreadyRated("这次上门服务已经评价过了, 每个预约只能评价一次")
        district = session.scalar(select(Unit.code).where(Unit.level == Level.DISTRICT.value))
        if district is None:
            raise NotFound("区县", "", "区级单位尚未建立")
        session.add(
            BookingRating(
                booking_code=booking.code, level=level, comment=comment, event_id="", rated_at=now
            )
        )
        try:
            session.commit()
        except IntegrityError:
            raise AlreadyRated("这次上门服务已经评价过了, 每个预约只能评价一次") from None
        session.expunge(booking)
    try:
        event_id = _write(sessions, server, district, booking, state, level, comment)
    except Exception:
        with sessions() as session:  # nothing was rated: the citizen may try again
            session.execute(delete(BookingRating).where(BookingRating.booking_code == booking.code))
            session.commit()
        raise
    with sessions() as session:
        row = session.get(BookingRating, booking.code)
        if row is not None:
            row.event_id = event_id
            session.commit()
    message = f"感谢您的评价: {RATING_LABELS[level]}。"
    if is_bad_rating(level):
        message += "我们很抱歉这次服务没有让您满意, 镇街服务中心会回访您并整改。"
    return message


def _write(
    sessions: sessionmaker[Session],
    server: Callable[[], Any],
    district: str,
    booking: Booking,
    state: CaseState | None,
    level: int,
    comment: str,
) -> str:
    """Write the ``rated`` event on the booking's case; return its id."""
    couch = server()
    with couch_errors():
        doc = couch[DISTRICT_DB].get(booking.case_id)
    if doc is None:
        raise NotFound("办件", booking.case_number, "没有找到这次预约的办件, 请稍后再试")
    case = case_from_doc(doc)
    after = state.last_stamp if state is not None and state.last_hlc else case.stamp
    rated = Rated(
        level=level, channel=RatingChannel.ONLINE, text=comment, visit_id=booking.visit_id
    )
    try:
        events = EventWriter(sessions, district).append(
            couch[DISTRICT_DB], case, [rated], author=AUTHOR, after=after
        )
    except DomainError:
        log.exception("could not write the rating of booking %s", booking.code)
        raise
    return events[0].id
