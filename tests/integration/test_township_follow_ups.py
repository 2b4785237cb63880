"""差评 follow-ups at the township: a case completed and rated 差评 at the kiosk appears on
/follow-ups; staff write each step (回访 → 整改 → 再次评价 → 办结回访) from the case page as
``follow_up`` events in the real pouchdb-server, in order only; closed ones leave the open list,
late ones are marked, an anonymous 差评 starts at the fix, a 好评 opens nothing. The list's query
also runs on PostgreSQL.

The console and CouchDB fixtures and the helpers are those of ``test_township_actions``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.calendar import WorkCalendar
from core.cases import Case, FollowUpStep, Origin, Rated, RatingChannel, event_to_doc, new_event
from core.clock import HlcClock
from core.fold import CaseStatus
from sync.couch import save_document
from sync.sql import make_engine, make_sessionmaker
from tests.integration import test_township_actions as base
from tests.integration.test_township_actions import (
    A,
    T,
    _act,
    _arrive,
    _events,
    _flash,
    _fold,
    _open,
    _page,
    _today,
)
from tests.sql import throwaway_database
from tests.waiting import poll
from township import db as township_db
from township.actions import FOLLOW_UP_WORKING_DAYS
from township.read_model import project_township
from township.web.follow_ups import Shown, list_follow_ups

couch = base.couch  # the same fixtures, built afresh for this module
console = base.console

KIOSK = Origin(A, "k7x2m9qa")
_counter = iter(range(500_000, 600_000))


def _rate(
    couch: Any, case: Case, level: int, *, anonymous: bool = False, text: str = "",
    when: datetime | None = None,
) -> str:  # fmt: skip
    """A `rated` event as the village kiosk writes it, saved where replication leaves it."""
    when = when or datetime.now(UTC)
    stamp = HlcClock(KIOSK.key, lambda: int(datetime.now(UTC).timestamp() * 1000)).tick(
        after=_fold(couch, case).last_stamp
    )
    rated = Rated(level=level, channel=RatingChannel.KIOSK, text=text, anonymous=anonymous)
    event = new_event(case, rated, origin=KIOSK, counter=next(_counter), hlc=stamp,
                      wall_time=when, author="jg.v201")  # fmt: skip
    save_document(couch["township"], event_to_doc(event))
    return event.id


def _completed(client: TestClient[Litestar], couch: Any, **opened: Any) -> Case:
    case = _arrive(client, couch, _open(**opened))
    _act(client, case, "accept")
    _act(client, case, "complete", result="已发放", delivery="village_agent")
    return case


def _list(client: TestClient[Litestar], show: str = "open") -> str:
    answer = client.get("/follow-ups", params={"show": show})
    assert answer.status_code == 200, answer.text
    return answer.text


def _row(page: str, case: Case) -> str | None:
    found = re.search(rf'<tr data-case="{case.case_number}"[^>]*>(.*?)</tr>', page, re.S)
    return found[0] if found else None


def _listed(client: TestClient[Litestar], case: Case, show: str = "open") -> str:
    return poll(lambda: _row(_list(client, show), case), f"{case.case_number} on {show}")


def _step(client: TestClient[Litestar], case: Case, step: str, **fields: Any) -> str:
    """Post the case page's follow-up form; the case page it redirects to."""
    page = _page(client, case)
    # The follow-up form's token, or another form's (as one left open elsewhere would post).
    version = re.search(r'id="form-follow-up".*?name="version" value="([^"]*)"', page, re.S)
    version = version or re.search(r'name="version" value="([^"]*)"', page)
    assert version, "the case page shows no form"
    answer = client.post(
        f"/cases/{case.case_number}/follow-up",
        data={"step": step, "version": version[1].replace("&#43;", "+"), **fields,
              "_csrf_token": client.cookies[base.CSRF]},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/cases/{case.case_number}#follow-up"
    return _page(client, case)


def _follow_ups(couch: Any, case: Case) -> list[dict[str, Any]]:
    found = [e for e in _events(couch, case) if e["kind"] == "follow_up"]
    return sorted(found, key=lambda e: e["hlc"])


def test_a_bad_rating_is_followed_up_step_by_step(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _completed(console, couch)
    _rate(couch, case, 1, text="等了太久，态度不好")
    row = _listed(console, case)
    default = WorkCalendar().add_working_days(_today(), FOLLOW_UP_WORKING_DAYS).day
    assert "非常不满意" in row and "等了太久，态度不好" in row and _today().isoformat() in row
    assert default.isoformat() in row and "尚未开始" in row and 'class="late"' not in row
    assert "?step=call_back#follow-up" in row
    page = _page(console, case)
    assert 'id="form-follow-up"' in page and "差评待回访整改" in page

    # Out of order: nothing written.
    for step in ("fix", "re_rated", "closed"):
        refused = _step(console, case, step, note="先整改", level="4" if step == "re_rated" else "")
        assert "须按" in _flash(refused) and "下一步应为“回访”" in _flash(refused), step
    assert _follow_ups(couch, case) == []
    assert "请填写回访情况" in _flash(_step(console, case, "call_back", note=" "))
    assert "评价等级" in _flash(_step(console, case, "call_back", note="已回访", level="3"))

    page = _step(console, case, "call_back", note="已电话回访，群众反映窗口等候时间长")
    assert "已记录差评“回访”" in _flash(page)
    [call] = _follow_ups(couch, case)
    payload = {k: v for k, v in call["payload"].items() if v not in (None, "")}
    assert payload == {"kind": "follow_up", "step": "call_back", "deadline": default.isoformat(),
                       "note": "已电话回访，群众反映窗口等候时间长"}  # fmt: skip
    assert call["author"] == "zhang.t" and call["origin"]["unit"] == T
    assert call["village"] == A and call["township"] == T
    state = _fold(couch, case)
    assert state.follow_up_open and state.follow_up_deadline == default
    assert state.status is CaseStatus.COMPLETED

    refused = _step(console, case, "call_back", note="再打一次")
    assert "下一步应为“整改”" in _flash(refused)
    refused = _step(console, case, "fix", note="已整改", deadline=_today().isoformat())
    assert "第一步设定" in _flash(refused)
    _step(console, case, "fix", note="增加周二、周四下午代办专窗")
    assert "再次评价的等级" in _flash(_step(console, case, "re_rated", note="回访满意"))
    _step(console, case, "re_rated", level="4", note="群众表示满意")
    row = _listed(console, case)
    assert all(f'data-step="{s}"' in row for s in ("call_back", "fix", "re_rated"))
    assert "增加周二、周四下午代办专窗" in row and "?step=closed#follow-up" in row

    page = _step(console, case, "closed", note="办结")
    assert "已记录差评“办结回访”" in _flash(page) and 'id="form-follow-up"' not in page
    steps = [(e["payload"]["step"], e["payload"].get("level")) for e in _follow_ups(couch, case)]
    assert steps == [("call_back", None), ("fix", None), ("re_rated", 4), ("closed", None)]
    state = _fold(couch, case)
    assert not state.follow_up_open and not state.conflicts
    # Closed: off the open list, on the closed one; another step is refused.
    poll(lambda: _row(_list(console), case) is None, "the case off the open list")
    assert 'data-step="closed"' in _listed(console, case, "closed")
    refused = _step(console, case, "call_back", note="再回访")
    assert "没有待回访的差评" in _flash(refused) and len(_follow_ups(couch, case)) == 4


def test_a_late_follow_up_is_marked(console: TestClient[Litestar], couch: Any) -> None:
    case = _arrive(console, couch, _open())
    # Rated (at a kiosk) a month ago: ten working days have long passed, no step taken yet.
    _rate(couch, case, 2, text="材料要求说不清", when=datetime.now(UTC) - timedelta(days=30))
    row = _listed(console, case, "late")
    assert 'class="late"' in row and "已逾期" in row and "不满意" in row
    on_time = _completed(console, couch)
    _rate(couch, on_time, 2)
    _listed(console, on_time)
    late_list = _list(console, "late")
    assert _row(late_list, case) and _row(late_list, on_time) is None
    # A deadline staff set at the first step may not be in the past.
    refused = _step(console, case, "call_back", note="已回访", deadline="2020-01-01")
    assert "不能早于今天" in _flash(refused) and _follow_ups(couch, case) == []
    later = (_today() + timedelta(days=7)).isoformat()
    _step(console, case, "call_back", note="已回访", deadline=later)
    assert _follow_ups(couch, case)[0]["payload"]["deadline"] == later
    row = poll(
        lambda: (r := _row(_list(console), case)) and 'data-step="call_back"' in r and r,
        "the new deadline on the list",
    )
    assert later in row and 'class="late"' not in row


def test_an_anonymous_bad_rating_skips_the_call_back(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _completed(console, couch)
    _rate(couch, case, 1, anonymous=True, text="办事太慢")
    row = _listed(console, case)
    assert "匿名" in row and "?step=fix#follow-up" in row and "村民" not in row
    refused = _step(console, case, "call_back", note="想回访")
    assert "匿名差评无法回访" in _flash(refused) and _follow_ups(couch, case) == []
    _step(console, case, "fix", note="优化办理流程")
    _step(console, case, "closed")  # nobody to ask for a follow-up rating
    assert [e["payload"]["step"] for e in _follow_ups(couch, case)] == ["fix", "closed"]
    assert _follow_ups(couch, case)[0]["payload"]["deadline"]
    assert not _fold(couch, case).follow_up_open


def test_a_good_rating_opens_nothing(console: TestClient[Litestar], couch: Any) -> None:
    case = _completed(console, couch)
    _rate(couch, case, 5, text="很方便")
    page = poll(lambda: (p := _page(console, case)) and "非常满意" in p and p, "the rating")
    assert 'id="form-follow-up"' not in page and "差评待回访整改" not in page
    for show in ("open", "late", "closed"):
        assert _row(_list(console, show), case) is None
    assert not _fold(couch, case).follow_up_open
    # The service refuses a step too (as a form left open elsewhere would post it).
    refused = _step(console, case, "call_back", note="回访")
    assert "没有待回访的差评" in _flash(refused) and _follow_ups(couch, case) == []


# --- the list's query on both databases --------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(
    request: pytest.FixtureRequest, tmp_path: Path, couch: Any, console: TestClient[Litestar]
) -> Iterator[sessionmaker[Session]]:
    """A township database of each kind, caught up with the township database."""
    with throwaway_database(request.param, tmp_path) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        made = make_sessionmaker(engine)
        project_township(made, couch)
        yield made
        engine.dispose()


def test_the_list_on_both_databases(
    sessions: sessionmaker[Session], console: TestClient[Litestar], couch: Any
) -> None:
    case = _completed(console, couch)
    _rate(couch, case, 2, when=datetime(2026, 9, 29, 10, tzinfo=UTC))
    project_township(sessions, couch)
    calendar = WorkCalendar()
    with sessions() as session:
        items = {i.row.case_number: i for i in list_follow_ups(
            session, T, Shown.OPEN, date(2026, 10, 14), calendar)}  # fmt: skip
        item = items[case.case_number]
        # Ten working days after 29 September 2026 across the National Day break.
        assert item.due.day == date(2026, 10, 19) and not item.due_set and not item.late
        assert item.round.next_steps() == (FollowUpStep.CALL_BACK,)
        late = list_follow_ups(session, T, Shown.LATE, date(2026, 10, 20), calendar)
        assert case.case_number in {i.row.case_number for i in late}
        other = list_follow_ups(session, base.OTHER_T, Shown.OPEN, date(2026, 10, 14), calendar)
        assert other == []
