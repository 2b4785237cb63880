"""One place that turns domain and sync errors into HTTP answers."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.response import Redirect, Template

from central.web.auth import PasswordChangeRequired
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from sync.errors import SyncError

__all__ = ["exception_handlers", "status_of", "error_body"]

log = logging.getLogger(__name__)


def status_of(exc: DomainError) -> int:
    """The HTTP status for a domain error."""
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 400


def error_body(exc: DomainError) -> dict[str, Any]:
    """A JSON body naming every field at fault, in Chinese with an English twin."""
    if isinstance(exc, InvalidInput):
        return {
            "error": "invalid_input",
            "message": "；".join(e.message for e in exc.errors),
            "errors": [
                {"field": e.field, "message": e.message, "message_en": e.message_en}
                for e in exc.errors
            ],
        }
    if isinstance(exc, Conflict):
        return {
            "error": "conflict",
            "message": str(exc),
            "errors": [{"field": exc.field, "message": str(exc)}],
        }
    if isinstance(exc, NotFound):
        return {"error": "not_found", "message": str(exc), "errors": []}
    return {"error": "invalid", "message": str(exc), "errors": []}


def _wants_html(request: Request) -> bool:  # type: ignore[type-arg]
    path = request.url.path
    return not (path.startswith("/api/") or path.startswith("/open311/"))


def _domain(request: Request, exc: DomainError) -> Response:  # type: ignore[type-arg]
    if _wants_html(request):
        return Template(
            "error.html",
            context={"message": error_body(exc)["message"], "errors": error_body(exc)["errors"]},
            status_code=status_of(exc),
        )
    return Response(error_body(exc), status_code=status_of(exc))


def _sync(request: Request, exc: SyncError) -> Response:  # type: ignore[type-arg]
    log.warning("CouchDB error on %s: %s", request.url.path, exc)
    message = "文档数据库暂时无法访问, 请稍后重试"
    if _wants_html(request):
        return Template("error.html", context={"message": message, "errors": []}, status_code=503)
    return Response(
        {"error": "couchdb_unavailable", "message": message, "detail": str(exc)}, status_code=503
    )


def _unauthorized(request: Request, exc: Exception) -> Response:  # type: ignore[type-arg]
    if isinstance(exc, PasswordChangeRequired):
        if _wants_html(request):
            return Redirect("/password")
        return Response(
            {"error": "password_change_required", "message": "请先修改临时密码"}, status_code=403
        )
    if _wants_html(request):
        return Redirect(f"/login?next={request.url.path}")
    return Response({"error": "not_authenticated", "message": "请先登录"}, status_code=401)


def _forbidden(request: Request, exc: Exception) -> Response:  # type: ignore[type-arg]
    message = "没有权限执行此操作"
    if _wants_html(request):
        return Template("error.html", context={"message": message, "errors": []}, status_code=403)
    return Response({"error": "forbidden", "message": message}, status_code=403)


def _too_large(request: Request, exc: Exception) -> Response:  # type: ignore[type-arg]
    limit = request.app.state.settings.max_template_bytes // (1024 * 1024)
    message = f"上传的文件过大 (模板最大 {limit} MB)"
    if _wants_html(request):
        return Template("error.html", context={"message": message, "errors": []}, status_code=413)
    return Response(
        {
            "error": "too_large",
            "message": message,
            "errors": [{"field": "file", "message": message}],
        },
        status_code=413,
    )


exception_handlers: dict[int | type[Exception], Any] = {
    RequestEntityTooLarge: _too_large,
    DomainError: _domain,
    SyncError: _sync,
    NotAuthorizedException: _unauthorized,
    PermissionDeniedException: _forbidden,
}
