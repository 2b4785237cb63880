"""The village kiosk in Chromium, end to end, against a real district and township.

A district and a township pouchdb-server set up by sync.topology, the real township node (for
enrolment) and the kiosk app, both served by uvicorn on loopback ports. In the browser: enrol,
log in, open a case with a material that follows on commitment, print the receipt, sync to the
township, and see events the township wrote come back down and change the case's state.

The case carries a photographed material (a JPEG made in the test, given to the camera input
as the browser's file chooser would), which arrives at the township as an attachment; the
receipt also prints on an 80 mm receipt printer.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from core.cases import Accepted, Origin, Received, case_from_doc, event_to_doc, new_event
from core.clock import Hlc
from sync.couch import connect, couch_errors, save_document
from sync.devserver import PouchServer
from sync.topology import setup_district
from sync.topology import village_database as village_db
from tests.factories import resident_id
from tests.integration.test_kiosk import (
    AGENT,
    AGENT_PASSWORD,
    CODE,
    _catalogue,
    _db,
    _directory,
    poll,
)
from tests.servers import join_district, serve
from township.app import create_app as create_township_app
from township.settings import TownshipSettings
from village_node.app import create_app as create_kiosk_app
from village_node.settings import Settings

pytestmark = pytest.mark.e2e

T = "500109102000"
A = "500109102001"
BUSINESS = "500109SW0001"  # 个体工商户设立登记: premises_proof may follow within 5 working days
PREMISES = "经营场所使用证明"


@dataclass
class KioskNetwork:
    """District and township servers, the township node and one kiosk, all running."""

    district: PouchServer
    township: PouchServer
    township_node: str
    kiosk: str

    def village(self) -> Any:
        """The township's copy of the village database (couchdb-python)."""
        return connect(self.township.url)[village_db(A)]


@pytest.fixture(scope="module")
def kiosk_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KioskNetwork]:
    with PouchServer() as district, PouchServer() as township:
        node, node_thread, node_url = serve(
            create_township_app(
                TownshipSettings(T, township.url, database_url=_db(tmp_path_factory))
            )
        )
        d, t = connect(district.url), connect(township.url)
        setup_district(district.url)
        for doc in _directory():  # units, the agent, a kiosk registration for CODE
            save_document(d["directory"], doc)
        for doc in _catalogue():
            with couch_errors():
                d["catalogue"].save(doc)
        assert join_district(district, township.url, T).villages == [A]

        def has(db: str, doc_id: str) -> bool:
            with couch_errors():
                return t[db].get(doc_id) is not None

        poll(lambda: has("directory", "kiosk_registration:" + A + "-aa11bb22"), "registration")
        poll(lambda: has(village_db(A), "catalogue_manifest:000001"), "the catalogue")
        poll(lambda: has(village_db(A), f"account:{AGENT}"), "the agent account")
        settings = Settings(tmp_path_factory.mktemp("kiosk"), sync_interval=0)
        kiosk, kiosk_thread, kiosk_url = serve(create_kiosk_app(settings))
        try:
            yield KioskNetwork(district, township, node_url, kiosk_url)
        finally:
            kiosk.should_exit = True
            kiosk_thread.join(10)
            node.should_exit = True
            node_thread.join(10)


def _photo() -> bytes:
    """A camera-sized JPEG, as the kiosk's camera would hand it over."""
    out = io.BytesIO()
    Image.effect_noise((2400, 1800), 40).convert("RGB").save(out, "JPEG", quality=92)
    return out.getvalue()


def _press_sync(page: Page) -> None:
    page.get_by_role("button", name="同步", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="同步")).to_contain_text("同步完成")


def test_enrol_open_a_case_print_sync_and_see_the_township_accept_it(
    page: Page, kiosk_net: KioskNetwork, tmp_path: Path
) -> None:
    k = kiosk_net.kiosk

    # Until enrolled only the enrolment screen; enrol with the one-time code.
    page.goto(f"{k}/cases")
    assert page.url.endswith("/enrol")
    page.get_by_label("镇街服务中心地址").fill(kiosk_net.township_node)
    page.get_by_label("村(社区)代码").fill(A)
    page.get_by_label("启用码").fill(CODE)
    page.get_by_role("button", name="启用", exact=True).click()
    page.wait_for_url(f"{k}/login", timeout=30_000)
    expect(page.locator("#village")).to_have_text(A)

    # Log in as the village agent (checked against the replicated directory, locally).
    page.get_by_label("登录名").fill(AGENT)
    page.get_by_label("密码").fill(AGENT_PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.get_by_role("button", name="退出")).to_be_visible()

    # New case: find the service by its pinyin initials (filtered as typed), the applicant,
    # the checklist with one material to follow and one photographed.
    page.locator("#nav-new-case").click()
    page.get_by_label("查找事项").fill("gtgs")
    expect(page.locator(f'#choose-item option[value="{BUSINESS}"]')).to_be_visible()
    expect(page.locator("#choose-item option:not([hidden])")).to_have_count(1)
    expect(page.get_by_label("办理事项")).to_have_value(BUSINESS)
    page.get_by_role("button", name="下一步").click()
    expect(page.locator("#item-name")).to_have_text("个体工商户设立登记")
    page.locator('input[name="p_name"]').fill("张三")
    page.locator('input[name="p_id"]').fill(resident_id("50010919800101001"))
    page.locator('input[name="p_phone"]').fill("13800138000")
    page.locator('input[name="p_address"]').fill("示范村一组")
    page.locator('select[name="m_premises_proof"]').select_option("to_follow")
    camera = page.locator('input[type="file"][name="f_id_card"]')
    assert camera.get_attribute("capture") == "environment"
    camera.set_input_files(
        files=[{"name": "身份证正面.jpg", "mimeType": "image/jpeg", "buffer": _photo()}]
    )
    expect(page.locator('td[data-material="id_card"] .previews img')).to_have_count(1)
    page.get_by_role("button", name="预审").click()
    expect(page.locator('td[data-material="id_card"] .staged')).to_contain_text("身份证正面.jpg")

    # Pre-review: routing options with reasons, the commitment with its latest deadline.
    expect(page.locator("#routes")).to_contain_text("推荐")
    expect(page.locator("#commitments")).to_contain_text(PREMISES)
    row = page.locator("#materials tr", has_text=PREMISES)
    latest = re.search(r"最晚 (\d{4}-\d{2}-\d{2})", row.inner_text())
    assert latest, "the review names the latest deadline for the material to follow"
    deadline = latest[1]
    row.locator('input[name="d_premises_proof"]').fill(deadline)
    page.locator('input[name="mode"][value="window"]').check()
    page.get_by_role("button", name="提交受理").click()

    # The receipt: number, mode, expected due date, the commitment and the letter to sign.
    page.wait_for_url(re.compile(r"/cases/[^/]+/receipt$"))
    number = page.locator("#receipt-number").inner_text().strip()
    assert number.startswith(A) and number in page.url
    expect(page.get_by_role("status")).to_contain_text(f"已受理, 办件编号 {number}")
    expect(page.locator("#receipt-mode")).to_contain_text("窗口")
    expect(page.locator("#expected-due")).to_have_text(re.compile(r"\d{4}-\d{2}-\d{2}"))
    expect(page.locator("#receipt-commitments")).to_contain_text(PREMISES)
    expect(page.locator("#receipt-commitments")).to_contain_text(f"{deadline} 前补交")
    expect(page.locator("#commitment-letter")).to_contain_text("告知承诺书")

    # Printed, the receipt and the letter show; the navigation and buttons do not.
    page.emulate_media(media="print")
    expect(page.locator("header")).to_be_hidden()
    expect(page.get_by_role("button", name="打印")).to_be_hidden()
    expect(page.locator("#receipt")).to_be_visible()
    expect(page.locator("#commitment-letter")).to_be_visible()
    pdf = tmp_path / "receipt.pdf"
    page.pdf(path=str(pdf), format="A5")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
    page.emulate_media(media="screen")
    expect(page.locator("header")).to_be_visible()
    expect(page.locator("#receipt-files")).to_contain_text("1 个文件")

    # The same receipt on an 80 mm receipt printer: a narrow page, the letter on its own.
    page.locator("#paper-80mm").click()
    expect(page.locator("#receipt-paper")).to_have_class(re.compile("paper-80mm"))
    narrow = tmp_path / "receipt-80mm.pdf"
    page.emulate_media(media="print")
    page.pdf(path=str(narrow), prefer_css_page_size=True)
    page.emulate_media(media="screen")
    widths = [float(w) for w in re.findall(rb"/MediaBox \[\s*0 0 ([\d.]+)", narrow.read_bytes())]
    assert len(widths) >= 2, "the receipt and the commitment letter are on pages of their own"
    assert all(abs(w / 72 * 25.4 - 80) < 1 for w in widths), widths

    # Sync: the case reaches the township's copy of the village database.
    expect(page.locator("#waiting")).not_to_have_text("0")
    _press_sync(page)
    expect(page.locator("#waiting")).to_have_text("0")
    expect(page.locator("#link")).to_have_text("在线")
    village = kiosk_net.village()
    with couch_errors():
        ids = [i for i in village if i.startswith("case:")]
        docs = [village[i] for i in ids if village[i].get("type") == "case"]
    cases = [case_from_doc(dict(doc)) for doc in docs]
    assert [c.case_number for c in cases] == [number]
    case = cases[0]
    assert case.item_code == BUSINESS and case.author == AGENT

    # The photographed material travelled with the case, as an attachment of its document.
    name = "material/id_card/1.jpg"
    with couch_errors():
        stub = village[case.id]["_attachments"][name]
        jpeg = village.get_attachment(case.id, name).read()
    assert stub["content_type"] == "image/jpeg" and jpeg.startswith(b"\xff\xd8\xff")
    with Image.open(io.BytesIO(jpeg)) as stored:
        assert max(stored.size) <= 1600  # compressed at the kiosk
    assert [m.attachments for m in case.materials if m.key == "id_card"] == [(name,)]

    # The township receives and accepts the case, writing into the village database.
    origin = Origin(T, "tw01")
    now = datetime.now(UTC)
    stamp = Hlc(int(now.timestamp() * 1000) + 1000, 0, origin.key)
    received = new_event(
        case, Received(receiver=T, received_at=now),
        origin=origin, counter=1, hlc=stamp, wall_time=now, author="staff_t",
    )  # fmt: skip
    accepted = new_event(
        case, Accepted(),
        origin=origin, counter=2, hlc=stamp.successor(origin.key), wall_time=now,
        author="staff_t",
    )  # fmt: skip
    for event in (received, accepted):
        save_document(village, event_to_doc(event))

    # Before the next sync the kiosk still shows what it knew; after it, the township's state.
    page.locator("#nav-cases").click()
    listed = page.locator("#cases tr", has_text=number)
    expect(listed.locator("td.status")).to_have_text("已提交")
    _press_sync(page)
    deadline_at = time.monotonic() + 5
    while listed.locator("td.status").inner_text() != "已受理":
        assert time.monotonic() < deadline_at, "the accepted state did not reach the kiosk"
        time.sleep(0.2)
        page.reload()
    listed.locator("a.case-link").click()
    expect(page.locator("#status")).to_contain_text("已受理")
    expect(page.locator("#timeline")).to_contain_text("已接收")
    expect(page.locator("#timeline")).to_contain_text("staff_t")
