"""A citizen books a home visit on a phone, in Chromium (issue 6's end-to-end).

A district and a township pouchdb-server set up by sync.topology, the real township node (its
staff console and booking API, its projection every 0.3 s) and the real district app, both
served by uvicorn; the district's background loop runs (every 0.5 s here instead of 10 s) so it
projects the ``district`` database and reconciles bookings on its own. The township's staff
offer slots on their calendar and publish the availability, which replicates up.

Two browser contexts: the citizen on a phone-sized viewport (no account) and a township staff
member at the console. The citizen books a visit on ``/visit`` and gets a code, looks it up on
``/visit/lookup`` (a wrong phone is refused), moves it (the old period's free count goes back
up), cancels it (the slot is free again at once) and books again; staff accept the case, record
the visit done and complete it; the citizen rates the visit with the booking code and follows
the case on ``/progress``, which shows its state and nothing personal. Every citizen page must
fit the phone's width and use large type.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

import central.app
from central.app import create_app
from central.db import make_engine, make_sessionmaker, migrate
from central.services import hierarchy, outbox
from central.services.nodes import register_node
from central.settings import Settings
from core.calendar import WorkCalendar
from core.cases import local_date
from sync.couch import connect, couch_errors, save_document
from sync.devserver import PouchServer
from sync.topology import setup_district
from tests.factories import resident_id
from tests.servers import (
    join_district,
    publish_item,
    serve,
    staff_account,
    stop,
)
from tests.waiting import poll
from township import db as township_db
from township.app import create_app as create_township_app
from township.bookings import node_doc_id
from township.settings import TownshipSettings
from township.visits import Slot, publish_availability, set_offers, working_days

pytestmark = pytest.mark.e2e

DISTRICT = "500109000000"
T = "500109102000"
A = "500109102001"
VILLAGE = "示例村"
HARDSHIP = "500109DW0004"  # 困难党员帮扶申请: township-handled, door-to-door for the elderly…
ITEM_NAME = "困难党员帮扶申请"
STAFF, STAFF_NAME, STAFF_PASSWORD = "staff_t", "王五", "sanji-staff-2026"
OTHER, OTHER_NAME = "staff_u", "赵六"
PHONE, PHONE_TYPED = "13800138000", "138 0013 8000"
PERSON = "张奶奶"
ADDRESS = "示例村3组12号"
PHONE_VIEWPORT = {"width": 390, "height": 844}


PERSON_ID = resident_id("50010919400101123")


def _has(server_url: str, db: str, doc_id: str) -> bool:
    with couch_errors():
        return connect(server_url)[db].get(doc_id) is not None


@dataclass
class Network:
    """The district app and the township node, running; the days the township offers."""

    district: str
    node: str
    days: list[date]
    """The first two working days after today: day 0 offers one slot in the morning and one
    in the afternoon, day 1 two slots in the morning."""


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with (
        pytest.MonkeyPatch.context() as patch,
        PouchServer() as district,
        PouchServer() as township,
    ):
        # The district's background loop (projection, reconciliation) every 0.5 s, not 10 s.
        patch.setattr(central.app, "BACKGROUND_INTERVAL", 0.5)
        d = connect(district.url)
        setup_district(district.url)
        database_url = f"sqlite:///{tmp_path_factory.mktemp('district') / 'district.sqlite'}"
        migrate(database_url)
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            hierarchy.add_unit(session, DISTRICT, "北碚区")
            hierarchy.add_unit(session, T, "澄江镇")
            hierarchy.add_unit(session, A, VILLAGE)
        outbox.flush(sessions, lambda: d)  # the units into the directory
        save_document(d["directory"], staff_account(STAFF, STAFF_NAME, STAFF_PASSWORD, T))
        publish_item(district.url, HARDSHIP)
        assert join_district(district, township.url, T).villages == [A]
        poll(lambda: _has(township.url, "directory", f"account:{STAFF}"), "the staff account")

        township_url = f"sqlite:///{tmp_path_factory.mktemp('township') / 'township.sqlite'}"
        township_db.migrate(township_url)
        township_engine = make_engine(township_url)
        township_sessions = make_sessionmaker(township_engine)
        today = local_date(datetime.now(UTC))
        calendar = WorkCalendar()
        days = [day for day in working_days(calendar, today, 5) if day > today][:2]
        crew = {STAFF: STAFF_NAME, OTHER: OTHER_NAME}
        set_offers(township_sessions, calendar, today, crew, days,
                   {Slot(days[0], "am", STAFF), Slot(days[0], "pm", STAFF),
                    Slot(days[1], "am", STAFF), Slot(days[1], "am", OTHER)})  # fmt: skip
        publish_availability(township_sessions, connect(township.url)["township"], T, days)
        for day in days:
            doc_id = f"visit_availability:{T}:{day.isoformat()}"
            poll(lambda i=doc_id: _has(district.url, "district", i), "the availability upward")

        node_settings = TownshipSettings(T, township.url, database_url=township_url,
                                         project_every=0.3)  # fmt: skip
        node, node_thread, node_url = serve(create_township_app(node_settings))
        try:
            with sessions() as session:  # where the district reaches the node, with its key
                register_node(session, T, node_url)
            outbox.flush(sessions, lambda: d)
            poll(lambda: _has(township.url, "directory", node_doc_id(T)), "the node's key")
            app = create_app(Settings(database_url=database_url, couchdb_url=district.url))
            web, web_thread, web_url = serve(app)
            try:
                yield Network(web_url, node_url, days)
            finally:
                stop(web, web_thread)
        finally:
            stop(node, node_thread)
            engine.dispose()
            township_engine.dispose()
        district.check_alive()
        township.check_alive()


# --- helpers ------------------------------------------------------------------------------------


def _fits_the_phone(page: Page) -> None:
    """The page needs no sideways scrolling and its type is large enough for a phone.

    On a mobile viewport Chromium widens ``window.innerWidth`` to fit content that is too wide
    (it zooms out), so both widths are compared with the phone's own width as well.
    """
    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    phone = PHONE_VIEWPORT["width"]
    assert scroll <= inner <= phone, f"{page.url} scrolls sideways: {scroll} px, {inner} px"
    body = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    assert body >= 16, f"{page.url}: body text is {body} px"
    smallest = page.evaluate(
        """() => Math.min(999, ...[...document.querySelectorAll(
               'input:not([type=radio]):not([type=hidden]), select, textarea, button, .button')]
             .filter(e => e.offsetParent !== null)
             .map(e => parseFloat(getComputedStyle(e).fontSize)))"""
    )
    assert smallest >= 16, f"{page.url}: a form control's text is {smallest} px"
    tiny = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(e => e.offsetParent !== null && [...e.childNodes].some(
                 n => n.nodeType === 3 && n.textContent.trim()))
             .filter(e => parseFloat(getComputedStyle(e).fontSize) < 16)
             .map(e => e.tagName + ' ' + e.textContent.trim().slice(0, 20))"""
    )
    assert not tiny, f"{page.url}: text under 16 px: {tiny}"


def _reload_until(page: Page, url: str, ready: Callable[[], bool], what: str) -> None:
    """Load ``url`` again until ``ready()`` (replication and the background loops run on their
    own)."""
    deadline = time.monotonic() + 20
    page.goto(url)
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(250)
        page.goto(url)


def _choice(page: Page, slot: str) -> Any:
    """The label of period ``slot`` (``day|am``) on a periods page."""
    return page.locator("label.choice", has=page.locator(f'input[name="slot"][value="{slot}"]'))


def _free_text(free: int) -> str:
    return f"还可约 {free} 个" if free else "已约满"


def _fill_the_form(page: Page, url: str) -> None:
    """Step 1 of booking: the service, the village and address, who and why, a phone."""
    page.goto(f"{url}/visit")
    expect(page.get_by_role("heading", name="预约上门服务")).to_be_visible()
    _fits_the_phone(page)
    page.get_by_label("要办理的事项").select_option(HARDSHIP)
    page.get_by_label("所在村(社区)").select_option(A)
    page.get_by_label("详细住址").fill(ADDRESS)
    page.get_by_label("姓名").fill(PERSON)
    page.get_by_label("身份证号码").fill(PERSON_ID)
    page.locator('input[name="qualification"][value="elderly"]').check()
    page.get_by_label("情况说明").fill("八十六岁, 行走不便")
    page.get_by_label("联系电话").fill(PHONE_TYPED)
    page.get_by_role("button", name="下一步: 选择时间").click()
    page.wait_for_url(f"{url}/visit/periods")
    expect(page.get_by_role("heading", name="选择上门时间")).to_be_visible()


def _book(page: Page, url: str, slot: str) -> tuple[str, str]:
    """Pick ``slot`` on the periods page and confirm; return the booking code and case number."""
    _fits_the_phone(page)
    page.locator(f'input[name="slot"][value="{slot}"]').check()
    page.get_by_role("button", name="下一步").click()
    page.wait_for_url(f"{url}/visit/confirm")
    expect(page.get_by_role("heading", name="请核对预约")).to_be_visible()
    summary = page.locator("dl")
    expect(summary).to_contain_text(ITEM_NAME)
    expect(summary).to_contain_text(PERSON)
    expect(summary).to_contain_text(PHONE_TYPED)  # as typed
    _fits_the_phone(page)
    page.get_by_role("button", name="确认预约").click()
    expect(page.get_by_role("heading", name="预约成功")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("预约成功")
    code = page.locator("#booking-code").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", code), code
    number = page.locator("dt:has-text('办件编号') + dd").inner_text().strip()
    assert number, "the done page shows no case number"
    _fits_the_phone(page)
    return code, number


def _look_up(page: Page, url: str, code: str, phone: str) -> None:
    page.goto(f"{url}/visit/lookup")
    _fits_the_phone(page)
    page.get_by_label("预约码").fill(code)
    page.get_by_label("预约时留的联系电话").fill(phone)
    page.get_by_role("button", name="查询").click()


# --- the test -------------------------------------------------------------------------------------


def test_a_citizen_books_moves_cancels_rates_and_follows_a_visit_on_a_phone(
    browser: Browser, net: Network
) -> None:
    phone = browser.new_context(
        locale="zh-CN", viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True,
        has_touch=True,
    )  # fmt: skip
    console = browser.new_context(locale="zh-CN")
    try:
        citizen, staff = phone.new_page(), console.new_page()
        for p in (citizen, staff):
            p.set_default_timeout(10_000)
        _flow(citizen, staff, net)
    finally:
        phone.close()
        console.close()


def _flow(citizen: Page, staff: Page, net: Network) -> None:
    d, n = net.district, net.node
    first_am = f"{net.days[0].isoformat()}|am"
    first_pm = f"{net.days[0].isoformat()}|pm"
    second_am = f"{net.days[1].isoformat()}|am"

    # --- Book: the form, a free period (day 1's morning has two), confirm → a code. ---------
    _fill_the_form(citizen, d)
    expect(_choice(citizen, second_am)).to_contain_text(_free_text(2))
    expect(_choice(citizen, first_am)).to_contain_text(_free_text(1))
    code, number = _book(citizen, d, second_am)
    expect(citizen.locator("dl")).to_contain_text(f"{net.days[1].isoformat()} 上午")

    # --- Look it up: a wrong phone is refused plainly; code + phone find it. -----------------
    citizen.context.clear_cookies()  # another visit, later: nothing remembered
    _look_up(citizen, d, code, "13900000000")
    expect(citizen.get_by_role("alert")).to_have_text("预约码或联系电话不正确")
    expect(citizen.locator("#booking-status")).to_have_count(0)
    _fits_the_phone(citizen)
    _look_up(citizen, d, code.lower().replace("-", ""), PHONE_TYPED)
    citizen.wait_for_url(f"{d}/visit/booking")
    expect(citizen.locator(".code")).to_have_text(code)
    expect(citizen.locator("#booking-status")).to_have_text("已预约成功")
    expect(citizen.locator("#booking-time")).to_have_text(f"{net.days[1].isoformat()} 上午")
    expect(citizen.locator("main")).to_contain_text(ITEM_NAME)
    expect(citizen.locator("main")).to_contain_text(number)
    for private in (PERSON, PERSON_ID, ADDRESS):
        expect(citizen.locator("main")).not_to_contain_text(private)
    _fits_the_phone(citizen)

    # --- Move it to day 0's afternoon: day 1's morning gets its slot back. -------------------
    move_url = f"{d}/visit/booking/move"
    _reload_until(
        citizen, move_url, lambda: _free_text(1) in _choice(citizen, second_am).inner_text(),
        "the booked morning to show one slot left",
    )  # fmt: skip
    expect(citizen.locator("main")).to_contain_text("现在预约的时间")
    _fits_the_phone(citizen)
    citizen.locator(f'input[name="slot"][value="{first_pm}"]').check()
    citizen.get_by_role("button", name="下一步").click()
    expect(citizen.get_by_role("status")).to_contain_text("预约成功")
    expect(citizen.locator("#booking-time")).to_have_text(f"{net.days[0].isoformat()} 下午")
    expect(citizen.locator("#booking-status")).to_have_text("已预约成功")
    _fits_the_phone(citizen)
    _reload_until(
        citizen, move_url,
        lambda: _free_text(2) in _choice(citizen, second_am).inner_text()
        and _free_text(0) in _choice(citizen, first_pm).inner_text(),
        "the old morning's slot back (2 free) and the afternoon taken",
    )  # fmt: skip

    # --- Cancel it: the slot is free again at once. ------------------------------------------
    citizen.goto(f"{d}/visit/booking")
    citizen.once("dialog", lambda dialog: dialog.accept())  # 确定取消这次上门预约吗?
    citizen.get_by_role("button", name="取消预约").click()
    expect(citizen.get_by_role("status")).to_contain_text("预约已取消, 该时段已释放")
    expect(citizen.locator("#booking-status")).to_have_text("已取消")
    expect(citizen.get_by_role("button", name="取消预约")).to_have_count(0)
    expect(citizen.get_by_role("link", name="改期")).to_have_count(0)
    _fits_the_phone(citizen)

    # --- Book again, on day 0's morning; the cancelled afternoon shows free. -----------------
    _fill_the_form(citizen, d)
    _reload_until(
        citizen, f"{d}/visit/periods",
        lambda: _free_text(1) in _choice(citizen, first_pm).inner_text(),
        "the cancelled afternoon to be free again",
    )  # fmt: skip
    code, number = _book(citizen, d, first_am)
    expect(citizen.locator("dl")).to_contain_text(f"{net.days[0].isoformat()} 上午")
    expect(citizen.locator("dl")).to_contain_text(STAFF_NAME)

    # --- The township's staff: accept the case, record the visit done, complete it. ---------
    staff.goto(f"{n}/login")
    staff.get_by_label("登录名").fill(STAFF)
    staff.get_by_label("密码").fill(STAFF_PASSWORD)
    staff.get_by_role("button", name="登录").click()
    expect(staff.locator("#me")).to_have_text(STAFF_NAME)
    case_url = f"{n}/cases/{number}"
    accept = staff.locator("#form-accept")
    _reload_until(staff, case_url, accept.is_visible, "the booked case at the township")
    accept.get_by_role("button", name="受理").click()
    expect(staff.locator(".flash", has_text="已受理")).to_be_visible()
    expect(staff.locator("#status")).to_contain_text("已受理")

    visit_url = f"{n}/cases/{number}/visit"
    record = staff.locator('form[action$="/visit/record"]')
    _reload_until(staff, visit_url, lambda: record.count() == 1, "the scheduled visit")
    visit_row = staff.locator("#visits tr[data-visit]")
    expect(visit_row).to_contain_text(net.days[0].isoformat())
    expect(visit_row).to_contain_text(STAFF_NAME)
    record.locator('select[name="outcome"]').select_option("done")
    record.locator('input[name="note"]').fill("已入户核实困难情况")
    record.get_by_role("button", name="记录上门结果").click()
    expect(staff.locator(".flash", has_text="已记录上门结果")).to_be_visible()

    staff.goto(case_url)
    complete = staff.locator("#form-complete")
    complete.locator('textarea[name="result"]').fill("同意帮扶, 发放慰问金 800 元")
    complete.locator('select[name="delivery"]').select_option("at_home")
    complete.get_by_role("button", name="办结").click()
    expect(staff.locator(".flash", has_text="已办结")).to_be_visible()
    expect(staff.locator("#status")).to_contain_text("已办结")

    # --- The citizen: the booking shows the visit done; rate it with the booking code. -------
    _reload_until(
        citizen, f"{d}/visit/booking",
        lambda: citizen.locator("#booking-status").inner_text() == "已上门服务",
        "the district to follow the recorded visit",
    )  # fmt: skip
    _fits_the_phone(citizen)
    citizen.get_by_role("link", name="评价本次上门服务").click()
    citizen.wait_for_url(f"{d}/visit/rate")
    expect(citizen.get_by_role("heading", name="评价上门服务")).to_be_visible()
    expect(citizen.get_by_label("预约码")).to_have_value(code.replace("-", ""))  # remembered
    _fits_the_phone(citizen)
    citizen.get_by_label("预约码").fill(code)
    citizen.get_by_label("预约时留的联系电话").fill(PHONE_TYPED)
    citizen.locator("label.choice", has_text="非常满意").click()
    citizen.get_by_label("意见和建议").fill("工作人员很耐心, 谢谢")
    citizen.get_by_role("button", name="提交评价").click()
    expect(citizen.locator("#rating-done")).to_be_visible()
    _fits_the_phone(citizen)
    # Once per booking.
    citizen.goto(f"{d}/visit/rate")
    citizen.get_by_label("预约码").fill(code)
    citizen.get_by_label("预约时留的联系电话").fill(PHONE)
    citizen.locator("label.choice", has_text="满意").first.click()
    citizen.get_by_role("button", name="提交评价").click()
    expect(citizen.get_by_role("alert")).to_contain_text("已经评价过了")
    _fits_the_phone(citizen)

    # The rating is an event on the case: it reaches the township's console.
    ratings = staff.locator("#ratings")
    _reload_until(
        staff, case_url, lambda: ratings.count() == 1 and "谢谢" in ratings.inner_text(),
        "the citizen's rating at the township",
    )  # fmt: skip
    expect(ratings).to_contain_text("非常满意")

    # --- Case progress by number + phone: its state, nothing personal. -----------------------
    citizen.goto(f"{d}/progress")
    _fits_the_phone(citizen)
    citizen.get_by_label("办件编号").fill(number)
    citizen.get_by_label("申请时留的联系电话").fill("13900000000")
    citizen.get_by_role("button", name="查询").click()
    expect(citizen.get_by_role("alert")).to_contain_text("没有找到这个办件")
    expect(citizen.locator("#progress")).to_have_count(0)

    deadline = time.monotonic() + 20
    while True:  # each look-up is a POST: paced, so as not to meet the public rate limit
        citizen.get_by_label("办件编号").fill(number)
        citizen.get_by_label("申请时留的联系电话").fill(PHONE_TYPED)
        with citizen.expect_navigation():
            citizen.get_by_role("button", name="查询").click()
        shown = citizen.locator("#progress")
        if shown.count() == 1 and "已办结" in shown.inner_text():
            break
        assert time.monotonic() < deadline, "timed out waiting for the case completed"
        citizen.wait_for_timeout(500)
    found = citizen.locator("#progress")
    expect(found).to_contain_text(number)
    expect(found).to_contain_text(ITEM_NAME)
    expect(found).to_contain_text("办结日期")
    expect(found).to_contain_text(f"{net.days[0].isoformat()} 上午")
    main = citizen.locator("main")
    for private in (PERSON, PERSON_ID, ADDRESS, "3组12号", STAFF_NAME):
        expect(main).not_to_contain_text(private)
    _fits_the_phone(citizen)
