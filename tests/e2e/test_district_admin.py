"""District administrators at work in Chromium: catalogue, publish, accounts and kiosks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import District, login

pytestmark = pytest.mark.e2e


def test_create_item_with_template_and_publish(
    page: Page, district: District, tmp_path: Path
) -> None:
    login(page, district)
    page.get_by_role("link", name="事项目录").click()
    before = page.locator("#current-version").inner_text()
    previous = int(before) if before.isdigit() else 0

    page.get_by_role("link", name="新建事项").click()
    page.get_by_label("基本编码(12位)").fill("500109SH0901")
    page.get_by_label("事项名称").fill("测试·适老化改造申请")
    page.get_by_label("实施主体").fill("北碚区民政局")
    page.get_by_label("服务类别").select_option("life")
    page.get_by_label("办理层级").select_option("township")
    page.get_by_label("法定时限(工作日)").fill("20")
    page.get_by_label("承诺时限(工作日, 即办件填0)").fill("25")
    page.get_by_label("上门办").check()
    page.get_by_label("帮代办").check()
    page.get_by_label("高龄老人").check()
    names = page.get_by_label("材料名称")
    names.nth(0).fill("身份证")
    names.nth(1).fill("改造申请表")
    page.locator("#save-item").click()

    # A promised limit longer than the legal one is refused, naming the field, and nothing is saved.
    expect(page.locator('[data-error-for="promised_limit_days"]')).to_contain_text(
        "不能长于法定时限"
    )
    page.get_by_label("承诺时限(工作日, 即办件填0)").fill("10")
    page.locator("#save-item").click()
    expect(page.get_by_role("status")).to_contain_text("已新建事项 测试·适老化改造申请")
    assert re.search(r"/catalogue/500109SH0901$", page.url)

    template = tmp_path / "改造申请表.pdf"
    template.write_bytes(b"%PDF-1.4\n% blank form for tests\n%%EOF\n")
    page.locator('select[name="material_key"]').select_option(label="改造申请表")
    page.locator('input[type="file"]').set_input_files(str(template))
    page.get_by_role("button", name="上传模板").click()
    expect(page.get_by_role("status")).to_contain_text("已上传模板")

    page.get_by_role("link", name="事项目录").click()
    page.get_by_role("button", name="发布目录").click()
    expect(page.get_by_role("status")).to_contain_text(f"已发布目录第 {previous + 1} 版")
    expect(page.locator("#current-version")).to_have_text(str(previous + 1))

    catalogue = district.couch()["catalogue"]
    manifest = catalogue[f"catalogue_manifest:{previous + 1:06d}"]
    entry = next(i for i in manifest["items"] if i["code"] == "500109SH0901")
    item = catalogue[entry["doc"]]
    assert item["name"] == "测试·适老化改造申请"
    assert item["promised_limit_days"] == 10
    assert [m["name"] for m in item["materials"]] == ["身份证", "改造申请表"]
    attachment_name = next(iter(item["_attachments"]))
    assert attachment_name.endswith("改造申请表.pdf")
    assert catalogue.get_attachment(item, attachment_name).read().startswith(b"%PDF")

    # Publishing again without changes is a no-op.
    page.get_by_role("button", name="发布目录").click()
    expect(page.get_by_role("status")).to_contain_text("没有变化")
    expect(page.locator("#current-version")).to_have_text(str(previous + 1))


def test_disable_account_and_revoke_kiosk(page: Page, district: District) -> None:
    login(page, district)
    page.get_by_role("link", name="账号").click()
    page.get_by_label("搜索").fill("jg.v202")
    page.get_by_role("button", name="筛选").click()
    row = page.locator('tr[data-username="jg.v202"]')
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="停用").click()
    expect(page.get_by_role("status")).to_contain_text("已停用账号 jg.v202")
    page.get_by_label("搜索").fill("jg.v202")
    page.get_by_role("button", name="筛选").click()
    expect(page.locator('tr[data-username="jg.v202"]')).to_contain_text("已停用")
    directory = district.couch()["directory"]
    assert directory["account:jg.v202"]["disabled"] is True

    page.get_by_role("link", name="终端", exact=True).click()
    page.locator('select[name="village_code"]').select_option("500109110202")
    page.get_by_label("备注").fill("腊梅村便民服务站电脑")
    page.get_by_role("button", name="发放启用码").click()
    notice = page.locator(".flash.secret")
    expect(notice).to_contain_text("终端启用码")
    code = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", notice.inner_text())
    assert code is not None
    row = page.locator("tr", has_text="腊梅村便民服务站电脑")
    expect(row).to_contain_text("待启用")
    registration = row.get_attribute("data-registration")
    registration_doc = directory[f"kiosk_registration:{registration}"]
    assert registration_doc["revoked"] is False
    assert code.group(0) not in str(registration_doc)  # only the hash travels

    row.get_by_label("吊销原因").fill("电脑被盗")
    row.get_by_role("button", name="吊销").click()
    expect(page.get_by_role("status")).to_contain_text(f"已吊销终端 {registration}")
    expect(page.locator(f'tr[data-registration="{registration}"]')).to_contain_text("已吊销")
    revoked = directory[f"kiosk_registration:{registration}"]
    assert revoked["revoked"] is True
    assert revoked["revoked_reason"] == "电脑被盗"
