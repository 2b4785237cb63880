"""The village kiosk: a local Litestar app over the embedded store, Chinese first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Litestar, Request, Response, get, post
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.params import FromPath, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from core.cases import parse_event_id
from core.catalogue import Kind
from sync.errors import DocNotFound
from village_node.agents import authenticate
from village_node.enrolment import enrol, first_pull
from village_node.errors import EnrolmentFailed, KioskError
from village_node.i18n import EN, language, local_time
from village_node.i18n import install as install_i18n
from village_node.settings import Settings
from village_node.syncing import SyncState, background_sync
from village_node.web import cases, intake, video
from village_node.web.common import (
    Kiosk,
    LoginRequired,
    agent_guard,
    flash,
    kiosk_of,
    page,
    safe_target,
)

__all__ = ["create_app", "Kiosk"]

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
OPEN_PATHS = ("/enrol", "/static/", "/lang/")


# --- enrolment -------------------------------------------------------------------------------


@get("/enrol")
async def enrol_form(request: Request) -> Template:  # type: ignore[type-arg]
    """The enrolment screen: the only page until the kiosk is enrolled."""
    old = kiosk_of(request).enrolment
    return page(
        request,
        "enrol.html",
        form={
            "township_url": old.township_url if old else "",
            "village": old.village if old else "",
        },
        error="",
    )


@post("/enrol")
async def enrol_submit(request: Request) -> Template | Redirect | Response[Any]:  # type: ignore[type-arg]
    """Present the one-time code to the township, save the credentials, pull the village data
    (in the background with a progress bar when the page asks for JSON)."""
    kiosk = kiosk_of(request)
    form = await request.form()
    values = {k: str(form.get(k, "")).strip() for k in ("township_url", "village", "code")}
    try:
        enrolment = await asyncio.to_thread(
            enrol,
            kiosk.settings,
            kiosk.store,
            values["township_url"],
            values["village"],
            values["code"],
        )
    except EnrolmentFailed as exc:
        if _wants_json(request):
            return Response({"error": str(exc)}, status_code=400)
        return page(request, "enrol.html", status_code=400, form=values, error=str(exc))
    if _wants_json(request):  # the page shows the first pull's progress, then goes on
        kiosk.syncer.start()
        flash(request, "本终端已启用, 本村资料已从镇街服务中心下载。请登录。")
        return Response({"next": "/login"})
    try:
        result = await asyncio.to_thread(first_pull, kiosk.settings, kiosk.store, enrolment)
    except EnrolmentFailed as exc:
        flash(request, str(exc), "error")
    else:
        await asyncio.to_thread(kiosk.syncer.run)
        flash(request, f"本终端已启用, 已从镇街服务中心下载 {result.docs_written} 份资料。请登录。")
    return Redirect("/login")


# --- login -----------------------------------------------------------------------------------


@get("/login")
async def login_form(
    request: Request,  # type: ignore[type-arg]
    next: FromQuery[str] = "/",
    expired: FromQuery[bool] = False,
) -> Template:
    """The login page."""
    return page(request, "login.html", next=safe_target(next), expired=expired, failed=False)


@post("/login")
async def login(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Check the agent's login offline against the replicated directory."""
    kiosk = kiosk_of(request)
    enrolment = kiosk.enrolment
    assert enrolment is not None  # before_request sends the unenrolled to /enrol
    form = await request.form()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_target(str(form.get("next", "/")))
    agent = await asyncio.to_thread(
        authenticate, kiosk.store, enrolment.village, username, password
    )
    if agent is None:
        return page(
            request, "login.html", status_code=400, next=target, username=username, failed=True
        )
    request.set_session({"user": agent.username, "name": agent.display_name, "seen": time.time()})
    return Redirect(target)


@post("/logout")
async def logout(request: Request) -> Redirect:  # type: ignore[type-arg]
    """End the session."""
    request.clear_session()
    return Redirect("/login")


@get("/lang/{lang:str}")
async def set_language(lang: FromPath[str], back: FromQuery[str] = "/") -> Redirect:
    """Switch between Chinese and English (a cookie)."""
    response = Redirect(safe_target(back))
    response.set_cookie("lang", "en" if lang == "en" else "zh", max_age=365 * 24 * 3600)
    return response


# --- catalogue -------------------------------------------------------------------------------


@get("/", guards=[agent_guard])
async def home() -> Redirect:
    """The cases list is the first page."""
    return Redirect("/cases")


@get("/catalogue", guards=[agent_guard])
async def catalogue_list(
    request: Request,  # type: ignore[type-arg]
    q: FromQuery[str] = "",
    kind: FromQuery[str] = "",
) -> Template:
    """Browse by the four kinds and search by name, code or pinyin initials."""
    view = kiosk_of(request).catalogue.current()
    kind = kind if kind in {k.value for k in Kind} else ""
    items = view.search(q, kind) if view is not None else []
    counts = view.count_by_kind() if view is not None else {}
    return page(request, "catalogue.html", view=view, items=items, q=q, kind=kind, counts=counts)


@get("/catalogue/{code:str}", guards=[agent_guard])
async def catalogue_item(request: Request, code: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """An item's guide: materials with templates, limits, fees, modes, handling level."""
    found = kiosk_of(request).catalogue.item(code)
    if found is None:
        raise NotFoundException("目录中没有这个事项")
    return page(request, "item.html", guide=found, item=found.item)


@get("/catalogue/{code:str}/templates/{key:str}/{filename:str}", guards=[agent_guard])
async def template_file(
    request: Request,  # type: ignore[type-arg]
    code: FromPath[str],
    key: FromPath[str],
    filename: FromPath[str],
) -> Response[bytes]:
    """Download a material's template from the store."""
    kiosk = kiosk_of(request)
    found = kiosk.catalogue.item(code)
    template = next(
        (
            t
            for t in (found.templates if found else ())
            if (t.material_key, t.filename) == (key, filename)
        ),
        None,
    )
    if found is None or template is None:
        raise NotFoundException("没有这个模板")
    try:
        data = kiosk.store.get_attachment(found.doc_id, template.name)
    except DocNotFound as exc:
        raise NotFoundException("模板文件还没有同步到本机") from exc
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    return Response(
        data, media_type=template.content_type, headers={"Content-Disposition": disposition}
    )


# --- sync ------------------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:  # type: ignore[type-arg]
    return "application/json" in request.headers.get("accept", "")


def _outcome(state: SyncState) -> str:
    return state.last_error or f"同步完成: 上传 {state.pushed} 份, 下载 {state.pulled} 份"


@post("/sync", guards=[agent_guard])
async def sync_now(request: Request) -> Redirect | Response[Any]:  # type: ignore[type-arg]
    """Sync now (push, then pull). The page's script asks for JSON: the sync then runs in the
    background and the page follows ``/sync/progress``; a plain form post waits for it."""
    kiosk = kiosk_of(request)
    if _wants_json(request):
        return Response({"started": kiosk.syncer.start()})
    form = await request.form()
    state = await asyncio.to_thread(kiosk.syncer.run)
    if state is None:
        flash(request, "正在同步, 请稍候")
    else:
        flash(request, _outcome(state), "error" if state.last_error else "ok")
    return Redirect(safe_target(str(form.get("back", "/"))))


@get("/sync/progress")
async def sync_progress(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """What the header shows, for the page's script to follow a sync as it runs."""
    kiosk = kiosk_of(request)
    syncer = kiosk.syncer
    progress, state = syncer.progress, syncer.state()
    busy = syncer.busy
    return {
        "busy": busy,
        "phase": progress.phase,
        "done": progress.done,
        "total": progress.total,
        "percent": progress.percent,
        "link": state.link,
        "link_label": EN.get(state.link_label, state.link_label)
        if language(request) == "en"
        else state.link_label,
        "retry_in": state.retry_in(),
        "last_sync": local_time(state.last_success) or "—",
        "waiting": await asyncio.to_thread(syncer.waiting, state),
        "error": state.last_error,
        "refused": len(state.refused),
        "message": "" if busy or not state.last_attempt else _outcome(state),
    }


@get("/sync", guards=[agent_guard])
async def sync_page(request: Request) -> Template:  # type: ignore[type-arg]
    """The sync in detail: the last attempts and the documents the township refused."""
    kiosk = kiosk_of(request)
    state = kiosk.syncer.state()
    refused = [(r, _case_number_of(kiosk, r["id"])) for r in state.refused]
    return page(request, "sync.html", refused=refused)


def _case_number_of(kiosk: Kiosk, doc_id: str) -> str:
    """The number of the case a refused document belongs to ("" for other documents)."""
    try:
        of_case = parse_event_id(doc_id)[0] if doc_id.startswith("case_event:") else doc_id
        return (
            str(kiosk.store.get(of_case).get("case_number", ""))
            if of_case.startswith("case:")
            else ""
        )
    except (ValueError, DocNotFound):
        return ""


@post("/sync/refused/forget", guards=[agent_guard])
async def forget_refused(request: Request) -> Redirect:  # type: ignore[type-arg]
    """The agent has read the list of refused documents."""
    await asyncio.to_thread(kiosk_of(request).syncer.forget_refused)
    flash(request, "已清除拒收记录; 这些文档仍保存在本机")
    return Redirect("/sync")


# --- the app ---------------------------------------------------------------------------------


class EnrolFirst(NotAuthorizedException):
    """The kiosk is not enrolled (or is, and the enrolment screen is not needed)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target


def enrolled_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Until enrolled the kiosk shows only the enrolment screen; afterwards that screen is
    needed again only when the township refused the credentials (a new code to enter)."""
    path = connection.url.path
    kiosk = kiosk_of(connection)
    enrolled = kiosk.enrolment is not None
    if not enrolled and not path.startswith(OPEN_PATHS):
        raise EnrolFirst("/enrol")
    if enrolled and path == "/enrol" and not kiosk.syncer.state().revoked:
        raise EnrolFirst("/login")


def _error_page(request: Request, exc: Exception) -> Response[Any]:  # type: ignore[type-arg]
    """Errors as a page in plain words; login needed → the login page."""
    if isinstance(exc, EnrolFirst):
        return Redirect(exc.target)
    if isinstance(exc, LoginRequired):
        target = "/login?next=" + quote(request.url.path)
        if exc.expired:
            target += "&expired=true"
        return Redirect(target)
    if isinstance(exc, KioskError):
        status, message = 400, str(exc)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        message = (
            exc.detail
            if status == 404 and exc.detail
            else {
                403: "请刷新页面后重试 (表单已过期)",
                404: "没有这个页面",
            }.get(status, "请求有误, 请返回重试")
        )
    else:
        log.exception("unexpected error", exc_info=exc)
        status, message = 500, "出了点问题, 请返回重试; 数据都保存在本机"
    return page(request, "error.html", status_code=status, message=message)


@contextlib.asynccontextmanager
async def _background_sync(app: Litestar) -> AsyncIterator[None]:
    kiosk: Kiosk = app.state.kiosk
    interval = kiosk.settings.sync_interval

    await asyncio.to_thread(kiosk.syncer.write_status_safely)  # at start
    # The read model catches up now rather than on the first list (a first build takes seconds).
    warm_up = asyncio.create_task(asyncio.to_thread(kiosk.desk.catch_up))
    task = asyncio.create_task(background_sync(kiosk.syncer)) if interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await warm_up
        except Exception:  # the next start builds it again
            log.exception("could not bring the cases read model up to date")
        kiosk.desk.close()
        kiosk.store.close()


def create_app(settings: Settings) -> Litestar:
    """Assemble the kiosk app for one data folder."""
    kiosk = Kiosk(settings)
    secret = settings.secret_key()
    session_config = CookieBackendConfig(
        # The cookie outlives the idle limit so the guard sees a stale session and says so.
        secret=secret,
        max_age=settings.session_idle + 3600,
        key="sanji_kiosk_session",
    )
    return Litestar(
        route_handlers=[
            enrol_form,
            enrol_submit,
            login_form,
            login,
            logout,
            set_language,
            home,
            catalogue_list,
            catalogue_item,
            template_file,
            sync_now,
            sync_progress,
            sync_page,
            forget_refused,
            *intake.ROUTES,
            *cases.ROUTES,
            *video.ROUTES,
            create_static_files_router(
                path="/static", directories=[HERE / "static"], include_in_schema=False
            ),
        ],
        state=State({"kiosk": kiosk, "settings": settings}),
        guards=[enrolled_guard],
        middleware=[session_config.middleware],
        csrf_config=CSRFConfig(secret=secret.hex(), cookie_name="sanji_kiosk_csrf"),
        template_config=TemplateConfig(
            directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=install_i18n
        ),
        exception_handlers={Exception: _error_page},
        lifespan=[_background_sync],
        openapi_config=None,
        debug=settings.debug,
    )
