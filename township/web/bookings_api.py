"""The booking API the district calls server to server (issue 6 contract): book a citizen's
home visit, move it, cancel it. JSON under /api/ (no CSRF, no session); the district's key in
``Authorization: Bearer``. The rules live in ``township.bookings``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.params import FromPath

from township.bookings import BookingDesk, Placement, authenticate_district
from township.errors import BookingInvalid
from township.read_model import district_rules
from township.settings import TownshipSettings
from township.visits import today_here

__all__ = ["BookingCreate", "BookingMove", "BookingCancel", "BookingRead", "CancelRead", "ROUTES"]

VisitId = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
CaseId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Period = Annotated[str, msgspec.Meta(max_length=8)]


class BookingCreate(msgspec.Struct, frozen=True):
    """The district's documents of a citizen's booking and the period chosen."""

    case: dict[str, Any]
    events: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1, max_length=20)]
    visit_id: VisitId
    day: date
    period: Period


class BookingMove(msgspec.Struct, frozen=True):
    """Another period for a booked visit."""

    case_id: CaseId
    day: date
    period: Period


class BookingCancel(msgspec.Struct, frozen=True):
    """A booked visit called off, and why."""

    case_id: CaseId
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class BookingRead(msgspec.Struct, frozen=True):
    """Where the visit is scheduled."""

    status: str
    visit_id: str
    day: date
    period: str
    staff_name: str
    case_number: str


class CancelRead(msgspec.Struct, frozen=True):
    """The visit is cancelled."""

    status: str = "cancelled"


_B = TypeVar("_B")


def _today(state: State) -> date:
    """Today, or what a test sets as ``state.visit_today`` (a callable), as the console does."""
    clock: Callable[[], date] | None = state.get("visit_today")
    return clock() if clock is not None else today_here()


def _desk(state: State, authorization: str | None) -> BookingDesk:
    """The booking desk, once the caller proved to be the district."""
    settings: TownshipSettings = state.settings
    server = state.couch()
    authenticate_district(server, settings.code, authorization)
    return BookingDesk(state.sessions, server, settings.code, settings.case_database,
                       state.writer, district_rules(server)[0], _today(state))  # fmt: skip


def _decode(raw: bytes, shape: type[_B]) -> _B:
    try:
        return msgspec.json.decode(raw, type=shape)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BookingInvalid(f"请求格式有误: {exc}") from None


def _answer(placed: Placement) -> Response[BookingRead]:
    read = BookingRead(status="scheduled", visit_id=placed.visit_id, day=placed.day,
                       period=placed.period, staff_name=placed.staff_name,
                       case_number=placed.case_number)  # fmt: skip
    return Response(read, status_code=201 if placed.created else 200)


@post("/api/v1/visit-bookings", status_code=201)
async def book_visit(request: Request) -> Response[BookingRead]:  # type: ignore[type-arg]
    """Take a free slot of the chosen period for the district's booking (201; 200 if already
    scheduled; 409 if the period is full)."""
    state = request.app.state
    raw = await request.body()
    authorization = request.headers.get("authorization")

    def run() -> Placement:
        desk = _desk(state, authorization)
        body = _decode(raw, BookingCreate)
        return desk.book(body.case, body.events, body.visit_id, body.day, body.period)

    return _answer(await asyncio.to_thread(run))


@post("/api/v1/visit-bookings/{visit_id:str}/move", status_code=201)
async def move_visit(request: Request, visit_id: FromPath[str]) -> Response[BookingRead]:  # type: ignore[type-arg]
    """Move a booked visit to a free slot of another period (the old slot is kept if none)."""
    state = request.app.state
    raw = await request.body()
    authorization = request.headers.get("authorization")

    def run() -> Placement:
        desk = _desk(state, authorization)
        body = _decode(raw, BookingMove)
        return desk.move(visit_id, body.case_id, body.day, body.period)

    return _answer(await asyncio.to_thread(run))


@post("/api/v1/visit-bookings/{visit_id:str}/cancel", status_code=200)
async def cancel_visit(request: Request, visit_id: FromPath[str]) -> CancelRead:  # type: ignore[type-arg]
    """Cancel a booked visit: ``visit_cancelled`` written, its slot free at once."""
    state = request.app.state
    raw = await request.body()
    authorization = request.headers.get("authorization")

    def run() -> None:
        desk = _desk(state, authorization)
        body = _decode(raw, BookingCancel)
        desk.cancel(visit_id, body.case_id, body.reason)

    await asyncio.to_thread(run)
    return CancelRead()


ROUTES = [book_visit, move_visit, cancel_visit]
