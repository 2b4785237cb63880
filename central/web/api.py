"""The district administrators' JSON API under /api/v1 (OpenAPI at /api/v1/schema).

Every endpoint but the session ones needs a logged-in district administrator (the same signed
session cookie as the web UI) whose password is not a temporary one: after a reset, only
``PUT /api/v1/session/password`` is allowed (403 ``password_change_required`` otherwise).

Errors are JSON with a Chinese message and every field at fault: ``{"error": "invalid_input",
"message": "…", "errors": [{"field", "message", "message_en"}]}`` (400), ``not_found`` (404),
``conflict`` (409), ``not_authenticated`` (401), ``forbidden`` (403, also a missing CSRF
header), ``couchdb_unavailable`` (503).

CSRF: like the UI, every unsafe request — logging in included — must send the ``x-csrftoken``
header with the value of the ``sanji_csrf`` cookie, which any GET sets (``GET /api/v1/session``
is the natural first call). Login is *not* exempt: a forged cross-site login (login CSRF)
would silently put an administrator's browser into the attacker's session, and because this
API reads the raw body whatever its content type, a plain HTML form posting ``text/plain`` could
carry a JSON login. Fetching the cookie first costs an API client one request.

Request bodies are read raw and decoded here with msgspec, so malformed JSON gets a Chinese 400
naming ``body`` instead of the framework's English one; their shapes are still documented in
the OpenAPI schema (see ``accepts``). Unit import takes the CSV file itself as the body
(``Content-Type: text/csv``); a template upload is ``multipart/form-data`` with the file in the
field ``file``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, patch, post, put
from litestar.datastructures import CacheControlHeader, UploadFile
from litestar.exceptions import ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath, FromQuery, QueryParameter

from central.db.models import (
    Account,
    CatalogueVersion,
    Item,
    KioskRegistration,
    MaterialTemplate,
    Unit,
)
from central.services import accounts, catalogue, district_settings, hierarchy, kiosks, published
from central.services.enrolments import enrolments_by_registration
from central.services.publish import PublishResult, publish
from central.web.auth import (
    admin_guard,
    current_username,
    login_session,
    password_guard,
)
from central.web.deps import in_db
from core.catalogue import CatalogueItem
from core.errors import FieldError, InvalidInput
from core.roles import Role

__all__ = [
    "handlers",
    "decode_body",
    "SessionCreate",
    "SessionRead",
    "LoginRefused",
    "PasswordChange",
    "UnitCreate",
    "UnitUpdate",
    "UnitRead",
    "AccountCreate",
    "AccountRead",
    "TemporaryPassword",
    "KioskCreate",
    "KioskRevoke",
    "KioskRead",
    "KioskList",
    "KioskIssued",
    "ItemRead",
    "TemplateRead",
    "PublishRead",
    "VersionRead",
    "ExceptionCreate",
    "ExceptionRead",
    "YearUpdate",
    "SlaUpdate",
    "SlaRead",
    "CalendarRead",
    "SettingsRead",
]

T = TypeVar("T")
NO_STORE = CacheControlHeader(no_store=True)
"""For answers that carry a secret shown once (a temporary password, an enrolment code)."""
MAX_JSON_BYTES = 1024 * 1024
"""A JSON body is a form's worth of data; anything longer is a mistake."""


# --- shapes ------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (SQLite hands back the stored UTC times without their zone)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Login name and password."""

    username: str
    password: str


class SessionRead(msgspec.Struct):
    """Who is logged in; ``must_change_password``: only a password change is allowed until done."""

    username: str
    display_name: str
    role: str
    unit_code: str
    must_change_password: bool

    @classmethod
    def of(cls, a: Account) -> SessionRead:
        """Shape the logged-in account."""
        return cls(a.username, a.display_name, a.role, a.unit_code, a.must_change_password)


LOGIN_REFUSED = "登录名或密码不正确, 或该账号不是区级管理员"


class LoginRefused(msgspec.Struct):
    """Why a login failed (the same for a wrong password and a non-administrator)."""

    error: str
    message: str


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    """One's current password and the new one."""

    old_password: str
    new_password: str


class UnitCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new unit; its level and parent follow from the 12-digit division code."""

    code: str
    name: str


class UnitUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A unit's new name (its code never changes)."""

    name: str


class UnitRead(msgspec.Struct):
    """A unit of the district's hierarchy."""

    code: str
    name: str
    level: str
    parent: str | None
    demo: bool
    updated_at: datetime

    @classmethod
    def of(cls, unit: Unit) -> UnitRead:
        """Shape a unit row."""
        return cls(
            unit.code, unit.name, unit.level, unit.parent_code, unit.demo, _utc(unit.updated_at)
        )


class AccountCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new account, bound to a unit of the level its role needs."""

    username: str
    display_name: str
    role: Annotated[str, msgspec.Meta(examples=[r.value for r in Role])]
    unit_code: str
    password: str
    phone: str = ""


class AccountRead(msgspec.Struct):
    """An account, without its password hash."""

    username: str
    display_name: str
    role: str
    unit_code: str
    phone: str
    disabled: bool
    must_change_password: bool
    updated_at: datetime

    @classmethod
    def of(cls, a: Account) -> AccountRead:
        """Shape an account row."""
        return cls(
            a.username,
            a.display_name,
            a.role,
            a.unit_code,
            a.phone,
            a.disabled,
            a.must_change_password,
            _utc(a.updated_at),
        )


class TemporaryPassword(msgspec.Struct):
    """A new temporary password, shown this once; it must be changed at the next login."""

    username: str
    temporary_password: str


class KioskCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A kiosk to register for a village."""

    village_code: str
    label: str = ""


class KioskRevoke(msgspec.Struct, forbid_unknown_fields=True):
    """Why a kiosk is revoked (a stolen or retired PC)."""

    reason: str


class KioskRead(msgspec.Struct):
    """A kiosk registration and its status (pending, enrolled, revoked or expired)."""

    id: str
    village_code: str
    label: str
    status: str
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str
    enrolled_at: str | None

    @classmethod
    def of(cls, view: kiosks.KioskView) -> KioskRead:
        """Shape a kiosk view."""
        r = view.registration
        return cls(
            r.id,
            r.village_code,
            r.label,
            view.status,
            r.issued_by,
            _utc(r.issued_at),
            _utc(r.expires_at),
            _utc(r.revoked_at) if r.revoked_at else None,
            r.revoked_reason,
            view.enrolled_at,
        )


class KioskList(msgspec.Struct):
    """Kiosks; ``couch_reachable`` false: enrolments could not be read (none shown enrolled)."""

    couch_reachable: bool
    kiosks: list[KioskRead]


class KioskIssued(msgspec.Struct):
    """A new registration and its one-time enrolment code, shown this once."""

    kiosk: KioskRead
    enrolment_code: str


class ItemRead(CatalogueItem, frozen=True, kw_only=True):
    """A catalogue item of the working copy, with who changed it last and when."""

    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, row: Item) -> ItemRead:
        """Shape an item row."""
        value = catalogue.item_value(row)
        return cls(
            **msgspec.structs.asdict(value),
            updated_at=_utc(row.updated_at),
            updated_by=row.updated_by,
        )


class TemplateRead(msgspec.Struct):
    """A template (blank form or sample) of one material of an item."""

    id: int
    item_code: str
    material_key: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: datetime

    @classmethod
    def of(cls, t: MaterialTemplate) -> TemplateRead:
        """Shape a template row."""
        return cls(
            t.id,
            t.item_code,
            t.material_key,
            t.filename,
            t.content_type,
            len(t.data),
            t.sha256,
            _utc(t.uploaded_at),
        )


class PublishRead(msgspec.Struct):
    """The version the catalogue is at, and whether this publish created it."""

    version: int
    created: bool
    item_count: int

    @classmethod
    def of(cls, result: PublishResult) -> PublishRead:
        """Shape a publish result."""
        return cls(result.version, result.created, result.item_count)


class VersionRead(msgspec.Struct):
    """A published catalogue version."""

    version: int
    item_count: int
    published_at: datetime
    published_by: str
    fingerprint: str

    @classmethod
    def of(cls, v: CatalogueVersion) -> VersionRead:
        """Shape a version row."""
        return cls(v.version, v.item_count, _utc(v.published_at), v.published_by, v.fingerprint)


class ExceptionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A holiday (workday false) or make-up working day (workday true)."""

    day: Annotated[str, msgspec.Meta(description="YYYY-MM-DD", examples=["2027-10-09"])]
    workday: bool = False
    note: str = ""


class ExceptionRead(msgspec.Struct):
    """A calendar exception."""

    day: date
    workday: bool
    note: str


class YearUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Whether the year's State Council arrangement has been entered in full."""

    announced: bool


class SlaUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """When a case turns yellow: few working days left, or this share of its limit used."""

    yellow_remaining_days: int
    yellow_elapsed_ratio: Annotated[
        float, msgspec.Meta(description="0 < ratio ≤ 1", examples=[0.8])
    ]


class SlaRead(msgspec.Struct):
    """The three-colour thresholds."""

    yellow_remaining_days: int
    yellow_elapsed_ratio: float


class CalendarRead(msgspec.Struct):
    """The district's calendar exceptions and the years entered in full."""

    exceptions: list[ExceptionRead]
    announced_years: list[int]


class SettingsRead(msgspec.Struct):
    """The `settings` document every tier computes due dates and colours from.

    ``provisional_years``: years a due date computed today may reach whose arrangement is
    not yet entered (their due dates are provisional until it is).
    """

    calendar: CalendarRead
    sla: SlaRead
    provisional_years: list[int]


# --- bodies ------------------------------------------------------------------------------

_TYPE_NAMES = {
    "str": "文字",
    "int": "整数",
    "float": "数字",
    "bool": "true 或 false",
    "object": "JSON对象",
    "array": "数组",
    "null": "空值",
}


def decode_body(raw: bytes, shape: type[T]) -> T:
    """Decode a JSON body into ``shape``; bad input is InvalidInput naming the field."""
    if not raw.strip():
        raise InvalidInput(FieldError("body", "请求体为空: 应为JSON", "the request body is empty"))
    try:
        return msgspec.json.decode(raw, type=shape)
    except msgspec.ValidationError as exc:
        raise InvalidInput(_shape_error(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(
            FieldError(
                "body",
                "请求体不是合法的JSON, 请检查引号、逗号和括号",
                f"the request body is not valid JSON: {exc}",
            )
        ) from None


def _shape_error(text: str) -> FieldError:
    """Turn a msgspec validation message into a field error in Chinese."""
    what, _, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    named = what.split("`")[1] if what.count("`") >= 2 else ""
    if what.startswith("Object missing required field"):
        return FieldError(_join(path, named), f"缺少必填项 {named}", text)
    if what.startswith("Object contains unknown field"):
        return FieldError(_join(path, named), f"未知字段 {named}", text)
    if what.startswith("Expected `"):
        wanted = _TYPE_NAMES.get(named.split(" ")[0], named)
        return FieldError(path or "body", f"格式不正确: 应为{wanted}", text)
    if what.startswith("Invalid enum value"):
        return FieldError(path or "body", "取值不在可选范围内", text)
    return FieldError(path or "body", f"格式不正确: {what}", text)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


async def body(request: Request, shape: type[T]) -> T:  # type: ignore[type-arg]
    """The request's JSON body decoded into ``shape``."""
    return decode_body(await read_limited(request, MAX_JSON_BYTES, "body"), shape)


async def read_limited(request: Request, limit: int, field: str) -> bytes:  # type: ignore[type-arg]
    """The raw body, or InvalidInput naming ``field`` when it is longer than ``limit`` bytes."""
    try:
        raw = await request.body()
    except RequestEntityTooLarge:  # beyond the app-wide request_max_body_size
        raise InvalidInput(_too_big(field, limit)) from None
    if len(raw) > limit:
        raise InvalidInput(_too_big(field, limit))
    return raw


def _too_big(field: str, limit: int) -> FieldError:
    size = f"{limit / 1024 / 1024:g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return FieldError(field, f"文件过大: 最大 {size}", f"larger than {limit} bytes")


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def accepts(
    shape: Any = None, *, media_type: str = "application/json", schema: dict[str, Any] | None = None
) -> type[Operation]:
    """An OpenAPI operation class documenting a request body the handler reads itself.

    Handlers here take no ``data`` argument (Litestar would decode the body first, with English
    errors), so the body's schema is declared this way: msgspec's JSON schema of ``shape``,
    references inlined.
    """
    if schema is None:
        generated = msgspec.json.schema(shape)
        schema = _inline(generated, generated.get("$defs", {}))
    content = {media_type: OpenAPIMediaType(schema=schema)}  # type: ignore[arg-type]

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(content=content, required=True)

    return WithBody


def _parameter_error(_: Request, exc: ValidationException) -> Response[Any]:  # type: ignore[type-arg]
    """Litestar's own validation errors (query and path parameters), in the API's error format."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        {
            "field": str(e.get("key", "")),
            "message": f"参数 {e.get('key', '')} 格式不正确",
            "message_en": str(e.get("message", "")),
        }
        for e in extra
        if isinstance(e, dict)
    ] or [{"field": "", "message": "请求参数不正确", "message_en": str(exc.detail)}]
    return Response(
        {
            "error": "invalid_input",
            "message": "；".join(e["message"] for e in errors),
            "errors": errors,
        },
        status_code=400,
    )


# --- session -----------------------------------------------------------------------------


class SessionController(Controller):
    """Logging in and out (the same session cookie as the web UI)."""

    path = "/session"
    tags = ["session"]

    @get(guards=[password_guard])
    async def current(self, request: Request) -> SessionRead:  # type: ignore[type-arg]
        """Who is logged in (401 if nobody); any GET also sets the CSRF cookie."""
        return SessionRead.of(await in_db(request, accounts.get_account, current_username(request)))

    @post(
        status_code=200,
        operation_class=accepts(SessionCreate),
        responses={401: ResponseSpec(LoginRefused, description=LOGIN_REFUSED)},
    )
    async def login(self, request: Request) -> Response[SessionRead]:  # type: ignore[type-arg]
        """Log in; only district administrators may (401 otherwise, with the same message)."""
        data = await body(request, SessionCreate)
        account = await in_db(request, accounts.authenticate, data.username, data.password)
        if account is None or account.role != Role.DISTRICT_ADMIN.value:
            refused = LoginRefused("not_authenticated", LOGIN_REFUSED)
            return Response(refused, status_code=401)  # type: ignore[arg-type]
        request.set_session(login_session(account))
        return Response(SessionRead.of(account))

    @put("/password", guards=[password_guard], operation_class=accepts(PasswordChange))
    async def change_password(self, request: Request) -> SessionRead:  # type: ignore[type-arg]
        """Change one's own password (required after a reset before anything else)."""
        d = await body(request, PasswordChange)
        account = await in_db(
            request,
            accounts.change_password,
            current_username(request),
            d.old_password,
            d.new_password,
        )
        return SessionRead.of(account)

    @delete(status_code=204)
    async def logout(self, request: Request) -> None:  # type: ignore[type-arg]
        """Log out."""
        request.clear_session()


# --- units -------------------------------------------------------------------------------


class UnitController(Controller):
    """The district → township → village hierarchy."""

    path = "/units"
    guards = [admin_guard]
    tags = ["units"]

    @get()
    async def list_units(
        self,
        request: Request,  # type: ignore[type-arg]
        q: FromQuery[str] = "",
        level: FromQuery[str] = "",
        parent: FromQuery[str] = "",
        limit: Annotated[int, QueryParameter(ge=1, le=100000)] = 500,
    ) -> list[UnitRead]:
        """Units by code, matching a search text (code or name), a level and a parent."""
        return [
            UnitRead.of(u)
            for u in await in_db(request, hierarchy.list_units, q, level, parent, limit)
        ]

    @post(operation_class=accepts(UnitCreate))
    async def add_unit(self, request: Request) -> UnitRead:  # type: ignore[type-arg]
        """Add a unit below its parent, which must exist."""
        data = await body(request, UnitCreate)
        return UnitRead.of(await in_db(request, hierarchy.add_unit, data.code, data.name))

    @post("/import", operation_class=accepts(media_type="text/csv", schema={"type": "string"}))
    async def import_units(self, request: Request) -> list[UnitRead]:  # type: ignore[type-arg]
        """Import units from a CSV body (header code,name,parent): all rows or none."""
        raw = await read_limited(request, request.app.state.settings.max_csv_bytes, "file")
        return [UnitRead.of(u) for u in await in_db(request, hierarchy.import_units_csv, raw)]

    @get("/{code:str}")
    async def get_unit(self, request: Request, code: FromPath[str]) -> UnitRead:  # type: ignore[type-arg]
        """One unit."""
        return UnitRead.of(await in_db(request, hierarchy.get_unit, code))

    @patch("/{code:str}", operation_class=accepts(UnitUpdate))
    async def rename_unit(self, request: Request, code: FromPath[str]) -> UnitRead:  # type: ignore[type-arg]
        """Rename a unit."""
        data = await body(request, UnitUpdate)
        return UnitRead.of(await in_db(request, hierarchy.rename_unit, code, data.name))


# --- accounts ----------------------------------------------------------------------------


class AccountController(Controller):
    """Accounts of administrators, township staff and village agents."""

    path = "/accounts"
    guards = [admin_guard]
    tags = ["accounts"]

    @get()
    async def list_accounts(
        self,
        request: Request,  # type: ignore[type-arg]
        q: FromQuery[str] = "",
        role: FromQuery[str] = "",
        unit: FromQuery[str] = "",
    ) -> list[AccountRead]:
        """Accounts matching a search text (login or name), a role and a unit."""
        return [
            AccountRead.of(a) for a in await in_db(request, accounts.list_accounts, q, role, unit)
        ]

    @post(operation_class=accepts(AccountCreate))
    async def create_account(self, request: Request) -> AccountRead:  # type: ignore[type-arg]
        """Create an account."""
        d = await body(request, AccountCreate)
        account = await in_db(
            request,
            accounts.create_account,
            d.username,
            d.display_name,
            d.role,
            d.unit_code,
            d.password,
            d.phone,
        )
        return AccountRead.of(account)

    @post("/{username:str}/disable", status_code=200)
    async def disable(self, request: Request, username: FromPath[str]) -> AccountRead:  # type: ignore[type-arg]
        """Disable an account (not one's own); it is logged out everywhere at once."""
        account = await in_db(
            request, accounts.set_disabled, username, True, current_username(request)
        )
        return AccountRead.of(account)

    @post("/{username:str}/enable", status_code=200)
    async def enable(self, request: Request, username: FromPath[str]) -> AccountRead:  # type: ignore[type-arg]
        """Enable an account again."""
        return AccountRead.of(await in_db(request, accounts.set_disabled, username, False))

    @post("/{username:str}/reset-password", status_code=200, cache_control=NO_STORE)
    async def reset_password(self, request: Request, username: FromPath[str]) -> TemporaryPassword:  # type: ignore[type-arg]
        """Give an account a temporary password, returned this once."""
        account, password = await in_db(request, accounts.reset_password, username)
        return TemporaryPassword(account.username, password)


# --- kiosks ------------------------------------------------------------------------------


def _kiosk_list(
    session: Any, couch: Any, village: str, status: str
) -> tuple[list[kiosks.KioskView], bool]:
    enrolments, reachable = enrolments_by_registration(couch)
    return kiosks.list_kiosks(session, enrolments, village, status), reachable


class KioskController(Controller):
    """Village kiosks: one-time enrolment codes and revocation."""

    path = "/kiosks"
    guards = [admin_guard]
    tags = ["kiosks"]

    @get()
    async def list_kiosks(
        self,
        request: Request,  # type: ignore[type-arg]
        village: FromQuery[str] = "",
        status: FromQuery[str] = "",
    ) -> KioskList:
        """Kiosk registrations with their status (village: a code prefix)."""
        views, reachable = await in_db(
            request, _kiosk_list, request.app.state.couch, village, status
        )
        return KioskList(reachable, [KioskRead.of(v) for v in views])

    @post(operation_class=accepts(KioskCreate), cache_control=NO_STORE)
    async def issue(self, request: Request) -> KioskIssued:  # type: ignore[type-arg]
        """Register a kiosk for a village; the enrolment code is returned this once."""
        d = await body(request, KioskCreate)
        days = request.app.state.settings.enrolment_code_days
        reg, code = await in_db(
            request, kiosks.issue_code, d.village_code, d.label, current_username(request), days
        )
        return KioskIssued(KioskRead.of(kiosks.KioskView(reg, "pending", None)), code)

    @post("/{registration:str}/revoke", status_code=200, operation_class=accepts(KioskRevoke))
    async def revoke(self, request: Request, registration: FromPath[str]) -> KioskRead:  # type: ignore[type-arg]
        """Revoke a kiosk; its township deletes its user when the revocation arrives."""
        d = await body(request, KioskRevoke)
        reg: KioskRegistration = await in_db(request, kiosks.revoke, registration, d.reason)
        return KioskRead.of(kiosks.KioskView(reg, "revoked", None))


# --- catalogue ---------------------------------------------------------------------------


class CatalogueController(Controller):
    """The catalogue's working copy, its templates, and publishing versions."""

    path = "/catalogue"
    guards = [admin_guard]
    tags = ["catalogue"]

    @get("/items")
    async def list_items(
        self,
        request: Request,  # type: ignore[type-arg]
        q: FromQuery[str] = "",
        kind: FromQuery[str] = "",
        level: FromQuery[str] = "",
        mode: FromQuery[str] = "",
        status: Annotated[str, QueryParameter(description="active, retired or all")] = "active",
    ) -> list[ItemRead]:
        """Items by kind and code, matching a search (name, code or pinyin initials) and filters."""
        rows = await in_db(request, catalogue.list_items, q, kind, level, mode, status)
        return [ItemRead.of(r) for r in rows]

    @post("/items", operation_class=accepts(CatalogueItem))
    async def create_item(self, request: Request) -> ItemRead:  # type: ignore[type-arg]
        """Add an item to the working copy (it reaches the tiers at the next publish)."""
        data = await body(request, dict[str, Any])
        return ItemRead.of(
            await in_db(request, catalogue.create_item, data, current_username(request))
        )

    @get("/items/{code:str}")
    async def get_item(self, request: Request, code: FromPath[str]) -> ItemRead:  # type: ignore[type-arg]
        """One item of the working copy."""
        return ItemRead.of(await in_db(request, catalogue.get_item, code))

    @put("/items/{code:str}", operation_class=accepts(CatalogueItem))
    async def update_item(self, request: Request, code: FromPath[str]) -> ItemRead:  # type: ignore[type-arg]
        """Replace an item's fields (the path's code wins; kept materials keep their templates)."""
        data = await body(request, dict[str, Any])
        return ItemRead.of(
            await in_db(request, catalogue.update_item, code, data, current_username(request))
        )

    @post("/items/{code:str}/retire", status_code=200)
    async def retire(self, request: Request, code: FromPath[str]) -> ItemRead:  # type: ignore[type-arg]
        """Retire an item: it leaves the next published version."""
        return ItemRead.of(
            await in_db(request, catalogue.set_retired, code, True, current_username(request))
        )

    @post("/items/{code:str}/restore", status_code=200)
    async def restore(self, request: Request, code: FromPath[str]) -> ItemRead:  # type: ignore[type-arg]
        """Bring a retired item back."""
        return ItemRead.of(
            await in_db(request, catalogue.set_retired, code, False, current_username(request))
        )

    @post(
        "/items/{code:str}/materials/{key:str}/templates",
        operation_class=accepts(
            media_type="multipart/form-data",
            schema={
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            },
        ),
    )
    async def upload_template(
        self,
        request: Request,  # type: ignore[type-arg]
        code: FromPath[str],
        key: FromPath[str],
    ) -> TemplateRead:
        """Attach a template to a material (replacing one of the same file name)."""
        limit = request.app.state.settings.max_template_bytes
        try:
            form = await request.form()
        except RequestEntityTooLarge:
            raise InvalidInput(_too_big("file", limit)) from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(
                FieldError("file", "请在 file 字段上传文件", "send the file in the field `file`")
            )
        data = await upload.read()
        tpl = await in_db(
            request,
            catalogue.add_template,
            code,
            key,
            upload.filename or "",
            upload.content_type or "",
            data,
            limit,
            current_username(request),
        )
        return TemplateRead.of(tpl)

    @post("/publish")
    async def publish(self, request: Request) -> Response[PublishRead]:  # type: ignore[type-arg]
        """Publish the active items as a new version: 201 if created, 200 when nothing changed."""
        result = await in_db(
            request, publish, request.app.state.couch.server(), current_username(request)
        )
        return Response(PublishRead.of(result), status_code=201 if result.created else 200)

    @get("/versions")
    async def versions(self, request: Request) -> list[VersionRead]:  # type: ignore[type-arg]
        """Published versions, newest first."""
        return [VersionRead.of(v) for v in await in_db(request, published.versions)]


# --- settings ----------------------------------------------------------------------------


def _settings(session: Any) -> SettingsRead:
    doc = district_settings.settings_document(session)
    years = district_settings.provisional_years_in_use(session, datetime.now(UTC).date())
    return msgspec.convert({**doc, "provisional_years": list(years)}, SettingsRead)


class SettingsController(Controller):
    """District-wide settings: the working-day calendar and the three-colour thresholds."""

    path = "/settings"
    guards = [admin_guard]
    tags = ["settings"]

    @get()
    async def read(self, request: Request) -> SettingsRead:  # type: ignore[type-arg]
        """The settings document, and the provisional years a due date may reach today."""
        return await in_db(request, _settings)

    @post("/calendar/exceptions", operation_class=accepts(ExceptionCreate))
    async def add_exception(self, request: Request) -> ExceptionRead:  # type: ignore[type-arg]
        """Declare a day a holiday or a make-up working day."""
        d = await body(request, ExceptionCreate)
        row = await in_db(request, district_settings.add_exception, d.day, d.workday, d.note)
        return ExceptionRead(row.day, row.workday, row.note)

    @delete("/calendar/exceptions/{day:str}", status_code=204)
    async def remove_exception(self, request: Request, day: FromPath[str]) -> None:  # type: ignore[type-arg]
        """Remove a calendar exception."""
        await in_db(request, district_settings.remove_exception, day)

    @put("/calendar/years/{year:int}", operation_class=accepts(YearUpdate))
    async def set_year(self, request: Request, year: FromPath[int]) -> SettingsRead:  # type: ignore[type-arg]
        """Mark a year's arrangement as entered in full (its due dates stop being provisional)."""
        d = await body(request, YearUpdate)
        await in_db(
            request,
            district_settings.set_year_announced,
            year,
            d.announced,
            current_username(request),
        )
        return await in_db(request, _settings)

    @put("/sla", operation_class=accepts(SlaUpdate))
    async def set_sla(self, request: Request) -> SlaRead:  # type: ignore[type-arg]
        """Change when cases turn yellow."""
        d = await body(request, SlaUpdate)
        t = await in_db(
            request,
            district_settings.set_sla_thresholds,
            d.yellow_remaining_days,
            d.yellow_elapsed_ratio,
        )
        return SlaRead(t.yellow_remaining_days, t.yellow_elapsed_ratio)


CONTROLLERS: Sequence[type[Controller]] = (
    SessionController,
    UnitController,
    AccountController,
    KioskController,
    CatalogueController,
    SettingsController,
)

handlers = [
    Router(
        path="/api/v1",
        route_handlers=list(CONTROLLERS),
        exception_handlers={ValidationException: _parameter_error},
    )
]
