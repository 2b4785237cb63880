"""The dashboard page, the cases behind its figures and the CSV/XLSX exports of the dashboard,
fleet and standards pages (issue 8 items 2-3, 7), on the hand-computed two-township fixture of
``test_district_dashboard``, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from litestar.testing import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.db.models import Unit
from central.services import accounts
from central.services.dashboard import figure_cases, figures
from central.services.district_model import DistrictExtension
from central.settings import Settings
from central.web.dashboard import district_today
from sync.projection import project
from tests.conftest import CouchUnderTest
from tests.integration.test_district_dashboard import DECEMBER, OTHER_TOWNSHIP, _fixture
from tests.integration.test_district_supervision import _enrolment, _status, _units
from tests.integration.test_projection import CAL, TOWNSHIP, VILLAGE

PERIOD = {"from": "2026-12-01", "to": "2026-12-31"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _client(database_url: str, sessions: sessionmaker[Session], couch_url: str) -> TestClient:  # type: ignore[type-arg]
    with sessions() as session:
        _units(session)
        session.add(
            Unit(code=OTHER_TOWNSHIP, name="天生街道", level="township",
                 parent_code="500109000000", updated_at=datetime(2026, 1, 1, tzinfo=UTC))
        )  # fmt: skip
        accounts.create_account(
            session, "admin", "管理员", "district_admin", "500109000000", "admin-pass-1"
        )
        session.commit()
    db = _fixture()
    _enrolment(db, "r-good", VILLAGE, "pc-good")
    _status(db, "r-good", VILLAGE, "pc-good", datetime.now(UTC) + timedelta(hours=3), refused=2)
    now = datetime.now(UTC)
    project(db, sessions, "district", CAL, district_today(), extension=DistrictExtension(now))
    app = create_app(Settings(database_url=database_url, couchdb_url=couch_url))
    return TestClient(app)


def _login(client: TestClient) -> None:  # type: ignore[type-arg]
    client.get("/login")
    client.post(
        "/login",
        data={"username": "admin", "password": "admin-pass-1", "next": "/",
              "_csrf_token": client.cookies["sanji_csrf"]},
    )  # fmt: skip


def test_dashboard_page_cases_and_exports(
    database_url: str, sessions: sessionmaker[Session], couch_server: CouchUnderTest
) -> None:
    today = district_today()
    with _client(database_url, sessions, couch_server.url) as client:
        assert client.get("/dashboard", follow_redirects=False).status_code in (302, 303, 401)
        _login(client)
        with sessions() as session:
            by_township = {f.key: f for f in figures(session, DECEMBER, today)}
            bad = figure_cases(session, DECEMBER, today, township=TOWNSHIP, figure="bad")
            returned = figure_cases(session, DECEMBER, today, township=TOWNSHIP, figure="returns")
            everything = figure_cases(session, DECEMBER, today)
        a, b = by_township[TOWNSHIP], by_township[OTHER_TOWNSHIP]

        page = client.get("/dashboard", params=PERIOD)
        assert page.status_code == 200
        assert '<b id="total-cases">5</b>' in page.text  # the transferred original counts once
        assert "静观镇" in page.text and "天生街道" in page.text
        # Five inline charts, nothing fetched from elsewhere.
        assert page.text.count("<svg") == 6 and "<image" not in page.text
        assert "<script" not in page.text
        assert 'href="/dashboard"' in page.text  # the nav link
        # Each figure links to its cases.
        link = f"/dashboard/cases?township={TOWNSHIP}&amp;figure=bad&amp;from=2026-12-01"
        assert link in page.text
        only = client.get("/dashboard", params={**PERIOD, "township": OTHER_TOWNSHIP}).text
        assert '<b id="total-cases">2</b>' in only and f'data-key="{TOWNSHIP}"' not in only
        # The ranking: by overdue rate 天生街道 (1 of 2) comes before 静观镇 (1 of 3).
        ranked = client.get("/dashboard", params={**PERIOD, "by": "overdue_rate"}).text
        table = ranked.split('id="ranking"')[1]
        assert table.index("天生街道") < table.index("静观镇")
        assert "最难办事排名 · 按镇街 · 超期率" in ranked

        # Grouped by mode: a total row, and each group's figures link to its cases.
        by_mode = client.get("/dashboard", params={**PERIOD, "group": "mode"}).text
        assert "上门办" in by_mode and "合计" in by_mode and 'data-key="door_to_door"' in by_mode
        assert "最难办事排名 · 按服务方式 · 差评率" in by_mode
        assert "group=mode&amp;key=door_to_door&amp;figure=cases" in by_mode
        door = client.get(
            "/dashboard/cases",
            params={**PERIOD, "group": "mode", "key": "door_to_door", "figure": "returns"},
        ).text
        assert "全区 · 服务方式: 上门办 · 有退回" in door
        assert (
            f'data-case="{returned[0].case_number}"' in door and '<b id="case-count">1</b>' in door
        )

        # The cases behind a figure: the same ones the service lists.
        listed = client.get(
            "/dashboard/cases", params={**PERIOD, "township": TOWNSHIP, "figure": "bad"}
        )
        assert listed.status_code == 200 and "静观镇 · 差评" in listed.text
        assert f'<b id="case-count">{len(bad)}</b>' in listed.text and len(bad) == a.bad == 1
        assert f'data-case="{bad[0].case_number}"' in listed.text
        assert (
            returned[0].case_number
            in client.get(
                "/dashboard/cases", params={**PERIOD, "township": TOWNSHIP, "figure": "returns"}
            ).text
        )
        assert len(everything) == a.cases + b.cases

        # XLSX: a sheet per table, headers and figures equal the service's.
        xlsx = client.get("/dashboard", params={**PERIOD, "format": "xlsx"})
        assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith(XLSX)
        assert "attachment" in xlsx.headers["content-disposition"]
        book = load_workbook(io.BytesIO(xlsx.content))
        assert book.sheetnames[:3] == ["各镇街全部指标", "办件量", "三色预警(今日)"]
        sheet = book["各镇街全部指标"]
        header = [c.value for c in sheet[1]]
        assert header[:6] == ["镇街代码", "镇街", "办件", "绿灯", "黄灯", "红灯"]
        rows = {
            r[0]: dict(zip(header, r, strict=True)) for r in sheet.iter_rows(2, values_only=True)
        }
        assert set(rows) == {TOWNSHIP, OTHER_TOWNSHIP}
        for code, f in by_township.items():
            row = rows[code]
            assert (row["办件"], row["红灯"], row["差评"], row["回访逾期"]) == (
                f.cases, f.red, f.bad, f.follow_up_late)  # fmt: skip
            assert row["差评率"] == f.bad_rate and row["平均用时"] == f.average_days
        ranking_sheet = book[book.sheetnames[-1]]
        assert [c.value for c in ranking_sheet[1]][:3] == ["名次", "镇街", "差评率(%)"]
        assert ranking_sheet["B2"].value == "静观镇" and ranking_sheet["C2"].value == 100.0

        # CSV: UTF-8 with a byte-order mark, every table under its title.
        raw = client.get("/dashboard", params={**PERIOD, "format": "csv"}).content
        assert raw.startswith(b"\xef\xbb\xbf")
        lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert lines[0] == ["各镇街全部指标"] and lines[1][:3] == ["镇街代码", "镇街", "办件"]
        assert ["办件量"] in lines and ["最难办事排名 · 按镇街 · 差评率"] in lines
        cases_xlsx = client.get(
            "/dashboard/cases",
            params={**PERIOD, "township": TOWNSHIP, "figure": "bad", "format": "xlsx"},
        )
        listed_book = load_workbook(io.BytesIO(cases_xlsx.content))
        cells = list(listed_book.active.iter_rows(values_only=True))
        assert cells[0][:2] == ("办件编号", "事项") and cells[1][0] == bad[0].case_number

        # The fleet and the standardisation report export too.
        fleet_book = load_workbook(io.BytesIO(client.get("/fleet?format=xlsx").content))
        fleet_rows = list(fleet_book.active.iter_rows(values_only=True))
        assert fleet_rows[0][:4] == ("村(社区)代码", "村(社区)", "镇街", "登记号")
        assert [r[3] for r in fleet_rows[1:]] == ["r-good"] and fleet_rows[1][8] == 2
        fleet_csv = client.get("/fleet", params={"format": "csv"}).content
        assert fleet_csv.startswith(b"\xef\xbb\xbf") and "柑橘村" in fleet_csv.decode("utf-8-sig")
        standards = client.get("/standards", params={"format": "xlsx"})
        assert load_workbook(io.BytesIO(standards.content)).sheetnames == ["标准化报告", "合计"]
        assert (
            client.get("/fleet").status_code == 200 and "export-xlsx" in client.get("/fleet").text
        )
