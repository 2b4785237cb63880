"""One place that turns the township node's domain, sync and request errors into HTTP answers."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import ClientException

from core.errors import Conflict, DomainError, InvalidInput, NotFound
from sync.errors import SyncError
from township.errors import (
    EnrolmentDenied,
    NodeNotReady,
    PeriodFull,
    TooManyAttempts,
    Unauthenticated,
)
from township.web.console import LoginRequired, login_redirect, page

__all__ = ["exception_handlers", "status_of", "error_body"]

log = logging.getLogger(__name__)

MALFORMED = "请求格式有误: 请发送 JSON 对象, 含 village、code、instance 三项"


def status_of(exc: DomainError) -> int:
    """The HTTP status for a domain error."""
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, EnrolmentDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict | PeriodFull):
        return 409
    if isinstance(exc, TooManyAttempts):
        return 429
    if isinstance(exc, NodeNotReady):
        return 503
    return 400


def error_body(exc: DomainError) -> dict[str, Any]:
    """A JSON body with a machine-readable ``error`` and a Chinese ``message``."""
    if isinstance(exc, InvalidInput):
        return {
            "error": "invalid_input",
            "message": "；".join(e.message for e in exc.errors),
            "errors": [
                {"field": e.field, "message": e.message, "message_en": e.message_en}
                for e in exc.errors
            ],
        }
    if isinstance(exc, Unauthenticated):
        return {"error": "unauthorized", "message": str(exc)}
    if isinstance(exc, PeriodFull):
        return {"error": "slot_taken", "message": str(exc)}
    if isinstance(exc, EnrolmentDenied):
        return {"error": exc.reason, "message": str(exc)}
    if isinstance(exc, NotFound):
        return {"error": "not_found", "message": str(exc)}
    if isinstance(exc, Conflict):
        return {"error": "conflict", "message": str(exc)}
    if isinstance(exc, TooManyAttempts):
        return {"error": "too_many_attempts", "message": str(exc), "retry_after": exc.retry_after}
    if isinstance(exc, NodeNotReady):
        return {"error": "not_ready", "message": str(exc)}
    return {"error": "invalid", "message": str(exc)}


def _is_page(request: Request) -> bool:  # type: ignore[type-arg]
    """A console page (HTML) rather than the kiosks' JSON API."""
    return not request.url.path.startswith("/api/")


def _error_page(request: Request, status: int, message: str) -> Response:  # type: ignore[type-arg]
    return page(request, "error.html", status_code=status, message=message)


def _domain(request: Request, exc: DomainError) -> Response:  # type: ignore[type-arg]
    if _is_page(request):
        return _error_page(request, status_of(exc), error_body(exc)["message"])
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts) else None
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": "Bearer"}
    return Response(error_body(exc), status_code=status_of(exc), headers=headers)


COUCH_DOWN = "本镇街文档数据库暂时无法访问, 请稍后重试"


def _sync(request: Request, exc: SyncError) -> Response:  # type: ignore[type-arg]
    log.warning("CouchDB error on %s: %s", request.url.path, exc)
    if _is_page(request):
        return _error_page(request, 503, COUCH_DOWN)
    return Response({"error": "couchdb_unavailable", "message": COUCH_DOWN}, status_code=503)


_CLIENT_MESSAGES = {
    401: "请先登录",
    403: "没有权限执行此操作",
    404: "没有这个地址",
    405: "不支持这种请求方法",
    413: "请求内容过大",
}


def _client(request: Request, exc: ClientException) -> Response:  # type: ignore[type-arg]
    """Malformed JSON and bodies of the wrong shape (400), unknown paths and methods; on the
    console's pages: the login page when needed, else an error page in plain words."""
    status = exc.status_code
    if _is_page(request):
        if isinstance(exc, LoginRequired):
            return login_redirect(request.url.path, exc.expired)  # type: ignore[return-value]
        if status == 404 and exc.detail and exc.detail != "Not Found":
            return _error_page(request, 404, exc.detail)
        if status == 403:
            return _error_page(request, 403, "请刷新页面后重试 (表单已过期), 或没有权限执行此操作")
        return _error_page(request, status, _CLIENT_MESSAGES.get(status, "请求有误, 请返回重试"))
    if status == 400:
        body: dict[str, Any] = {"error": "malformed_request", "message": MALFORMED}
        if exc.extra:
            body["detail"] = exc.extra
        return Response(body, status_code=400)
    message = _CLIENT_MESSAGES.get(status, "请求有误")
    return Response({"error": "client_error", "message": message}, status_code=status)


exception_handlers: dict[int | type[Exception], Any] = {
    DomainError: _domain,
    SyncError: _sync,
    ClientException: _client,
}
