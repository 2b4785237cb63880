"""The citizens' pages (issue 6): book a home visit, look it up, move or cancel it, and follow
a case's progress — no account, Chinese, made for a cheap phone.

The booking form travels between its steps in the signed, encrypted session cookie (nothing is
written before the citizen confirms); a looked-up booking is remembered there too, so the
phone is typed once. Every form carries the CSRF token like the admin pages. These pages show
the citizen only their own booking, and the progress page only a case's state — never names,
ID numbers or addresses.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from central.db.models import Unit
from central.services.bookings import (
    BookingForm,
    BookingService,
    BookingStatus,
    PeriodTaken,
    TownshipUnavailable,
    district_villages,
    door_to_door_items,
    progress,
)
from core.catalogue import Eligibility
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.intake import new_intake_key
from core.visits import PERIODS

__all__ = ["handlers"]

DRAFT = "visit"
LOOKED_UP = "booking"
QUALIFICATIONS = tuple(Eligibility)
_FIELDS = BookingForm.__struct_fields__
_MAX_FIELD = 300


def _service(request: Request) -> BookingService:  # type: ignore[type-arg]
    service: BookingService = request.app.state.bookings
    return service


def _page(name: str, status_code: int = 200, **context: Any) -> Template:
    return Template(
        name,
        context={"PERIODS": PERIODS, "Eligibility": Eligibility, **context},
        status_code=status_code,
    )


def _errors(exc: DomainError) -> dict[str, str]:
    if isinstance(exc, InvalidInput):
        found: dict[str, str] = {}
        for e in exc.errors:
            found.setdefault(e.field, e.message)
        return found
    return {"form": str(exc)}


def show_code(code: str) -> str:
    """A booking code as printed: two groups of four."""
    return f"{code[:4]}-{code[4:]}"


def _draft(request: Request) -> dict[str, Any] | None:  # type: ignore[type-arg]
    draft = request.session.get(DRAFT) if request.session else None
    return draft if isinstance(draft, dict) and draft.get("form") else None


def _form_of(draft: dict[str, Any]) -> BookingForm:
    return BookingForm(**{k: str(v) for k, v in draft["form"].items() if k in _FIELDS})


def _parse_slot(text: str) -> tuple[date, str] | None:
    try:
        day, period = str(text).split("|", 1)
        return (date.fromisoformat(day), period) if period in PERIODS else None
    except ValueError:
        return None


async def _choices(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    service = _service(request)

    def load() -> dict[str, Any]:
        items = door_to_door_items(service.catalogue())
        with service.sessions() as session:
            villages = [(t.code, t.name, [(v.code, v.name) for v in vs])
                        for t, vs in district_villages(session)]  # fmt: skip
        return {"items": items, "townships": villages}

    return await asyncio.to_thread(load)


# --- booking ---------------------------------------------------------------------------------


@get("/visit")
async def visit_form(request: Request) -> Template:  # type: ignore[type-arg]
    """Step 1: the service, the village and address, who the visit is for, a phone."""
    draft = _draft(request)
    values = draft["form"] if draft else {}
    return _page("public_visit.html", values=values, errors={}, **await _choices(request))


@post("/visit")
async def visit_submit(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Check step 1 and go on to the periods."""
    posted = await request.form()
    values = {k: str(posted.get(k, ""))[:_MAX_FIELD].strip() for k in _FIELDS}
    try:
        await asyncio.to_thread(_service(request).check, BookingForm(**values))
    except InvalidInput as exc:
        return _page("public_visit.html", status_code=400, values=values,
                     errors=_errors(exc), **await _choices(request))  # fmt: skip
    draft = _draft(request) or {}
    request.session[DRAFT] = {"form": values, "key": draft.get("key") or new_intake_key()}
    return Redirect("/visit/periods")


async def _periods_page(
    request: Request,  # type: ignore[type-arg]
    township: str,
    action: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    days = await asyncio.to_thread(_service(request).days, township)
    return _page("public_periods.html", status_code=status_code, days=days, action=action,
                 **context)  # fmt: skip


@get("/visit/periods")
async def visit_periods(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Step 2: the township's free periods in the booking window."""
    draft = _draft(request)
    if draft is None:
        return Redirect("/visit")
    township = draft["form"]["village"][:9] + "000"
    return await _periods_page(request, township, "/visit/periods", chosen=draft.get("slot"))


@post("/visit/periods")
async def visit_choose(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Remember the chosen period and show the summary."""
    draft = _draft(request)
    if draft is None:
        return Redirect("/visit")
    posted = await request.form()
    slot = str(posted.get("slot", ""))
    if _parse_slot(slot) is None:
        township = draft["form"]["village"][:9] + "000"
        return await _periods_page(request, township, "/visit/periods", status_code=400,
                                   error="请选择一个可预约的时段")  # fmt: skip
    request.session[DRAFT] = {**draft, "slot": slot}
    return Redirect("/visit/confirm")


@get("/visit/confirm")
async def visit_confirm(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Step 3: what will be booked."""
    draft = _draft(request)
    chosen = _parse_slot(draft.get("slot", "")) if draft else None
    if draft is None or chosen is None:
        return Redirect("/visit")
    service = _service(request)
    checked = await asyncio.to_thread(service.check, _form_of(draft))
    return _page("public_confirm.html", checked=checked, day=chosen[0], period=chosen[1],
                 phone=draft["form"]["phone"])  # fmt: skip


@post("/visit/confirm")
async def visit_book(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Book it: the code at once, scheduled or requested."""
    draft = _draft(request)
    chosen = _parse_slot(draft.get("slot", "")) if draft else None
    if draft is None or chosen is None:
        return Redirect("/visit")
    township = draft["form"]["village"][:9] + "000"
    try:
        outcome = await asyncio.to_thread(
            _service(request).create, _form_of(draft), chosen[0], chosen[1], draft["key"]
        )
    except InvalidInput as exc:
        if "period" in _errors(exc):
            return await _periods_page(request, township, "/visit/periods", status_code=400,
                                       error=_errors(exc)["period"])  # fmt: skip
        return _page("public_visit.html", status_code=400, values=draft["form"],
                     errors=_errors(exc), **await _choices(request))  # fmt: skip
    if not outcome.booked or outcome.booking is None:
        request.session[DRAFT] = {"form": draft["form"], "key": new_intake_key()}
        return await _periods_page(request, township, "/visit/periods", status_code=409,
                                   error=outcome.message)  # fmt: skip
    booking = outcome.booking
    request.session.pop(DRAFT, None)
    request.session[LOOKED_UP] = [booking.code, booking.phone]
    return _page("public_done.html", booking=booking, code=show_code(booking.code),
                 message=outcome.message, requested=booking.status == "requested")  # fmt: skip


# --- look-up, move, cancel ----------------------------------------------------------------------


@get("/visit/lookup")
async def lookup_form(request: Request) -> Template:  # type: ignore[type-arg]
    """Find a booking by its code and phone."""
    return _page("public_lookup.html", values={}, error="")


@post("/visit/lookup")
async def lookup(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Check code and phone; remember the booking for this browser."""
    posted = await request.form()
    code = str(posted.get("code", ""))[:20]
    phone = str(posted.get("phone", ""))[:30]
    try:
        booking = await asyncio.to_thread(_service(request).find, code, phone)
    except NotFound as exc:
        return _page("public_lookup.html", status_code=404, values={"code": code},
                     error=str(exc))  # fmt: skip
    request.session[LOOKED_UP] = [booking.code, booking.phone]
    return Redirect("/visit/booking")


def _looked_up(request: Request) -> tuple[str, str] | None:  # type: ignore[type-arg]
    held = request.session.get(LOOKED_UP) if request.session else None
    if isinstance(held, list) and len(held) == 2:
        return str(held[0]), str(held[1])
    return None


async def _booking_page(
    request: Request, status_code: int = 200, **context: Any
) -> Template | Redirect:  # type: ignore[type-arg]
    held = _looked_up(request)
    if held is None:
        return Redirect("/visit/lookup")
    service = _service(request)

    def load() -> tuple[Any, str]:
        booking = service.find(*held)
        with service.sessions() as session:
            village = session.get(Unit, booking.village)
            return booking, village.name if village else booking.village

    try:
        booking, village = await asyncio.to_thread(load)
    except NotFound:
        request.session.pop(LOOKED_UP, None)
        return Redirect("/visit/lookup")
    context.setdefault("message", "")
    return _page("public_booking.html", status_code=status_code, booking=booking,
                 code=show_code(booking.code), village=village, Status=BookingStatus,
                 live=booking.status in ("requested", "scheduled"), **context)  # fmt: skip


@get("/visit/booking")
async def booking_page(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """The looked-up booking: period, status, and the move and cancel buttons."""
    return await _booking_page(request)


@get("/visit/booking/move")
async def move_form(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Pick another period."""
    held = _looked_up(request)
    if held is None:
        return Redirect("/visit/lookup")
    booking = await asyncio.to_thread(_service(request).find, *held)
    return await _periods_page(request, booking.township, "/visit/booking/move",
                               current=(booking.day, booking.period))  # fmt: skip


@post("/visit/booking/move")
async def move(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Move the visit through the township; nothing changes if it does not answer."""
    held = _looked_up(request)
    if held is None:
        return Redirect("/visit/lookup")
    posted = await request.form()
    chosen = _parse_slot(str(posted.get("slot", "")))
    service = _service(request)
    booking = await asyncio.to_thread(service.find, *held)
    if chosen is None:
        return await _periods_page(request, booking.township, "/visit/booking/move",
                                   status_code=400, error="请选择一个可预约的时段")  # fmt: skip
    try:
        outcome = await asyncio.to_thread(service.move, *held, chosen[0], chosen[1])
    except (InvalidInput, PeriodTaken) as exc:
        message = _errors(exc).get("period") or str(exc)
        status = 409 if isinstance(exc, Conflict) else 400
        return await _periods_page(request, booking.township, "/visit/booking/move",
                                   status_code=status, error=message,
                                   current=(booking.day, booking.period))  # fmt: skip
    except (TownshipUnavailable, Conflict) as exc:
        return await _booking_page(request, status_code=503, error=str(exc))
    return await _booking_page(request, message=outcome.message)


@post("/visit/booking/cancel")
async def cancel(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Cancel the visit (the slot is free at once); nothing changes if the township is down."""
    held = _looked_up(request)
    if held is None:
        return Redirect("/visit/lookup")
    try:
        outcome = await asyncio.to_thread(_service(request).cancel, *held)
    except (TownshipUnavailable, Conflict) as exc:
        return await _booking_page(request, status_code=503, error=str(exc))
    return await _booking_page(request, message=outcome.message)


# --- case progress ----------------------------------------------------------------------------


@get("/progress")
async def progress_form(request: Request) -> Template:  # type: ignore[type-arg]
    """Look a case up by its number and phone."""
    return _page("public_progress.html", values={}, error="", found=None)


@post("/progress")
async def progress_lookup(request: Request) -> Template:  # type: ignore[type-arg]
    """A case's state, expected date and what is missing — nothing else."""
    posted = await request.form()
    number = str(posted.get("case_number", ""))[:60].strip()
    phone = str(posted.get("phone", ""))[:30]
    service = _service(request)

    def load() -> Any:
        with service.sessions() as session:
            return progress(session, number, phone)

    try:
        found = await asyncio.to_thread(load)
    except NotFound as exc:
        return _page("public_progress.html", status_code=404, values={"case_number": number},
                     error=str(exc), found=None)  # fmt: skip
    return _page("public_progress.html", values={"case_number": number}, error="", found=found)


handlers = [
    visit_form,
    visit_submit,
    visit_periods,
    visit_choose,
    visit_confirm,
    visit_book,
    lookup_form,
    lookup,
    booking_page,
    move_form,
    move,
    cancel,
    progress_form,
    progress_lookup,
]
