"""A video session between a village kiosk and the township console, in two Chromium pages.

A district and a township pouchdb-server, the real township node and a real kiosk (as in
``test_cross_tier``); Chromium with a fake camera and microphone. The agent opens a video case
and presses 呼叫镇街: first nobody is available and the call times out into the fallback offer;
then a staff member marks themselves available, accepts the call, the WebRTC connection reaches
"connected" over loopback and the console decodes the kiosk's video; ending the call writes the
outcome on the case, which syncs back to the kiosk.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from sync.couch import connect, get_document
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_cross_tier import (
    STAFF,
    STAFF_NAME,
    STAFF_PASSWORD,
    Network,
    _sync,
    kiosk_network,
    resident_id,
)
from tests.integration.test_kiosk import AGENT, AGENT_PASSWORD, CODE

pytestmark = pytest.mark.e2e

T = "500109102000"
A = "500109102001"
ITEM = "500109DW0003"  # 流动党员登记: video only
ANSWER_TIMEOUT = 5.0
LOOPBACK_ONLY = "window.sanjiCandidateFilter = (c) => / 127\\.0\\.0\\.1 /.test(c);"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with kiosk_network(tmp_path_factory, ITEM, video_answer_timeout=ANSWER_TIMEOUT) as network:
        yield network


@pytest.fixture(scope="module")
def media_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with a fake camera and microphone, WebRTC allowed over loopback."""
    args = [*CHROMIUM_ARGS, "--allow-loopback-in-peer-connection",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]  # fmt: skip
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    yield browser
    browser.close()


def _page(browser: Browser) -> Page:
    context = browser.new_context(locale="zh-CN")
    context.add_init_script(LOOPBACK_ONLY)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def _open_video_case(agent: Page, k: str, n: str) -> str:
    """Enrol the kiosk, log in and open a video case; its number."""
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
    agent.locator("#nav-new-case").click()
    agent.get_by_label("查找事项").fill(ITEM)
    expect(agent.get_by_label("办理事项")).to_have_value(ITEM)
    agent.get_by_role("button", name="下一步").click()
    agent.locator('input[name="p_name"]').fill("刘志强")
    agent.locator('input[name="p_id"]').fill(resident_id("50010919800101003"))
    agent.locator('input[name="p_phone"]').fill("13800138002")
    agent.locator("#review").click()
    video = agent.locator('#routes input[name="mode"][value="video"]')
    expect(video).to_be_enabled()
    video.check()
    agent.locator("#save").click()
    agent.wait_for_url(re.compile(r"/cases/[^/]+/receipt$"))
    return agent.locator("#receipt-number").inner_text().strip()


def test_a_kiosk_calls_the_township_console(media_browser: Browser, net: Network) -> None:
    k, n = net.kiosk, net.node
    agent, staff = _page(media_browser), _page(media_browser)
    try:
        number = _open_video_case(agent, k, n)
        case_url = f"{k}/cases/{number}"

        # Nobody is available: the call times out into the fallback offer.
        agent.goto(case_url)
        agent.locator("#video-call-submit").click()
        agent.wait_for_url(re.compile(r"/video/[^/]+$"))
        expect(agent.locator("#call-state")).to_have_text("等待接听")
        began = time.monotonic()
        expect(agent.locator("#call-state")).to_have_text("失败", timeout=15_000)
        assert time.monotonic() - began >= ANSWER_TIMEOUT - 1.5
        expect(agent.locator("#fallback")).to_be_visible()
        expect(agent.locator("#fallback-visit")).to_be_visible()

        # A staff member marks themselves available; the kiosk calls again.
        staff.goto(f"{n}/login")
        staff.get_by_label("登录名").fill(STAFF)
        staff.get_by_label("密码").fill(STAFF_PASSWORD)
        staff.get_by_role("button", name="登录").click()
        expect(staff.locator("#me")).to_have_text(STAFF_NAME)
        staff.locator("#nav-video").click()
        staff.locator("#go-available").click()
        expect(staff.locator("#available-state")).to_have_text("可接听视频")

        agent.goto(case_url)
        agent.locator("#video-call-submit").click()
        agent.wait_for_url(re.compile(r"/video/[^/]+$"))
        expect(agent.locator("#call-state")).to_have_text("等待接听")
        incoming = staff.locator(f'#calls tr[data-case="{number}"]', has_text="等待接听")
        expect(incoming).to_have_count(1)
        incoming.locator("button.accept-call").click()
        staff.wait_for_url(re.compile(r"/video/calls/[^/]+$"))

        # The call connects over loopback and the console decodes the kiosk's video.
        expect(agent.locator("#call-state")).to_have_text("通话中")
        staff.wait_for_function("window.sanjiCall && sanjiCall.pc.connectionState === 'connected'")
        staff.wait_for_function(
            """async () => {
                const stats = await sanjiCall.pc.getStats();
                let frames = 0;
                stats.forEach((r) => {
                    if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded;
                });
                return frames > 0;
            }""",
            polling=250,
        )
        expect(staff.locator("#call-state")).to_have_text("通话中")

        # Staff end it with an outcome: the events are on the case and sync to the kiosk.
        staff.locator('input[name="outcome"][value="follow_up_visit"]').check()
        staff.locator('input[name="note"]').fill("需上门核验原件")
        staff.locator("#end-call-button").click()
        expect(staff.locator(".flash", has_text="需上门跟进")).to_be_visible()
        expect(agent.locator("#call-state")).to_have_text("已结束")

        server = connect(net.township.url)
        case_id = f"case:{A}:" + number.split("-")[2].lower() + ":" + f"{int(number[-4:]):08d}"

        def kinds() -> set[str]:
            rows = server["township"].view(
                "_all_docs", startkey=f"case_event:{case_id[5:]}:",
                endkey=f"case_event:{case_id[5:]}:\ufff0", include_docs=True,
            )  # fmt: skip
            return {r.doc.get("kind") for r in rows}

        assert {"video_requested", "video_started", "video_ended"} <= kinds()
        assert get_document(server["township"], case_id) is not None

        deadline = time.monotonic() + 20
        outcome = agent.locator("#video-sessions .video-outcome", has_text="需上门跟进")
        while True:
            agent.goto(case_url)
            _sync(agent)
            agent.goto(case_url)
            if outcome.count() == 1 or time.monotonic() > deadline:
                break
        expect(outcome).to_have_count(1)
        expect(agent.locator("#video-sessions")).to_contain_text(STAFF_NAME)
    finally:
        agent.context.close()
        staff.context.close()
