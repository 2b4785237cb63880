"""Open311 GeoReport v2: a public, read-only view of the published catalogue.

Only the *published* catalogue is shown — the newest ``catalogue_manifest`` in CouchDB and
its item documents — never the working copy being edited in SQL. Endpoints (JSON or XML by
extension, as the GeoReport v2 specification names them):

* ``GET /open311/v2/services.json`` / ``.xml`` — the service list;
* ``GET /open311/v2/services/{service_code}.json`` / ``.xml`` — one service definition;
* ``POST /open311/v2/requests.json`` — request a home visit (a door-to-door service), and
  ``GET /open311/v2/requests.json`` / ``requests/{service_request_id}.json`` (or ``.xml``) —
  home-visit requests without personal data (``central.services.open311_requests``).

Choices, where the specification leaves room:

* ``type`` is ``realtime`` for every service. In GeoReport ``type`` says how a submitted
  request gets its ID (realtime: at once; batch: a token first; blackbox: never), not how fast
  it is handled. Every Sanji case gets its case number the moment it is opened, at a kiosk or
  a counter, and its progress can be looked up by that number, so all services are realtime.
  Whether an item is handled at once (即办件) or within a promised limit (承诺件) is told in
  ``description`` and ``keywords`` instead.
* ``group`` is the Chinese label of the item's kind (党务/政务/商务/生活).
* A door-to-door item's definition starts with what a home-visit request takes
  (``village``, ``id_number``, ``qualification``, ``qualification_note``, ``day``,
  ``period``; see ``central.services.open311_requests``).
* ``metadata`` is true when the item lists materials: each material is one attribute of the
  service definition, a ``singlevaluelist`` whose values say how the citizen brings it —
  ``provided`` (已带齐), ``missing`` (未带), and ``to-follow`` (承诺后补) only for materials
  the item lets follow later (容缺受理). ``required`` is the material's own flag.
* ``jurisdiction_id`` is accepted and ignored: one district server serves one jurisdiction,
  and GeoReport needs the parameter only where an endpoint serves several.
* Errors use the GeoReport error list: ``[{"code": 404, "description": "…"}]`` or
  ``<errors><error>…</error></errors>``; 404 for an unknown service code, request or format,
  400 for a bad request (one error per bad parameter, ``"<parameter>: <why>"``), 409 when the
  period was taken meanwhile, 429 when a client posts too often, 503 when the document
  database cannot be read.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery

from central.services import open311_requests as requests311
from central.services.open311_requests import RequestCreated, ServiceRequest
from central.services.published import PublishedCatalogue, current_catalogue
from core.catalogue import CaseType, CatalogueItem, Eligibility, Material, Mode
from core.errors import Conflict, DomainError, FieldError, InvalidInput, NotFound
from core.visits import PERIODS
from sync.errors import SyncError

__all__ = [
    "handlers",
    "Service",
    "ServiceDefinition",
    "Attribute",
    "AttributeValue",
    "Open311Error",
    "service_of",
    "definition_of",
    "to_xml",
]

log = logging.getLogger(__name__)

XML = "text/xml"  # Litestar adds "; charset=utf-8" to text types
FORMATS = ("json", "xml")


# --- shapes (field order as in the specification) ----------------------------------------


class Service(msgspec.Struct):
    """A GeoReport service (one published catalogue item)."""

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class AttributeValue(msgspec.Struct):
    """One choice of a list attribute."""

    key: str
    name: str


class Attribute(msgspec.Struct):
    """A GeoReport attribute: here, one material the citizen brings."""

    variable: bool
    code: str
    datatype: str
    required: bool
    datatype_description: str
    order: int
    description: str
    values: list[AttributeValue]


class ServiceDefinition(msgspec.Struct):
    """A GeoReport service definition."""

    service_code: str
    attributes: list[Attribute]


class Error(msgspec.Struct):
    """A GeoReport error."""

    code: int
    description: str


class Open311Error(Exception):
    """An error answered in the GeoReport error format, as JSON or XML."""

    def __init__(self, status: int, description: str, fmt: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.fmt = fmt


# --- shaping -----------------------------------------------------------------------------


def service_of(item: CatalogueItem) -> Service:
    """The GeoReport service of a published item."""
    labels = [item.kind.label, item.case_type.label, item.handling_level.label]
    return Service(
        service_code=item.code,
        service_name=item.name,
        description=_description(item),
        metadata=bool(item.materials) or Mode.DOOR_TO_DOOR in item.modes,
        type="realtime",
        keywords=", ".join([*labels, *(m.label for m in item.modes)]),
        group=item.kind.label,
    )


def _description(item: CatalogueItem) -> str:
    if item.case_type is CaseType.IMMEDIATE:
        limit = "即办件"
    else:
        limit = f"承诺件, {item.promised_limit_days}个工作日内办结"
    parts = [
        f"{item.kind.label}服务, {item.handling_level.label}办理",
        limit,
        "办理方式: " + "、".join(m.label for m in item.modes),
        f"实施主体: {item.department}",
    ]
    if item.conditions.strip():
        parts.append(f"受理条件: {item.conditions.strip()}")
    return "; ".join(parts)


def definition_of(item: CatalogueItem) -> ServiceDefinition:
    """The GeoReport service definition of a published item: for a door-to-door item first
    what a home-visit request takes (``POST requests.json``), then one attribute per
    material."""
    visit = _VISIT_ATTRIBUTES if Mode.DOOR_TO_DOOR in item.modes else []
    materials = [
        _attribute(m, order) for order, m in enumerate(item.materials, start=len(visit) + 1)
    ]
    return ServiceDefinition(item.code, [*visit, *materials])


_VISIT_FIELDS = (
    ("village", "string", True, "被服务人所在村(社区)的12位区划代码", ()),
    ("id_number", "string", True, "被服务人的居民身份证号码", ()),
    ("qualification", "singlevaluelist", True, "申请上门服务的原因",
     (*((e.value, e.label) for e in Eligibility), ("other", "其他"))),
    ("qualification_note", "text", False, "原因说明 (选择“其他”时必填)", ()),
    ("day", "string", False, "希望上门的日期 YYYY-MM-DD (不填则安排最早可约的时段)", ()),
    ("period", "singlevaluelist", False, "希望上门的时段", tuple(PERIODS.items())),
)  # fmt: skip
"""What ``POST requests.json`` takes as ``attribute[...]`` for a home visit."""
_VISIT_ATTRIBUTES = [
    Attribute(True, code, datatype, required, description, order, description,
              [AttributeValue(key, name) for key, name in values])
    for order, (code, datatype, required, description, values) in enumerate(_VISIT_FIELDS, 1)
]  # fmt: skip


def _attribute(material: Material, order: int) -> Attribute:
    values = [AttributeValue("provided", "已带齐"), AttributeValue("missing", "未带")]
    if material.may_follow:
        values.append(AttributeValue("to-follow", f"承诺后补({material.follow_days}个工作日内)"))
    description = f"{material.name}({material.form.label}{material.copies}份)"
    if material.standard.strip():
        description += f", 要求: {material.standard.strip()}"
    if material.source.strip():
        description += f", 来源: {material.source.strip()}"
    return Attribute(
        variable=True,
        code=material.key,
        datatype="singlevaluelist",
        required=material.required,
        datatype_description="该材料的提交情况" + ("(可容缺后补)" if material.may_follow else ""),
        order=order,
        description=description,
        values=values,
    )


_SINGULAR = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "errors": "error",
    "service_requests": "request",
}


def to_xml(tag: str, value: Any) -> ET.Element:
    """GeoReport XML of plain data: a dict's keys become children, a list's items singular tags."""
    element = ET.Element(tag)
    if isinstance(value, dict):
        element.extend(to_xml(name, v) for name, v in value.items())
    elif isinstance(value, list):
        element.extend(to_xml(_SINGULAR[tag], v) for v in value)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is None:
        pass  # an empty element, as GeoReport writes a missing value
    else:
        element.text = str(value)  # ElementTree escapes it when serialising
    return element


def answer(fmt: str, tag: str, data: Any, status: int = 200) -> Response[Any]:
    """``data`` as JSON, or as XML under a root element named ``tag``."""
    if fmt == "xml":
        root = to_xml(tag, msgspec.to_builtins(data))
        return Response(
            ET.tostring(root, encoding="utf-8", xml_declaration=True),
            media_type=XML,
            status_code=status,
        )
    return Response(data, status_code=status)


def _error_response(request: Request, exc: Exception) -> Response[Any]:  # type: ignore[type-arg]
    if isinstance(exc, Open311Error):
        status, description, fmt = exc.status, exc.description, exc.fmt
    else:
        log.warning("Open311: CouchDB error on %s: %s", request.url.path, exc)
        status, description = 503, "服务目录暂时无法读取, 请稍后重试"
        fmt = "xml" if request.url.path.endswith(".xml") else "json"
    return answer(fmt, "errors", [Error(status, description)], status)


# --- handlers ----------------------------------------------------------------------------


async def _published(request: Request) -> PublishedCatalogue | None:  # type: ignore[type-arg]
    couch = request.app.state.couch
    return await asyncio.to_thread(lambda: current_catalogue(couch.server()))


@get(["/services.json", "/services.xml"])
async def services(
    request: Request,  # type: ignore[type-arg]
    jurisdiction_id: FromQuery[str | None] = None,
) -> Response[list[Service]]:
    """The published services (an empty list before the first publish)."""
    fmt = request.url.path.rsplit(".", 1)[-1]
    catalogue = await _published(request)
    return answer(fmt, "services", [service_of(i) for i in catalogue.items] if catalogue else [])


@get("/services/{name:str}")
async def service_definition(
    request: Request,  # type: ignore[type-arg]
    name: FromPath[str],
    jurisdiction_id: FromQuery[str | None] = None,
) -> Response[ServiceDefinition]:
    """The definition of one published service (``{service_code}.json`` or ``.xml``)."""
    code, _, fmt = name.rpartition(".")
    if fmt not in FORMATS:
        raise Open311Error(404, "请求地址应以 .json 或 .xml 结尾", "json")
    catalogue = await _published(request)
    item = catalogue.item(code) if catalogue else None
    if item is None:
        raise Open311Error(404, f"服务 {code} 不存在或未发布", fmt)
    return answer(fmt, "service_definition", definition_of(item))


# --- service requests (home visits): central.services.open311_requests ----------------------


def _fmt(path: str) -> str:
    fmt = path.rsplit(".", 1)[-1]
    if fmt not in FORMATS:
        raise Open311Error(404, "请求地址应以 .json 或 .xml 结尾", "json")
    return fmt


def _domain_error(request: Request, exc: DomainError) -> Response[Any]:  # type: ignore[type-arg]
    """Domain errors as GeoReport error lists: 400 naming each bad parameter, 409, 404."""
    fmt = "xml" if request.url.path.endswith(".xml") else "json"
    if isinstance(exc, InvalidInput):
        errors = [Error(400, f"{e.field}: {e.message}") for e in exc.errors]
        return answer(fmt, "errors", errors, 400)
    status = 409 if isinstance(exc, Conflict) else 404 if isinstance(exc, NotFound) else 400
    return answer(fmt, "errors", [Error(status, str(exc))], status)


async def _posted(request: Request) -> dict[str, str]:  # type: ignore[type-arg]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except Exception:  # noqa: BLE001 - any unreadable body is the client's error
            data = None
        if not isinstance(data, dict):
            raise InvalidInput(FieldError("body", "请求内容不是有效的 JSON 对象", "Bad JSON"))
        return {str(k): str(v) for k, v in data.items() if v is not None}
    form = await request.form()
    return {str(k): str(v) for k, v in form.items()}


@post(["/requests.json", "/requests.xml"], status_code=201)
async def create_request(request: Request) -> Response[list[RequestCreated]]:  # type: ignore[type-arg]
    """Request a home visit (a door-to-door service); see ``open311_requests``."""
    fmt = _fmt(request.url.path)
    posted = await _posted(request)
    service = request.app.state.bookings
    created = await asyncio.to_thread(requests311.create_request, service, posted)
    return answer(fmt, "service_requests", [created], 201)


@get(["/requests.json", "/requests.xml"])
async def list_requests(request: Request) -> Response[list[ServiceRequest]]:  # type: ignore[type-arg]
    """Home-visit requests (no personal data), filtered as GeoReport says."""
    fmt = _fmt(request.url.path)
    query = requests311.parse_query({k: str(v) for k, v in request.query_params.items()})
    sessions = request.app.state.sessions

    def load() -> list[ServiceRequest]:
        with sessions() as session:
            return requests311.find_requests(session, query, datetime.now(UTC))

    return answer(fmt, "service_requests", await asyncio.to_thread(load))


@get("/requests/{name:str}")
async def one_request(
    request: Request,  # type: ignore[type-arg]
    name: FromPath[str],
    jurisdiction_id: FromQuery[str | None] = None,
) -> Response[list[ServiceRequest]]:
    """One request (``{service_request_id}.json`` or ``.xml``), as a list of one."""
    ident, _, fmt = name.rpartition(".")
    if fmt not in FORMATS:
        raise Open311Error(404, "请求地址应以 .json 或 .xml 结尾", "json")
    if not ident or len(ident) > 40:
        raise Open311Error(404, "没有这个服务请求", fmt)
    sessions = request.app.state.sessions

    def load() -> list[ServiceRequest]:
        with sessions() as session:
            query = requests311.RequestQuery(ids=(ident,))
            return requests311.find_requests(session, query, datetime.now(UTC))

    found = await asyncio.to_thread(load)
    if not found:
        raise Open311Error(404, f"没有编号为 {ident} 的服务请求", fmt)
    return answer(fmt, "service_requests", found)


handlers = [
    Router(
        path="/open311/v2",
        route_handlers=[services, service_definition, create_request, list_requests, one_request],
        exception_handlers={
            Open311Error: _error_response,
            SyncError: _error_response,
            DomainError: _domain_error,
        },
        tags=["Open311"],
    )
]
