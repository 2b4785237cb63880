"""The district dashboard in Chromium (issue 8): filter by township and period, open a ranking's
cases, export the tables as XLSX and read the download back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page, expect

from central.db import make_engine, make_sessionmaker
from central.services.district_model import DistrictExtension
from central.web.dashboard import district_today
from sync.projection import project
from tests.e2e.conftest import District, login
from tests.integration.test_district_dashboard import OTHER_TOWNSHIP, _fixture
from tests.integration.test_projection import CAL, TOWNSHIP

pytestmark = pytest.mark.e2e


def _seed(district: District) -> None:
    """The two-township fixture of the dashboard's figures, projected into the read model under
    a source of its own (the server's projection follows the `district` database)."""
    engine = make_engine(district.database_url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    project(_fixture(), sessions, "e2e-dashboard", CAL, district_today(),
            extension=DistrictExtension(now))  # fmt: skip
    engine.dispose()


def test_filter_rank_open_cases_and_export(page: Page, district: District, tmp_path: Path) -> None:
    _seed(district)
    login(page, district)
    page.get_by_role("link", name="办事情况", exact=True).click()
    page.wait_for_url(f"{district.url}/dashboard")
    expect(page.get_by_role("heading", name="全区办事情况")).to_be_visible()

    # Period and township.
    page.get_by_label("受理登记自").fill("2026-12-01")
    page.get_by_label("至", exact=True).fill("2026-12-31")
    page.locator("select[name=township]").select_option(label="静观镇")
    page.get_by_role("button", name="筛选").click()
    expect(page.locator("#total-cases")).to_have_text("3")
    expect(page.locator(f'#volume tr[data-key="{OTHER_TOWNSHIP}"]')).to_have_count(0)
    expect(page.locator("svg.chart")).to_have_count(6)

    # Rank by returns per case (a figure that does not move with today's date) and open the
    # cases behind 静观镇's: a3, returned once for a missing 户口簿.
    page.get_by_role("button", name="每件退回次数").click()
    expect(page.locator("#ranking-title")).to_contain_text("每件退回次数")
    page.locator(f'#ranking tr[data-key="{TOWNSHIP}"] a[data-figure="returns"]').click()
    page.wait_for_url("**/dashboard/cases?**")
    expect(page.locator("#cases-title")).to_have_text("静观镇 · 有退回")
    expect(page.locator("#case-count")).to_have_text("1")
    expect(page.locator("#cases tbody tr")).to_have_count(1)
    expect(page.locator("#cases tbody tr td").nth(2)).to_have_text("静观镇")
    page.go_back()
    page.wait_for_url("**/dashboard?**")

    # Group 静观镇's cases by mode: one row per mode and a total row.
    page.locator("select[name=group]").select_option(label="服务方式")
    page.get_by_role("button", name="筛选").click()
    expect(page.locator("#volume tbody tr")).to_have_count(4)  # window, agency, door, total
    expect(page.locator("#volume tr.total td").nth(1)).to_have_text("3")
    expect(page.locator("#ranking-title")).to_contain_text("按服务方式")
    page.locator("select[name=group]").select_option(label="镇街")
    page.get_by_role("button", name="筛选").click()

    # Export every table as XLSX and read the file back.
    with page.expect_download() as info:
        page.locator("#export-xlsx").click()
    download = info.value
    assert download.suggested_filename == "dashboard-township-2026-12-01-2026-12-31.xlsx"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    book = load_workbook(path)
    assert "各镇街全部指标" in book.sheetnames and "三色预警(今日)" in book.sheetnames
    rows = list(book["各镇街全部指标"].iter_rows(values_only=True))
    assert rows[0][:3] == ("镇街代码", "镇街", "办件")
    assert [r[:3] for r in rows[1:]] == [(TOWNSHIP, "静观镇", 3)]
    ranking = list(book[book.sheetnames[-1]].iter_rows(values_only=True))
    assert ranking[0][2] == "每件退回次数" and ranking[1][1:] == ("静观镇", 0.33, 1, 3)
