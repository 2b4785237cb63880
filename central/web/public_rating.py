"""The citizen rates a booked home visit (issue 6 item 7): ``/visit/rate``, by booking code and
phone, five levels and an optional comment; once per booking, after the visit."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, get, post
from litestar.response import Template

from central.services.bookings import BookingService
from central.services.ratings import LEVELS, rate_booking
from core.errors import DomainError, InvalidInput, NotFound
from core.visits import PERIODS

__all__ = ["handlers"]

_LOOKED_UP = "booking"  # what public.py remembers of a looked-up booking: [code, phone]


def _page(status_code: int = 200, **context: Any) -> Template:
    context.setdefault("values", {})
    context.setdefault("error", "")
    context.setdefault("errors", {})
    context.setdefault("message", "")
    return Template(
        "public_rating.html",
        context={"LEVELS": LEVELS, "PERIODS": PERIODS, **context},
        status_code=status_code,
    )


@get("/visit/rate")
async def rating_form(request: Request) -> Template:  # type: ignore[type-arg]
    """The rating form; the code is filled in when this browser looked the booking up."""
    held = request.session.get(_LOOKED_UP) if request.session else None
    code = str(held[0]) if isinstance(held, list) and len(held) == 2 else ""
    return _page(values={"code": code})


@post("/visit/rate")
async def rate(request: Request) -> Template:  # type: ignore[type-arg]
    """Record the rating as a ``rated`` event on the booking's case."""
    posted = await request.form()
    values = {k: str(posted.get(k, "")) for k in ("code", "phone", "level", "comment")}
    service: BookingService = request.app.state.bookings
    try:
        message = await asyncio.to_thread(
            rate_booking, service.sessions, service.server, values["code"], values["phone"],
            values["level"], values["comment"], service.now(),
        )  # fmt: skip
    except InvalidInput as exc:
        errors: dict[str, str] = {}
        for e in exc.errors:
            errors.setdefault(e.field, e.message)
        return _page(400, values=values, errors=errors)
    except NotFound as exc:
        return _page(404, values=values, error=str(exc))
    except DomainError as exc:
        return _page(409, values=values, error=str(exc))
    return _page(message=message)


handlers = [rating_form, rate]
