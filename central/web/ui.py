"""The district administrators' web UI: server-rendered, Chinese first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from central.db.models import Account
from central.services import accounts, catalogue, district_settings, hierarchy, kiosks, outbox
from central.services.enrolments import enrolments_by_registration
from central.services.publish import latest_version, publish
from central.web.auth import (
    admin_guard,
    current_username,
    login_session,
    password_guard,
    session_user,
)
from central.web.deps import in_db
from core.catalogue import (
    ITEM_TYPES,
    SERVICE_OBJECTS,
    CaseType,
    Eligibility,
    HandlingLevel,
    Kind,
    MaterialForm,
    Mode,
)
from core.errors import DomainError, FieldError, InvalidInput
from core.hierarchy import Level
from core.roles import Role

__all__ = ["handlers"]

GUARDS = [admin_guard]


def flash(request: Request, message: str, kind: str = "ok") -> None:  # type: ignore[type-arg]
    """Leave a message for the next page the user sees."""
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:  # type: ignore[type-arg]
    """Render a page with the common context (user, flashed messages, option lists)."""
    messages = request.session.pop("flash", []) if request.session else []
    return Template(
        name,
        context={
            "user": session_user(request),
            "messages": messages,
            "Kind": Kind,
            "Mode": Mode,
            "HandlingLevel": HandlingLevel,
            "CaseType": CaseType,
            "MaterialForm": MaterialForm,
            "Eligibility": Eligibility,
            "ITEM_TYPES": ITEM_TYPES,
            "SERVICE_OBJECTS": SERVICE_OBJECTS,
            "Role": Role,
            "Level": Level,
            **context,
        },
        status_code=status_code,
    )


def errors_of(exc: DomainError) -> dict[str, str]:
    """Field name → message, for showing next to each input."""
    if isinstance(exc, InvalidInput):
        return {e.field: e.message for e in exc.errors}
    return {getattr(exc, "field", "") or "_": str(exc)}


# --- login -------------------------------------------------------------------------------


@get("/login")
async def login_form(request: Request, next: FromQuery[str] = "/") -> Template:  # type: ignore[type-arg]
    """The login page."""
    return page(request, "login.html", next=next if next.startswith("/") else "/")


@post("/login")
async def login(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Check the login and password; only district administrators may use this server."""
    form = await request.form()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = str(form.get("next", "/"))
    account = await in_db(request, accounts.authenticate, username, password)
    if account is None or account.role != Role.DISTRICT_ADMIN.value:
        return page(
            request, "login.html", status_code=400, next=target, username=username, failed=True
        )
    request.set_session(login_session(account))
    return Redirect(target if target.startswith("/") and not target.startswith("//") else "/")


@get("/password", guards=[password_guard])
async def password_form(request: Request) -> Template:  # type: ignore[type-arg]
    """Change one's own password (required after a reset)."""
    return page(request, "password.html", errors={})


@post("/password", guards=[password_guard])
async def password_change(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Check the current password and set a new one."""
    form = await request.form()
    new, again = str(form.get("new_password", "")), str(form.get("new_password_again", ""))
    try:
        if new != again:
            raise InvalidInput(
                FieldError("new_password_again", "两次输入的新密码不一致", "passwords differ")
            )
        await in_db(
            request,
            accounts.change_password,
            current_username(request),
            str(form.get("old_password", "")),
            new,
        )
    except DomainError as exc:
        return page(request, "password.html", status_code=400, errors=errors_of(exc))
    flash(request, "密码已修改")
    return Redirect("/")


@post("/logout")
async def logout(request: Request) -> Redirect:  # type: ignore[type-arg]
    """End the session."""
    request.clear_session()
    return Redirect("/login")


@get("/lang/{code:str}")
async def set_language(
    request: Request, code: FromPath[str], back: FromQuery[str] = "/"
) -> Redirect:  # type: ignore[type-arg]
    """Switch between Chinese and English."""
    response = Redirect(back if back.startswith("/") and not back.startswith("//") else "/")
    response.set_cookie("lang", "en" if code == "en" else "zh", max_age=365 * 86400, samesite="lax")
    return response


# --- home --------------------------------------------------------------------------------


def _overview(session: Any) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "units": len(hierarchy.list_units(session, limit=100000)),
        "accounts": len(accounts.list_accounts(session)),
        "items": len(catalogue.list_items(session)),
        "version": latest_version(session),
        "pending": outbox.pending_count(session),
        "provisional_years": district_settings.provisional_years_in_use(session, today),
    }


@get("/", guards=GUARDS)
async def home(request: Request) -> Template:  # type: ignore[type-arg]
    """Overview with alerts."""
    return page(request, "home.html", **await in_db(request, _overview))


# --- units -------------------------------------------------------------------------------


@get("/units", guards=GUARDS)
async def units_page(
    request: Request,
    q: FromQuery[str] = "",
    level: FromQuery[str] = "",
    parent: FromQuery[str] = "",
) -> Template:  # type: ignore[type-arg]
    """Hierarchy list with search and filters."""
    rows = await in_db(request, hierarchy.list_units, q, level, parent)
    return page(request, "units.html", units=rows, q=q, level=level, parent=parent)


@post("/units", guards=GUARDS)
async def units_add(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Add one unit."""
    form = await request.form()
    code, name = str(form.get("code", "")), str(form.get("name", ""))
    try:
        unit = await in_db(request, hierarchy.add_unit, code, name)
    except DomainError as exc:
        rows = await in_db(request, hierarchy.list_units)
        return page(
            request,
            "units.html",
            status_code=400,
            units=rows,
            errors=errors_of(exc),
            form={"code": code, "name": name},
            q="",
            level="",
            parent="",
        )
    flash(request, f"已新增 {unit.name} ({unit.code})")
    return Redirect("/units")


@post("/units/{code:str}", guards=GUARDS)
async def units_rename(request: Request, code: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Rename a unit."""
    form = await request.form()
    try:
        unit = await in_db(request, hierarchy.rename_unit, code, str(form.get("name", "")))
        flash(request, f"已更名为 {unit.name}")
    except DomainError as exc:
        flash(request, "；".join(errors_of(exc).values()), "error")
    return Redirect("/units")


@post("/units/import", guards=GUARDS)
async def units_import(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Import villages (or any units) from a CSV file: all rows or none."""
    form = await request.form()
    upload = form.get("file")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    limit = request.app.state.settings.max_csv_bytes
    try:
        if len(data) > limit:
            raise InvalidInput(_too_big("file", limit))
        added = await in_db(request, hierarchy.import_units_csv, data)
    except DomainError as exc:
        rows = await in_db(request, hierarchy.list_units)
        return page(
            request,
            "units.html",
            status_code=400,
            units=rows,
            import_errors=_messages(exc),
            q="",
            level="",
            parent="",
        )
    flash(request, f"已导入 {len(added)} 个单位")
    return Redirect("/units")


def _too_big(field: str, limit: int) -> FieldError:
    return FieldError(field, f"文件过大: 最大 {limit // 1024} KB", "file too large")


def _messages(exc: DomainError) -> list[str]:
    if isinstance(exc, InvalidInput):
        return [e.message for e in exc.errors]
    return [str(exc)]


# --- accounts ----------------------------------------------------------------------------


def _units_by_code(session: Any) -> dict[str, Any]:
    return {u.code: u for u in hierarchy.list_units(session, limit=100000)}


def _accounts_context(session: Any, q: str, role: str, unit: str) -> dict[str, Any]:
    return {
        "accounts": accounts.list_accounts(session, q, role, unit),
        "units": _units_by_code(session),
        "q": q,
        "role": role,
        "unit": unit,
    }


@get("/accounts", guards=GUARDS)
async def accounts_page(
    request: Request, q: FromQuery[str] = "", role: FromQuery[str] = "", unit: FromQuery[str] = ""
) -> Template:  # type: ignore[type-arg]
    """Accounts with search and filters."""
    return page(request, "accounts.html", **await in_db(request, _accounts_context, q, role, unit))


@post("/accounts", guards=GUARDS)
async def accounts_create(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Create an account."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        account: Account = await in_db(
            request,
            accounts.create_account,
            form.get("username", ""),
            form.get("display_name", ""),
            form.get("role", ""),
            form.get("unit_code", ""),
            form.get("password", ""),
            form.get("phone", ""),
        )
    except DomainError as exc:
        context = await in_db(request, _accounts_context, "", "", "")
        form.pop("password", None)
        return page(
            request, "accounts.html", status_code=400, errors=errors_of(exc), form=form, **context
        )
    flash(request, f"已创建账号 {account.username}")
    return Redirect("/accounts")


@post("/accounts/{username:str}/disable", guards=GUARDS)
async def accounts_disable(request: Request, username: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Disable an account."""
    acting = current_username(request)
    try:
        await in_db(request, accounts.set_disabled, username, True, acting)
        flash(request, f"已停用账号 {username}")
    except DomainError as exc:
        flash(request, str(exc), "error")
    return Redirect("/accounts")


@post("/accounts/{username:str}/enable", guards=GUARDS)
async def accounts_enable(request: Request, username: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Enable an account again."""
    await in_db(request, accounts.set_disabled, username, False)
    flash(request, f"已启用账号 {username}")
    return Redirect("/accounts")


@post("/accounts/{username:str}/reset-password", guards=GUARDS)
async def accounts_reset(request: Request, username: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Give an account a new temporary password, shown once."""
    _, password = await in_db(request, accounts.reset_password, username)
    flash(request, f"账号 {username} 的临时密码: {password} (只显示一次, 请当面转交)", "secret")
    return Redirect("/accounts")


# --- kiosks ------------------------------------------------------------------------------


def _kiosks_context(session: Any, couch: Any, village: str, status: str) -> dict[str, Any]:
    enrolments, reachable = enrolments_by_registration(couch)
    return {
        "kiosks": kiosks.list_kiosks(session, enrolments, village, status),
        "villages": hierarchy.list_units(session, level="village", limit=100000),
        "units": _units_by_code(session),
        "village": village,
        "status": status,
        "couch_reachable": reachable,
    }


@get("/kiosks", guards=GUARDS)
async def kiosks_page(
    request: Request, village: FromQuery[str] = "", status: FromQuery[str] = ""
) -> Template:  # type: ignore[type-arg]
    """Kiosk registrations, enrolled or not."""
    context = await in_db(request, _kiosks_context, request.app.state.couch, village, status)
    return page(request, "kiosks.html", **context)


@post("/kiosks", guards=GUARDS)
async def kiosks_issue(request: Request) -> Redirect:  # type: ignore[type-arg]
    """Issue a one-time enrolment code for a village's kiosk."""
    form = await request.form()
    days = request.app.state.settings.enrolment_code_days
    try:
        reg, code = await in_db(
            request,
            kiosks.issue_code,
            str(form.get("village_code", "")),
            str(form.get("label", "")),
            current_username(request),
            days,
        )
        flash(
            request, f"{reg.village_code} 的终端启用码: {code} (有效{days}天, 只显示一次)", "secret"
        )
    except DomainError as exc:
        flash(request, "；".join(errors_of(exc).values()), "error")
    return Redirect("/kiosks")


@post("/kiosks/{registration:str}/revoke", guards=GUARDS)
async def kiosks_revoke(request: Request, registration: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Revoke a kiosk (a stolen or retired PC)."""
    form = await request.form()
    try:
        await in_db(request, kiosks.revoke, registration, str(form.get("reason", "")))
        flash(request, f"已吊销终端 {registration}")
    except DomainError as exc:
        flash(request, "；".join(errors_of(exc).values()), "error")
    return Redirect("/kiosks")


# --- catalogue ---------------------------------------------------------------------------


@get("/catalogue", guards=GUARDS)
async def catalogue_page(
    request: Request,  # type: ignore[type-arg]
    q: FromQuery[str] = "",
    kind: FromQuery[str] = "",
    level: FromQuery[str] = "",
    mode: FromQuery[str] = "",
    status: FromQuery[str] = "active",
) -> Template:
    """Catalogue list with search and filters, and the publish button."""

    def load(session: Any) -> dict[str, Any]:
        return {
            "items": [
                (row, catalogue.item_value(row))
                for row in catalogue.list_items(session, q, kind, level, mode, status)
            ],
            "version": latest_version(session),
        }

    context = await in_db(request, load)
    return page(
        request, "catalogue.html", q=q, kind=kind, level=level, mode=mode, status=status, **context
    )


@post("/catalogue/publish", guards=GUARDS)
async def catalogue_publish(request: Request) -> Redirect:  # type: ignore[type-arg]
    """Publish the catalogue as a new version (a no-op when nothing changed)."""
    couch = request.app.state.couch
    result = await in_db(request, lambda s: publish(s, couch.server(), current_username(request)))
    if result.created:
        flash(request, f"已发布目录第 {result.version} 版 ({result.item_count} 个事项)")
    else:
        flash(request, f"目录自第 {result.version} 版以来没有变化, 无需发布")
    return Redirect("/catalogue")


def _empty_item() -> dict[str, Any]:
    return {
        "modes": [],
        "service_objects": ["1"],
        "door_to_door_for": [],
        "materials": [],
        "item_type": "20",
        "case_type": "promised",
        "visits_needed": 1,
        "promised_limit_days": "",
    }


@get("/catalogue/new", guards=GUARDS)
async def item_new(request: Request) -> Template:  # type: ignore[type-arg]
    """Form for a new item."""
    return page(request, "item.html", item=_empty_item(), new=True, templates=[], errors={})


@post("/catalogue/new", guards=GUARDS)
async def item_create(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Create an item from the form."""
    data = item_from_form(await request.form())
    try:
        row = await in_db(request, catalogue.create_item, data, current_username(request))
    except DomainError as exc:
        return page(
            request,
            "item.html",
            status_code=400,
            item=data,
            new=True,
            templates=[],
            errors=errors_of(exc),
        )
    flash(request, f"已新建事项 {row.name}")
    return Redirect(f"/catalogue/{row.code}")


@get("/catalogue/{code:str}", guards=GUARDS)
async def item_page(request: Request, code: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """An item's edit form with its materials and templates."""

    def load(session: Any) -> dict[str, Any]:
        row = catalogue.get_item(session, code)
        return {
            "item": row.body,
            "templates": catalogue.templates_of(session, row.code),
            "row": row,
        }

    return page(request, "item.html", new=False, errors={}, **await in_db(request, load))


@post("/catalogue/{code:str}", guards=GUARDS)
async def item_update(request: Request, code: FromPath[str]) -> Template | Redirect:  # type: ignore[type-arg]
    """Save an item's fields."""
    data = item_from_form(await request.form())
    try:
        row = await in_db(request, catalogue.update_item, code, data, current_username(request))
    except DomainError as exc:
        templates = await in_db(request, catalogue.templates_of, code.upper())
        return page(
            request,
            "item.html",
            status_code=400,
            item={**data, "code": code.upper()},
            new=False,
            templates=templates,
            errors=errors_of(exc),
        )
    flash(request, f"已保存 {row.name}")
    return Redirect(f"/catalogue/{row.code}")


@post("/catalogue/{code:str}/retire", guards=GUARDS)
async def item_retire(request: Request, code: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Retire an item."""
    row = await in_db(request, catalogue.set_retired, code, True, current_username(request))
    flash(request, f"已停办 {row.name} (下次发布时生效)")
    return Redirect(f"/catalogue/{row.code}")


@post("/catalogue/{code:str}/restore", guards=GUARDS)
async def item_restore(request: Request, code: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Bring a retired item back."""
    row = await in_db(request, catalogue.set_retired, code, False, current_username(request))
    flash(request, f"已恢复 {row.name}")
    return Redirect(f"/catalogue/{row.code}")


@post("/catalogue/{code:str}/templates", guards=GUARDS)
async def item_template_upload(request: Request, code: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Upload a template for one material."""
    form = await request.form()
    upload = form.get("file")
    limit = request.app.state.settings.max_template_bytes
    try:
        if not isinstance(upload, UploadFile):
            raise InvalidInput(FieldError("file", "请选择要上传的文件", "choose a file"))
        data = await upload.read()
        tpl = await in_db(
            request,
            catalogue.add_template,
            code,
            str(form.get("material_key", "")),
            upload.filename or "",
            upload.content_type or "",
            data,
            limit,
            current_username(request),
        )
        flash(request, f"已上传模板 {tpl.filename}")
    except DomainError as exc:
        flash(request, "；".join(errors_of(exc).values()), "error")
    return Redirect(f"/catalogue/{code.upper()}")


@post("/catalogue/{code:str}/templates/{template_id:int}/delete", guards=GUARDS)
async def item_template_delete(
    request: Request, code: FromPath[str], template_id: FromPath[int]
) -> Redirect:  # type: ignore[type-arg]
    """Remove a template."""
    await in_db(request, catalogue.remove_template, code, template_id, current_username(request))
    flash(request, "已删除模板")
    return Redirect(f"/catalogue/{code.upper()}")


def item_from_form(form: Any) -> dict[str, Any]:
    """The item dict a catalogue form describes (materials come as rows m-<i>-<field>)."""
    text = {k: str(v).strip() for k, v in form.items() if not isinstance(v, UploadFile)}
    data: dict[str, Any] = {
        key: text.get(key, "")
        for key in (
            "code",
            "name",
            "kind",
            "handling_level",
            "department",
            "impl_code",
            "item_type",
            "case_type",
            "limit_note",
            "fee_basis",
            "conditions",
            "place",
            "hours",
            "consult",
            "complaint",
            "process",
        )
    }
    data["code"] = data["code"].upper()
    for key in ("item_type", "case_type"):  # left out: the item's defaults apply
        if not data[key]:
            del data[key]
    for key in ("modes", "service_objects", "door_to_door_for"):
        data[key] = [str(v) for v in form.getall(key, [])]
    data["legal_limit_days"] = text.get("legal_limit_days") or None
    data["promised_limit_days"] = text.get("promised_limit_days") or "0"
    data["visits_needed"] = text.get("visits_needed") or "0"
    data["fee"] = "fee" in text
    materials: list[dict[str, Any]] = []
    rows = sorted(
        {int(k.split("-")[1]) for k in text if k.startswith("m-") and k.split("-")[1].isdigit()}
    )
    for i in rows:
        row: dict[str, Any] = {
            f: text.get(f"m-{i}-{f}", "")
            for f in ("key", "name", "form", "copies", "source", "standard", "follow_days")
        }
        if not row["name"] and not row["key"]:
            continue
        row["key"] = row["key"] or f"m{len(materials) + 1}"
        row["form"] = row["form"] or "original"
        row["copies"] = row["copies"] or "1"
        row["required"] = f"m-{i}-required" in text
        row["may_follow"] = f"m-{i}-may_follow" in text
        row["follow_days"] = row["follow_days"] or None
        materials.append(row)
    data["materials"] = materials
    return data


# --- settings ----------------------------------------------------------------------------


def _settings_context(session: Any) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "exceptions": district_settings.exceptions(session),
        "announced": sorted(district_settings.work_calendar(session).announced_years),
        "sla": district_settings.sla_thresholds(session),
        "provisional_years": district_settings.provisional_years_in_use(session, today),
        "this_year": today.year,
    }


@get("/settings", guards=GUARDS)
async def settings_page(request: Request) -> Template:  # type: ignore[type-arg]
    """Calendar exceptions, announced years and SLA thresholds."""
    return page(request, "settings.html", **await in_db(request, _settings_context))


async def _settings_action(
    request: Request, fn: Callable[..., Any], *args: Any, done: str
) -> Redirect:  # type: ignore[type-arg]
    try:
        await in_db(request, fn, *args)
        flash(request, done)
    except DomainError as exc:
        flash(request, "；".join(errors_of(exc).values()), "error")
    return Redirect("/settings")


@post("/settings/exceptions", guards=GUARDS)
async def settings_add_exception(request: Request) -> Redirect:  # type: ignore[type-arg]
    """Add a calendar exception."""
    form = await request.form()
    day = str(form.get("day", ""))
    workday = form.get("workday") == "1"
    return await _settings_action(
        request,
        district_settings.add_exception,
        day,
        workday,
        str(form.get("note", "")),
        done=f"已添加例外日期 {day}",
    )


@post("/settings/exceptions/{day:str}/delete", guards=GUARDS)
async def settings_remove_exception(request: Request, day: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Remove a calendar exception."""
    return await _settings_action(
        request, district_settings.remove_exception, day, done=f"已删除例外日期 {day}"
    )


@post("/settings/years", guards=GUARDS)
async def settings_year(request: Request) -> Redirect:  # type: ignore[type-arg]
    """Mark a year's arrangement as entered, or not."""
    form = await request.form()
    try:
        year = int(str(form.get("year", "")))
    except ValueError:
        flash(request, "年份应为数字", "error")
        return Redirect("/settings")
    announced = form.get("announced") == "1"
    user = current_username(request)
    done = f"{year}年已标记为已录入全年安排" if announced else f"{year}年恢复为临时计算"
    return await _settings_action(
        request, district_settings.set_year_announced, year, announced, user, done=done
    )


@post("/settings/sla", guards=GUARDS)
async def settings_sla(request: Request) -> Redirect:  # type: ignore[type-arg]
    """Change the three-colour thresholds."""
    form = await request.form()
    try:
        days = int(str(form.get("yellow_remaining_days", "")))
        ratio = float(str(form.get("yellow_elapsed_percent", ""))) / 100
    except ValueError:
        flash(request, "阈值应为数字", "error")
        return Redirect("/settings")
    return await _settings_action(
        request, district_settings.set_sla_thresholds, days, ratio, done="已保存红黄绿阈值"
    )


handlers = [
    login_form,
    login,
    password_form,
    password_change,
    logout,
    set_language,
    home,
    units_page,
    units_add,
    units_import,
    units_rename,
    accounts_page,
    accounts_create,
    accounts_disable,
    accounts_enable,
    accounts_reset,
    kiosks_page,
    kiosks_issue,
    kiosks_revoke,
    catalogue_page,
    catalogue_publish,
    item_new,
    item_create,
    item_page,
    item_update,
    item_retire,
    item_restore,
    item_template_upload,
    item_template_delete,
    settings_page,
    settings_add_exception,
    settings_remove_exception,
    settings_year,
    settings_sla,
]
