"""Photographed materials at the kiosk against a real township (pouchdb-server): chosen at the
review post (multipart, CSRF checked), staged, attached to the case document when it is saved,
served back to the agent, and carried up to the township by replication; the village
database's rule refuses a rogue attachment.

Reuses the network of test_kiosk; the tests run in order on one kiosk.
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import couchdb
import pytest
from PIL import Image

from sync.couch import couch_errors
from sync.design import MAX_ATTACHMENT_BYTES
from sync.errors import CouchRejected
from sync.topology import village_database
from tests.integration import test_kiosk as base
from tests.integration.test_kiosk import CODE, CSRF, Network, form, login, poll, store_of
from tests.integration.test_kiosk_cases import BUSINESS, case_docs, case_form
from village_node.attachments import MAX_FILE_BYTES
from village_node.settings import load_enrolment

net = base.net  # the same network fixture, built afresh for this module
_servers_alive = base._servers_alive

A = "500109102001"
SEEN: dict[str, str] = {}
"""What one test leaves for the next (the tests run in order on one kiosk)."""


def photo(width: int = 3000, height: int = 2000) -> bytes:
    """A camera-sized noisy JPEG, well over the stored limit."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 50).convert("RGB").save(out, "JPEG", quality=95)
    return out.getvalue()


PDF = b"%PDF-1.4\n% application form\n" + b"0" * 20_000 + b"\n%%EOF\n"


def post(client: Any, files: list[tuple[str, tuple[str, bytes, str]]], **data: str) -> Any:
    """POST the wizard as the browser does: multipart, with the CSRF token in the form."""
    return client.post(
        "/cases/new",
        data={**data, "_csrf_token": client.cookies[CSRF]},
        files=files,
        follow_redirects=False,
    )


def staged_ids(page: str) -> list[str]:
    return re.findall(r'name="rm" value="([0-9a-f]+)"', page)


def test_enrol_and_log_in(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    done = form(c, "/enrol", township_url=net.endpoint, village=A, code=CODE)
    assert done.status_code in (302, 303)
    assert login(c).status_code in (302, 303)


def test_the_service_picker_searches_by_name_code_and_initials(net: Network) -> None:
    c = net.client
    everything = c.get("/cases/new").text
    assert 'id="service-q"' in everything and "<optgroup" in everything
    for q in ("个体工商", BUSINESS, "gtgs"):
        found = c.get("/cases/new", params={"q": q}).text
        assert f'value="{BUSINESS}"' in found, q
        assert found.count('<option value="500109') == 1, q
    assert f'value="{BUSINESS}"' not in c.get("/cases/new", params={"kind": "party"}).text
    assert "没有找到匹配的事项" in c.get("/cases/new", params={"q": "不存在的事项"}).text


def test_multipart_without_the_csrf_token_is_refused(net: Network) -> None:
    c = net.client
    data = case_form(c)
    answer = c.post(
        "/cases/new",
        data={**data, "action": "review"},
        files=[("f_id_card", ("front.jpg", photo(300, 200), "image/jpeg"))],
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert not (net.settings.data_dir / "uploads" / data["intake_key"]).exists()


def test_files_chosen_at_review_are_compressed_staged_and_listed(net: Network) -> None:
    c = net.client
    data = case_form(c, mode="window")
    assert 'enctype="multipart/form-data"' in c.get("/cases/new", params={"item": BUSINESS}).text
    raw = photo()
    assert len(raw) > MAX_FILE_BYTES
    reviewed = post(
        c,
        [
            ("f_id_card", ("正面.jpg", raw, "image/jpeg")),
            ("f_id_card", ("反面.jpg", photo(1200, 900), "image/jpeg")),
            ("f_application", ("申请书.pdf", PDF, "application/pdf")),
            ("f_application", ("假照片.jpg", b"not really a photo", "image/jpeg")),
            ("f_premises_proof", ("", b"", "application/octet-stream")),  # nothing chosen
        ],
        action="review",
        **data,
    )
    assert reviewed.status_code == 200, reviewed.text
    page = reviewed.text
    assert "正面.jpg" in page and "反面.jpg" in page and "申请书.pdf" in page
    assert 'id="err-f_application"' in page and "不是照片或 PDF 文件" in page
    assert re.search(r"正面\.jpg <span class=\"muted\">\d+ KB", page)  # with its size
    assert len(staged_ids(page)) == 3
    assert f'name="intake_key" value="{data["intake_key"]}"' in page
    folder = net.settings.data_dir / "uploads" / data["intake_key"]
    stored = sorted(p.stat().st_size for p in folder.iterdir() if p.suffix == ".jpg")
    assert len(stored) == 2 and stored[-1] <= MAX_FILE_BYTES
    assert case_docs(net) == []  # review saves nothing

    # The next post removes one file and adds another; the staging follows the form.
    again = post(
        c,
        [("f_id_card", ("补拍.png", _png(), "image/png"))],
        action="review",
        rm=re.findall(r'data-file="([0-9a-f]+)"><span>\S+ 反面.jpg', page)[0],
        **data,
    )
    assert "反面.jpg" not in again.text and "补拍.png" in again.text
    assert len(staged_ids(again.text)) == 3
    SEEN["intake_key"] = data["intake_key"]  # the next test saves this form


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (900, 600), (240, 240, 240)).save(out, "PNG")
    return out.getvalue()


def test_save_attaches_the_staged_files_in_the_case_document(net: Network) -> None:
    c = net.client
    key = SEEN["intake_key"]
    data = case_form(c, mode="window") | {"intake_key": key}
    saved = post(c, [], action="save", **data)
    assert saved.status_code in (302, 303), saved.text
    receipt_url = saved.headers["location"]
    again = post(c, [("f_id_card", ("正面.jpg", photo(600, 400), "image/jpeg"))],
                 action="save", **data)  # fmt: skip
    assert again.headers["location"] == receipt_url  # posted twice: saved once
    assert len(case_docs(net)) == 1
    assert not (net.settings.data_dir / "uploads" / key).exists()  # staging cleaned up
    store = store_of(net)
    case_id = case_docs(net)[0]
    doc = store.get(case_id)
    atts = doc["_attachments"]
    assert sorted(atts) == [
        "material/application/1.pdf",
        "material/id_card/1.jpg",
        "material/id_card/2.png",
    ]
    assert atts["material/id_card/1.jpg"]["content_type"] == "image/jpeg"
    assert all(a["length"] <= MAX_FILE_BYTES for a in atts.values())
    assert store.get_attachment(case_id, "material/application/1.pdf") == PDF
    materials = {m["key"]: m for m in doc["materials"]}
    assert materials["id_card"]["attachments"] == ["material/id_card/1.jpg",
                                                   "material/id_card/2.png"]  # fmt: skip
    assert materials["premises_proof"].get("attachments", []) == []
    SEEN["receipt"] = receipt_url


def test_the_agent_sees_the_files_on_the_case_and_the_receipt(net: Network) -> None:
    c = net.client
    receipt_url = SEEN["receipt"]
    number = receipt_url.split("/")[2]
    detail = c.get(f"/cases/{number}").text
    assert 'id="attachments"' in detail
    url = f"/cases/{number}/files/id_card/1.jpg"
    assert f'<img src="{url}"' in detail and f"/cases/{number}/files/application/1.pdf" in detail
    image = c.get(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.headers["content-disposition"].startswith("inline")
    assert image.content.startswith(b"\xff\xd8\xff")
    assert c.get(f"/cases/{number}/files/id_card/9.jpg").status_code == 404
    assert c.get(f"/cases/{A}-20260101-XXXX-0001/files/id_card/1.jpg").status_code == 404
    receipt = c.get(receipt_url).text
    assert 'id="receipt-files"' in receipt and "2 个文件" in receipt
    assert 'class="receipt-paper paper-a5"' in receipt


def test_the_receipt_prints_on_an_80mm_roll(net: Network) -> None:
    c = net.client
    narrow = c.get(SEEN["receipt"], params={"paper": "80mm"}).text
    assert 'class="receipt-paper paper-80mm"' in narrow
    assert 'id="paper-80mm" class="button small "' in narrow  # the chosen paper is marked
    assert "告知承诺书" in narrow and "page-break" in narrow  # the letter on its own page
    odd = c.get(SEEN["receipt"], params={"paper": "A0"}).text
    assert 'class="receipt-paper paper-a5"' in odd
    css = c.get("/static/site.css").text
    assert "@page receipt-80mm { size: 80mm" in css and "page: receipt-80mm" in css


def test_sync_carries_the_attachments_up_to_the_township(net: Network) -> None:
    c = net.client
    form(c, "/sync", back="/cases")
    case_id = case_docs(net)[0]
    village = village_database(A)
    assert net.has(village, case_id)
    with couch_errors():
        pulled = net.t[village].get_attachment(case_id, "material/application/1.pdf")
    assert pulled is not None and pulled.read() == PDF
    poll(lambda: net.has("township", case_id), "the case in the township database")
    with couch_errors():
        doc = net.t["township"].get(case_id)
        stub = doc["_attachments"]["material/id_card/1.jpg"]
        jpeg = net.t["township"].get_attachment(case_id, "material/id_card/1.jpg").read()
    assert stub["content_type"] == "image/jpeg" and stub["length"] == len(jpeg)
    assert jpeg == store_of(net).get_attachment(case_id, "material/id_card/1.jpg")


def _as_kiosk(net: Network) -> Any:
    """The village database as the kiosk's own CouchDB user sees it."""
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    return couchdb.Server(enrolment.database_url())[enrolment.database]


def _rogue(net: Network, counter: int, attachment: dict[str, Any]) -> dict[str, Any]:
    """A copy of the kiosk's case under a new id, carrying ``attachment``."""
    doc = dict(store_of(net).get(case_docs(net)[0]))
    for field in ("_rev", "_attachments", "_revisions"):
        doc.pop(field, None)
    doc["_id"] = doc["_id"].rsplit(":", 1)[0] + f":{counter:08d}"
    doc["_attachments"] = {"material/id_card/1.jpg": attachment}
    return doc


@pytest.mark.parametrize(
    ("counter", "attachment", "allowed"),
    [
        (901, {"content_type": "text/html", "data": base64.b64encode(b"<script>").decode()},
         False),
        (902, {"content_type": "image/jpeg",
               "data": base64.b64encode(b"\xff" * (MAX_ATTACHMENT_BYTES + 1)).decode()}, False),
        (903, {"content_type": "image/jpeg", "data": base64.b64encode(b"\xff\xd8\xff").decode()},
         True),
    ],
)  # fmt: skip
def test_the_village_rule_refuses_a_rogue_attachment(
    net: Network, counter: int, attachment: dict[str, Any], allowed: bool
) -> None:
    db = _as_kiosk(net)
    doc = _rogue(net, counter, attachment)
    if allowed:  # the kiosk's own kind of file passes
        with couch_errors():
            db.save(doc)
        return
    with pytest.raises(CouchRejected) as refused, couch_errors():
        db.save(doc)
    assert "附件" in str(refused.value)
