"""One case across the three tiers, in Chromium, through the real pages (issue 5's end-to-end).

A district and a township pouchdb-server set up by sync.topology (the directory and the
catalogue written at the district and replicated down), the real township node serving both
the kiosk enrolment API and the staff console (its projection every 0.3 s), and a real kiosk.
Two browser contexts: the village agent at the kiosk and a staff member at the console.

The kiosk is offline (its township link points at a closed port) while the agent opens a
door-to-door case; once the link is back the case syncs into the inbox. Staff return it with a
one-time notice, the kiosk shows it and the agent resubmits; staff accept, assign it to
themselves, offer a slot on the visit calendar, schedule and record the home visit, complete;
the kiosk shows the outcome with the visit and collects a 差评, which reaches the township's
follow-up list.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from sync.couch import connect, couch_errors, save_document
from sync.devserver import PouchServer, free_port
from sync.topology import setup_district
from sync.topology import village_database as village_db
from tests.factories import resident_id
from tests.integration.test_kiosk import AGENT, AGENT_PASSWORD, CODE, _db, _directory
from tests.servers import (
    join_district,
    publish_item,
    serve,
    staff_account,
    stop,
)
from tests.waiting import poll
from township.app import create_app as create_township_app
from township.settings import TownshipSettings
from village_node.app import create_app as create_kiosk_app
from village_node.settings import Settings, load_enrolment, save_enrolment

pytestmark = pytest.mark.e2e

T = "500109102000"
A = "500109102001"
HARDSHIP = "500109DW0004"  # 困难党员帮扶申请: township-handled, door-to-door for the elderly
PROOF = "困难情况证明"
STAFF, STAFF_NAME, STAFF_PASSWORD = "jg.li", "李静", "sanji-staff-2026"


@dataclass
class Network:
    """District and township servers, the township node and one kiosk, all running."""

    district: PouchServer
    township: PouchServer
    node: str
    kiosk: str
    kiosk_settings: Settings


@contextmanager
def kiosk_network(
    tmp_path_factory: pytest.TempPathFactory, item: str, **kiosk_options: Any
) -> Iterator[Network]:
    """District and township servers set up by sync.topology with the demo item ``item``
    published, the township node and one kiosk (``kiosk_options`` for its settings), running."""
    with PouchServer() as district, PouchServer() as township:
        d, t = connect(district.url), connect(township.url)
        setup_district(district.url)
        # Units, the agent, the kiosk's registration and the staff member.
        for doc in [*_directory(), staff_account(STAFF, STAFF_NAME, STAFF_PASSWORD, T)]:
            save_document(d["directory"], doc)
        publish_item(district.url, item)
        assert join_district(district, township.url, T).villages == [A]

        def has(db: str, doc_id: str) -> bool:
            with couch_errors():
                return t[db].get(doc_id) is not None

        poll(lambda: has("directory", f"account:{STAFF}"), "the staff account")
        poll(lambda: has("directory", f"kiosk_registration:{A}-aa11bb22"), "the registration")
        poll(lambda: has(village_db(A), "catalogue_manifest:000001"), "the catalogue")
        poll(lambda: has(village_db(A), f"account:{AGENT}"), "the agent account")
        node_settings = TownshipSettings(
            T, township.url, database_url=_db(tmp_path_factory), project_every=0.3
        )
        node, node_thread, node_url = serve(create_township_app(node_settings))
        try:
            kiosk_settings = Settings(
                tmp_path_factory.mktemp("kiosk"), sync_interval=0, **kiosk_options
            )
            kiosk, kiosk_thread, kiosk_url = serve(create_kiosk_app(kiosk_settings))
            try:
                yield Network(district, township, node_url, kiosk_url, kiosk_settings)
            finally:
                stop(kiosk, kiosk_thread)
        finally:
            stop(node, node_thread)
        district.check_alive()
        township.check_alive()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with kiosk_network(tmp_path_factory, HARDSHIP) as network:
        yield network


def _reload_until(page: Page, url: str, ready: Callable[[], bool], what: str) -> None:
    """Load ``url`` again until ``ready()`` (the projection and replications run on their own)."""
    deadline = time.monotonic() + 15
    page.goto(url)
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(250)
        page.goto(url)


def _sync(page: Page, expected: str = "同步完成") -> None:
    """Press the kiosk's 同步 and wait for its outcome (the page must be freshly loaded)."""
    page.locator("#sync-now").click()
    expect(page.locator("#sync-message")).to_contain_text(expected)
    expect(page.locator("#sync-now")).to_be_enabled()


def _flash(page: Page, text: str) -> Locator:
    return page.locator(".flash", has_text=text)


def test_a_case_from_an_offline_kiosk_through_the_console_to_a_follow_up(
    browser: Browser, net: Network
) -> None:
    k, n = net.kiosk, net.node
    kiosk_context = browser.new_context(locale="zh-CN")
    console_context = browser.new_context(locale="zh-CN")
    try:
        agent, staff = kiosk_context.new_page(), console_context.new_page()
        for p in (agent, staff):
            p.set_default_timeout(10_000)
        _flow(agent, staff, k, n, net.kiosk_settings)
    finally:
        kiosk_context.close()
        console_context.close()


def _flow(agent: Page, staff: Page, k: str, n: str, kiosk_settings: Settings) -> None:
    stale: list[str] = []  # pages that did not show an action just done (asserted at the end)

    # --- The kiosk: enrol at the township node, then lose the link to the township. ---------
    agent.goto(f"{k}/enrol")
    agent.get_by_label("镇街服务中心地址").fill(n)
    agent.get_by_label("村(社区)代码").fill(A)
    agent.get_by_label("启用码").fill(CODE)
    agent.get_by_role("button", name="启用", exact=True).click()
    agent.wait_for_url(f"{k}/login", timeout=30_000)
    agent.get_by_label("登录名").fill(AGENT)
    agent.get_by_label("密码").fill(AGENT_PASSWORD)
    agent.get_by_role("button", name="登录", exact=True).click()
    expect(agent.get_by_role("button", name="退出")).to_be_visible()

    enrolment = load_enrolment(kiosk_settings)
    assert enrolment is not None
    closed = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    save_enrolment(kiosk_settings, dataclasses.replace(enrolment, couch_url=closed))

    # --- Offline: open a door-to-door case for an elderly applicant. ------------------------
    agent.locator("#nav-new-case").click()
    agent.get_by_label("查找事项").fill(HARDSHIP)
    expect(agent.locator("#choose-item option:not([hidden])")).to_have_count(1)
    expect(agent.get_by_label("办理事项")).to_have_value(HARDSHIP)
    agent.get_by_role("button", name="下一步").click()
    expect(agent.locator("#item-name")).to_have_text("困难党员帮扶申请")
    agent.locator('input[name="p_name"]').fill("王秀英")
    agent.locator('input[name="p_id"]').fill(resident_id("50010919400101002"))
    agent.locator('input[name="p_phone"]').fill("13800138001")
    agent.locator('input[name="p_address"]').fill("示范村三组12号")
    agent.locator('input[name="flags"][value="elderly"]').check()
    agent.locator("#review").click()
    door = agent.locator('#routes input[name="mode"][value="door_to_door"]')
    expect(door).to_be_enabled()
    door.check()
    agent.locator("#save").click()
    agent.wait_for_url(re.compile(r"/cases/[^/]+/receipt$"))
    number = agent.locator("#receipt-number").inner_text().strip()
    assert number.startswith(A)
    expect(agent.locator("#receipt-mode")).to_contain_text("上门")

    # 同步 fails while offline; the case waits on the kiosk.
    case_url = f"{k}/cases/{number}"
    agent.goto(case_url)
    _sync(agent, "离线")
    expect(agent.locator("#link")).to_have_text("离线")
    expect(agent.locator("#waiting")).not_to_have_text("0")
    expect(agent.locator("#status")).to_contain_text("已提交")

    # The link is back: the case goes up.
    save_enrolment(kiosk_settings, enrolment)
    agent.goto(case_url)
    _sync(agent)
    expect(agent.locator("#waiting")).to_have_text("0")
    expect(agent.locator("#link")).to_have_text("在线")

    # --- The console: the case reaches the inbox; staff return it with a one-time notice. ---
    staff.goto(f"{n}/login")
    staff.get_by_label("登录名").fill(STAFF)
    staff.get_by_label("密码").fill(STAFF_PASSWORD)
    staff.get_by_role("button", name="登录").click()
    expect(staff.locator("#me")).to_have_text(STAFF_NAME)
    listed = staff.locator(f'#inbox tr[data-case="{number}"]')
    _reload_until(
        staff, f"{n}/inbox",
        lambda: listed.count() == 1 and "已接收" in listed.locator("td.status").inner_text(),
        "the case received in the inbox",
    )  # fmt: skip
    expect(listed).to_contain_text("王秀英")
    expect(listed).to_contain_text("上门")
    listed.locator("a.case-link").click()
    staff.wait_for_url(f"{n}/cases/{number}")
    expect(staff.locator("#status")).to_contain_text("已接收")

    returning = staff.locator("#form-return")
    returning.locator('input[name="missing"][value="hardship_proof"]').check()
    returning.locator('input[name="reason"]').fill("困难情况证明须为近三个月内的医疗费用票据")
    returning.get_by_role("button", name="退回并出具一次性告知书").click()
    expect(_flash(staff, "已退回补正")).to_be_visible()
    expect(staff.locator("#status")).to_contain_text("已退回补正")
    expect(staff.locator("#notice")).to_contain_text(PROOF)

    # --- The kiosk shows the notice; the agent resubmits with every line ticked. ------------
    agent.goto(case_url)
    _sync(agent)
    notice = agent.locator("#returned-notice")
    _reload_until(agent, case_url, notice.is_visible, "the one-time notice at the kiosk")
    expect(agent.locator("#status")).to_contain_text("已退回补正")
    expect(agent.locator("#notice-missing")).to_contain_text(PROOF)
    expect(notice).to_contain_text("近三个月内")
    lines = agent.locator('#resubmit-form input[name="provided"]')
    assert lines.count() >= 1
    for i in range(lines.count()):
        lines.nth(i).check()
    agent.locator("#resubmit-form textarea[name='note']").fill("已补齐近三个月医疗费用票据")
    agent.locator("#resubmit-submit").click()
    expect(agent.locator("#returned-notice")).to_be_hidden()
    expect(agent.locator("#status")).not_to_contain_text("已退回补正")
    _sync(agent)
    expect(agent.locator("#waiting")).to_have_text("0")

    # --- The console: accept, assign to myself. ---------------------------------------------
    staff_case = f"{n}/cases/{number}"
    accept = staff.locator("#form-accept")
    _reload_until(staff, staff_case, accept.is_visible, "the resubmitted case to accept")
    expect(staff.locator("#notice")).to_have_count(0)
    accept.get_by_role("button", name="受理").click()
    expect(_flash(staff, "已受理")).to_be_visible()
    expect(staff.locator("#status")).to_contain_text("已受理")
    expect(staff.locator("#due")).to_have_text(re.compile(r"\d{4}-\d{2}-\d{2}"))

    assign = staff.locator("#form-assign")
    assign.locator('select[name="staff"]').select_option(STAFF)
    assign.get_by_role("button", name="分派").click()
    expect(_flash(staff, "已分派")).to_be_visible()
    expect(staff.locator("#assignee")).to_have_text(STAFF_NAME)

    # --- The visit calendar: offer a slot on a working day after today. ---------------------
    staff.locator("#nav-visits").click()
    staff.wait_for_url(f"{n}/visits")
    today = _today_on_calendar(staff)
    days = [
        date.fromisoformat(text.split()[0])
        for text in staff.locator("#visit-calendar th.visit-day").all_inner_texts()
    ]
    later = [d for d in days if today is None or d > today]
    assert later, f"the calendar shows no working day after today: {days}"
    slot = f"{later[0].isoformat()}|am|{STAFF}"
    offer = staff.locator(f'tr[data-staff="{STAFF}"] td[data-slot="{slot}"] input[name="offer"]')
    offer.check()
    staff.locator("#save-availability").click()
    expect(_flash(staff, "上门值班已保存")).to_be_visible()
    expect(staff.locator(f'td[data-slot="{slot}"]')).to_have_class(re.compile(r"\bfree\b"))

    # --- Schedule the home visit in that slot, then record it done. -------------------------
    staff.goto(staff_case)
    staff.locator("#visits").get_by_role("link", name="安排上门").click()
    staff.wait_for_url(f"{n}/cases/{number}/visit")
    staff.locator(f'#schedule-form input[name="slot"][value="{slot}"]').check()
    staff.locator("#schedule-form").get_by_role("button", name="安排上门").click()
    expect(_flash(staff, "上门服务已安排")).to_be_visible()
    visit_page = f"{n}/cases/{number}/visit"
    visit_row = staff.locator("#visits tr[data-visit]")
    record = staff.locator('.visit-actions form[action$="/visit/record"]')
    if visit_row.count() != 1 or record.count() != 1:
        stale.append(
            "after 安排上门 the visit page it redirects to shows no scheduled visit and no form to "
            "record it (the read model is not projected after the visit_scheduled event)"
        )
    _reload_until(staff, visit_page, lambda: record.count() == 1, "the scheduled visit")
    expect(visit_row).to_have_count(1)
    expect(visit_row).to_contain_text(later[0].isoformat())
    expect(visit_row).to_contain_text(STAFF_NAME)
    expect(visit_row).to_contain_text("已安排")

    record.locator('select[name="outcome"]').select_option("done")
    record.locator('input[name="note"]').fill("已入户核实困难情况")
    record.get_by_role("button", name="记录上门结果").click()
    expect(_flash(staff, "已记录上门结果")).to_be_visible()
    if "已上门" not in visit_row.inner_text():
        stale.append(
            "after 记录上门结果 the visit page still shows the visit as 已安排 with its record "
            "form (the read model is not projected after the visit_recorded event)"
        )
    _reload_until(
        staff, visit_page, lambda: "已上门" in visit_row.inner_text(), "the visit recorded done"
    )

    # --- Complete with the result and how it reached the citizen. ---------------------------
    staff.goto(staff_case)
    complete = staff.locator("#form-complete")
    complete.locator('textarea[name="result"]').fill("同意帮扶, 发放慰问金 800 元")
    complete.locator('select[name="delivery"]').select_option("at_home")
    complete.get_by_role("button", name="办结").click()
    expect(_flash(staff, "已办结")).to_be_visible()
    expect(staff.locator("#status")).to_contain_text("已办结")

    # --- The kiosk shows completion and the visit; the agent collects a 差评. ---------------
    agent.goto(case_url)
    _sync(agent)
    rating = agent.locator("#rate-form")
    _reload_until(agent, case_url, rating.is_visible, "the completed case at the kiosk")
    expect(agent.locator("#status")).to_contain_text("已办结")
    kiosk_visit = agent.locator("#visits tbody tr")
    expect(kiosk_visit).to_have_count(1)
    expect(kiosk_visit).to_contain_text(later[0].isoformat())
    expect(kiosk_visit).to_contain_text(STAFF_NAME)
    expect(kiosk_visit).to_contain_text("已上门")

    rating.locator('input[name="level"][value="1"]').check(force=True)
    rating.locator('textarea[name="text"]').fill("上门时间一改再改, 老人等了一上午")
    agent.locator("#rate-submit").click()
    expect(agent.locator("#ratings")).to_contain_text("差评")
    expect(agent.locator("#ratings")).to_contain_text("老人等了一上午")
    expect(agent.locator("#follow-up")).to_be_visible()
    _sync(agent)
    expect(agent.locator("#waiting")).to_have_text("0")

    # --- The township's follow-up list shows the case. --------------------------------------
    follow_up = staff.locator(f'tr[data-case="{number}"]')
    _reload_until(staff, f"{n}/follow-ups", lambda: follow_up.count() == 1, "the follow-up item")
    expect(follow_up).to_contain_text("老人等了一上午")
    expect(follow_up.locator(f'a[href^="/cases/{number}"]')).to_be_visible()

    # Checked last so that one stale page does not hide what the rest of the flow would show.
    assert not stale, "the console showed a stale page right after an action: " + "; ".join(stale)


def _today_on_calendar(page: Page) -> date | None:
    """The day the calendar marks 今天 (None when today is not a working day)."""
    marked = page.locator("#visit-calendar th.visit-day", has=page.locator(".tag.on"))
    if marked.count() == 0:
        return None
    return date.fromisoformat(marked.first.inner_text().split()[0])
