"""The new case wizard (service picker, pre-review with photographed materials, routing), the
receipt with the commitment letter (A5 or an 80 mm receipt printer), and the case's files."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from core.catalogue import CatalogueItem, Kind, Mode
from sync.design import ATTACHMENT_TYPES
from sync.errors import DocNotFound
from sync.filters import attachment_problem
from village_node.attachments import (
    MAX_CASE_BYTES,
    MAX_FILE_BYTES,
    MAX_FILES_PER_MATERIAL,
    MAX_UPLOAD_BYTES,
    AttachmentRefused,
    StagedFile,
    Staging,
    prepare,
    prune,
    size_label,
    staging,
)
from village_node.cases import FLAGS, new_intake_key
from village_node.web.common import (
    Kiosk,
    agent_guard,
    case_row,
    flash,
    kiosk_of,
    page,
    session_user,
)

__all__ = ["ROUTES"]

MAX_REQUEST_BYTES = 20 * MAX_UPLOAD_BYTES
"""One post of the wizard with its photos (Litestar's default of 10 MB is two phone photos)."""

PAPERS = {"a5": "A5", "80mm": "小票 (80 mm)"}
"""The receipt's paper sizes: A5 sheets, or an 80 mm thermal receipt printer."""


def _intake_page(
    request: Request,  # type: ignore[type-arg]
    guide: Any,
    outcome: Any = None,
    status_code: int = 200,
    key: str = "",
    staged: dict[str, list[StagedFile]] | None = None,
    upload_errors: dict[str, list[str]] | None = None,
    q: str = "",
    kind: str = "",
    online: bool | None = None,
) -> Template:
    kiosk = kiosk_of(request)
    if online is None:  # as the header says; a review checks the link itself
        online = kiosk.syncer.state().link == "online"
    view = kiosk.catalogue.current()
    found = view.search(q, kind) if view is not None else []
    groups = [(k, [g for g in found if g.item.kind is k]) for k in Kind]
    first = next((g for _, group in groups for g in group), None)
    return page(
        request,
        "case_new.html",
        status_code=status_code,
        guide=guide,
        item=guide.item if guide else None,
        items=found,
        groups=groups,
        first_code=first.item.code if first else "",
        counts=view.count_by_kind() if view is not None else {},
        q=q,
        kind=kind,
        outcome=outcome,
        form=outcome.intake.values if outcome else {},
        errors=outcome.intake.errors if outcome else {},
        intake=outcome.intake if outcome else None,
        intake_key=key
        or (outcome.intake.values.get("intake_key") if outcome else "")
        or new_intake_key(),
        staged=staged or {},
        upload_errors=upload_errors or {},
        limits={
            "file": size_label(MAX_FILE_BYTES),
            "case": size_label(MAX_CASE_BYTES),
            "files": MAX_FILES_PER_MATERIAL,
        },
        FLAGS=FLAGS,
        online=online,
    )


async def _online_for_video(kiosk: Kiosk, item: CatalogueItem) -> bool:
    """Whether video may be offered now: the item allows it and the township answers at this
    moment (checked only then: a dead link costs a few seconds)."""
    if Mode.VIDEO not in item.modes or kiosk.syncer.state().revoked:
        return False
    return await asyncio.to_thread(kiosk.syncer.check_link)


@get("/cases/new", guards=[agent_guard])
async def case_new(
    request: Request,  # type: ignore[type-arg]
    item: FromQuery[str] = "",
    q: FromQuery[str] = "",
    kind: FromQuery[str] = "",
) -> Template:
    """The new case wizard: find and choose the service, then one page of sections."""
    guide = kiosk_of(request).catalogue.item(item) if item else None
    kind = kind if kind in {k.value for k in Kind} else ""
    return _intake_page(request, guide, q=q.strip()[:50], kind=kind)


async def _posted(
    request: Request,  # type: ignore[type-arg]
) -> tuple[dict[str, Any], dict[str, list[UploadFile]], list[str]]:
    """The posted wizard (multipart): its fields as strings (``flags`` a list), the files
    chosen per material (``f_<key>``) and the staged files ticked for removal (``rm``)."""
    form = await request.form()
    data: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    data["flags"] = [str(f) for f in form.getall("flags")] if "flags" in form else []
    uploads: dict[str, list[UploadFile]] = {}
    for name in set(form.keys()):
        if name.startswith("f_"):
            chosen = [f for f in form.getall(name) if isinstance(f, UploadFile) and f.filename]
            if chosen:
                uploads[name[2:]] = chosen
    remove = [str(v) for v in form.getall("rm")] if "rm" in form else []
    return data, uploads, remove


async def _stage(
    stage: Staging,
    item: CatalogueItem,
    uploads: dict[str, list[UploadFile]],
    remove: list[str],
) -> dict[str, list[str]]:
    """Unstage the files ticked for removal, then check, compress and stage the chosen ones;
    what was refused, per material (``f_<key>``)."""
    errors: dict[str, list[str]] = {}
    if remove:
        await asyncio.to_thread(stage.remove, remove)
    materials = {m.key for m in item.materials}
    for key, files in uploads.items():
        for upload in files:
            try:
                if key not in materials:
                    raise AttachmentRefused("没有这项材料")
                data = await upload.read()
                prepared = await asyncio.to_thread(prepare, data, upload.filename)
                await asyncio.to_thread(stage.add, key, upload.filename, prepared)
            except AttachmentRefused as exc:
                errors.setdefault(f"f_{key}", []).append(str(exc))
            finally:
                await upload.close()
    return errors


@post("/cases/new", guards=[agent_guard], request_max_body_size=MAX_REQUEST_BYTES)
async def case_new_submit(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """``action=review`` checks the form (pre-review, routing) and stages the chosen files;
    ``action=save`` opens the case with the staged files as its attachments."""
    kiosk = kiosk_of(request)
    data, uploads, remove = await _posted(request)
    guide = kiosk.catalogue.item(str(data.get("item", "")))
    view = kiosk.catalogue.current()
    enrolment = kiosk.enrolment
    if guide is None or view is None or enrolment is None:
        return page(
            request, "error.html", status_code=400, message="请先从事项目录中选择要办理的事项"
        )
    stage = staging(kiosk.settings.data_dir, str(data.get("intake_key", "")).strip())
    upload_errors = await _stage(stage, guide.item, uploads, remove)
    user = session_user(request) or {}
    online = await _online_for_video(kiosk, guide.item)
    author = str(user.get("user", ""))
    if data.get("action") == "save" and not upload_errors:
        attachments = await asyncio.to_thread(stage.attachments)
        problem = attachment_problem({"type": "case", "_attachments": attachments})
        if problem is None:
            outcome = await asyncio.to_thread(
                kiosk.desk.save, data, guide.item, view.version, enrolment,
                online=online, author=author, attachments=attachments or None,
            )  # fmt: skip
            if outcome.case is not None:
                await asyncio.to_thread(stage.clear)
                if outcome.repeated:
                    flash(request, "该表单已提交过, 未重复受理", "error")
                else:
                    flash(request, f"已受理, 办件编号 {outcome.case.case_number}")
                return Redirect(f"/cases/{outcome.case.case_number}/receipt")
            staged = await asyncio.to_thread(stage.by_material)
            return _intake_page(request, guide, outcome, 400, staged=staged, online=online)
        upload_errors["f_form"] = [problem.rpartition(" / ")[2]]
    if data.get("action") != "save":
        await asyncio.to_thread(prune, kiosk.settings.data_dir)
    outcome = await asyncio.to_thread(
        kiosk.desk.review, data, guide.item, view.version, enrolment,
        online=online, author=author,
    )  # fmt: skip
    staged = await asyncio.to_thread(stage.by_material)
    status = 400 if data.get("action") == "save" else 200
    return _intake_page(
        request, guide, outcome, status, staged=staged, upload_errors=upload_errors, online=online
    )


@get("/cases/{number:str}/receipt", guards=[agent_guard])
async def case_receipt(
    request: Request,  # type: ignore[type-arg]
    number: FromPath[str],
    paper: FromQuery[str] = "a5",
) -> Template:
    """The receipt and, with commitments, the commitment letter — on A5 or an 80 mm roll."""
    row = await asyncio.to_thread(case_row, request, number)
    calendar = kiosk_of(request).desk.calendar()
    commitments = [
        (m, bool(calendar.provisional_years_in(row.state.submitted_on or m.deadline, m.deadline)))
        for m in row.case.materials
        if m.deadline is not None
    ]
    return page(request, "receipt.html", row=row, case=row.case, state=row.state,
                commitments=commitments, paper=paper if paper in PAPERS else "a5",
                PAPERS=PAPERS)  # fmt: skip


@get("/cases/{number:str}/files/{key:str}/{filename:str}", guards=[agent_guard])
async def case_file(
    request: Request,  # type: ignore[type-arg]
    number: FromPath[str],
    key: FromPath[str],
    filename: FromPath[str],
) -> Response[bytes]:
    """A material's file attached to this village's case (``material/<key>/<filename>``)."""
    row = await asyncio.to_thread(case_row, request, number)
    store = kiosk_of(request).store
    name = f"material/{key}/{filename}"

    def read() -> tuple[str, bytes]:
        stub = (store.get(row.case.id).get("_attachments") or {}).get(name)
        if not isinstance(stub, dict):
            raise DocNotFound(name)
        return str(stub.get("content_type") or ""), store.get_attachment(row.case.id, name)

    try:
        content_type, data = await asyncio.to_thread(read)
    except DocNotFound as exc:
        raise NotFoundException("这个办件没有该附件") from exc
    # Only the types a case may carry are shown inline; anything else is a download.
    inline = content_type in ATTACHMENT_TYPES
    disposition = f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(filename)}"
    return Response(
        data,
        media_type=content_type if inline else "application/octet-stream",
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400",
        },
    )


ROUTES = [case_new, case_new_submit, case_receipt, case_file]
