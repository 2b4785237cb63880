"""Administering the catalogue's working copy: items, their materials and templates."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from pypinyin import Style, lazy_pinyin
from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session

from central.db.models import Item, MaterialTemplate
from core.catalogue import CatalogueItem, Kind, validate_item
from core.errors import Conflict, FieldError, InvalidInput, NotFound

__all__ = [
    "list_items",
    "get_item",
    "item_value",
    "create_item",
    "update_item",
    "set_retired",
    "add_template",
    "remove_template",
    "templates_of",
    "parse_item",
]

TEMPLATE_TYPES = {
    "application/pdf",
    "image/png",
    "image/jpeg",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "text/plain",
}


def initials(name: str) -> str:
    """Pinyin initials of a Chinese name, for search (社会保障卡申领 → shbzksl)."""
    return "".join(lazy_pinyin(name, style=Style.FIRST_LETTER)).lower()


def list_items(
    session: Session,
    q: str = "",
    kind: str = "",
    level: str = "",
    mode: str = "",
    status: str = "active",
) -> Sequence[Item]:
    """Items matching a search (name, code or pinyin initials) and the filters, by code."""
    kind_order = case({k.value: i for i, k in enumerate(Kind)}, value=Item.kind, else_=len(Kind))
    stmt = select(Item).order_by(kind_order, Item.code)
    if q.strip():
        like = f"%{q.strip()}%"
        stmt = stmt.where(
            or_(Item.name.like(like), Item.code.like(like), Item.initials.like(like.lower()))
        )
    if kind:
        stmt = stmt.where(Item.kind == kind)
    if level:
        stmt = stmt.where(Item.handling_level == level)
    if mode:
        stmt = stmt.where(Item.modes.like(f"%,{mode},%"))
    if status == "active":
        stmt = stmt.where(Item.retired.is_(False))
    elif status == "retired":
        stmt = stmt.where(Item.retired.is_(True))
    return session.scalars(stmt).all()


def get_item(session: Session, code: str) -> Item:
    """The item row with ``code`` or NotFound."""
    row = session.get(Item, code.strip().upper())
    if row is None:
        raise NotFound("事项", code)
    return row


def item_value(row: Item) -> CatalogueItem:
    """The domain value of a stored item."""
    return msgspec.convert(row.body, CatalogueItem)


_PATH = re.compile(r"at `\$\.?(.*)`$")


def parse_item(data: Any) -> CatalogueItem:
    """Turn decoded JSON or form data into a valid CatalogueItem, or raise InvalidInput."""
    try:
        item = msgspec.convert(data, CatalogueItem, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        field = match.group(1) if match else "body"
        raise InvalidInput(
            FieldError(field or "body", f"格式不正确: {_explain(text)}", text)
        ) from None
    return validate_item(item)


def _explain(text: str) -> str:
    if text.startswith("Object missing required field"):
        return "缺少必填项 " + text.split("`")[1]
    if "Invalid enum value" in text:
        return "取值不在可选范围内"
    if text.startswith("Expected `int"):
        return "应为整数"
    if text.startswith("Expected `bool"):
        return "应为是/否"
    if text.startswith("Expected `str"):
        return "应为文字"
    if "unknown field" in text.lower():
        return "有未知字段"
    return text


def _store(row: Item, item: CatalogueItem, user: str) -> None:
    row.name = item.name
    row.kind = item.kind.value
    row.handling_level = item.handling_level.value
    row.modes = "," + ",".join(m.value for m in item.modes) + ","
    row.initials = initials(item.name)[:100]
    row.retired = item.retired
    row.body = msgspec.to_builtins(item)
    row.updated_at = datetime.now(UTC)
    row.updated_by = user


def create_item(session: Session, data: Any, user: str) -> Item:
    """Add a new item to the working copy; a used code is a Conflict."""
    item = parse_item(data)
    if session.get(Item, item.code) is not None:
        raise Conflict(f"基本编码 {item.code} 已存在", "code")
    row = Item(code=item.code)
    _store(row, item, user)
    session.add(row)
    session.commit()
    return row


def update_item(session: Session, code: str, data: Any, user: str) -> Item:
    """Replace an item's fields; its code stays, templates of materials that remain are kept."""
    row = get_item(session, code)
    if isinstance(data, dict):
        data = {**data, "code": row.code}
    item = parse_item(data)
    kept = {m.key: m.templates for m in item_value(row).materials}
    materials = tuple(
        msgspec.structs.replace(m, templates=kept.get(m.key, ())) for m in item.materials
    )
    item = msgspec.structs.replace(item, materials=materials)
    for tpl in templates_of(session, row.code):
        if tpl.material_key not in {m.key for m in materials}:
            session.delete(tpl)
    _store(row, item, user)
    session.commit()
    return row


def set_retired(session: Session, code: str, retired: bool, user: str) -> Item:
    """Retire an item (it leaves the next published version) or bring it back."""
    row = get_item(session, code)
    _store(row, msgspec.structs.replace(item_value(row), retired=retired), user)
    session.commit()
    return row


def templates_of(session: Session, code: str) -> Sequence[MaterialTemplate]:
    """An item's templates, by material and file name."""
    stmt = (
        select(MaterialTemplate)
        .where(MaterialTemplate.item_code == code)
        .order_by(MaterialTemplate.material_key, MaterialTemplate.filename)
    )
    return session.scalars(stmt).all()


_FILENAME = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


def add_template(
    session: Session,
    code: str,
    material_key: str,
    filename: str,
    content_type: str,
    data: bytes,
    max_bytes: int,
    user: str,
) -> MaterialTemplate:
    """Attach a blank form or sample to one material of an item (replacing one of the same name)."""
    row = get_item(session, code)
    item = item_value(row)
    material = next((m for m in item.materials if m.key == material_key), None)
    if material is None:
        raise InvalidInput(
            FieldError("material_key", f"该事项没有材料 {material_key}", "unknown material")
        )
    name = _FILENAME.sub("_", filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")[:120]
    if not name:
        raise InvalidInput(FieldError("file", "请选择要上传的文件", "choose a file"))
    if len(data) == 0:
        raise InvalidInput(FieldError("file", "文件是空的", "the file is empty"))
    if len(data) > max_bytes:
        raise InvalidInput(
            FieldError(
                "file",
                f"文件过大: 最大 {max_bytes // 1024} KB",
                f"file larger than {max_bytes} bytes",
            )
        )
    content_type = content_type.split(";")[0].strip().lower()
    if content_type not in TEMPLATE_TYPES:
        raise InvalidInput(
            FieldError("file", "只接受 PDF、图片、Word、Excel 或文本文件", "unsupported file type")
        )
    existing = session.scalars(
        select(MaterialTemplate).where(
            MaterialTemplate.item_code == row.code,
            MaterialTemplate.material_key == material_key,
            MaterialTemplate.filename == name,
        )
    ).first()
    tpl = existing or MaterialTemplate(item_code=row.code, material_key=material_key, filename=name)
    tpl.content_type = content_type
    tpl.data = data
    tpl.sha256 = hashlib.sha256(data).hexdigest()
    tpl.uploaded_at = datetime.now(UTC)
    session.add(tpl)
    _set_material_templates(session, row, item, material_key, user)
    session.commit()
    return tpl


def remove_template(session: Session, code: str, template_id: int, user: str) -> None:
    """Remove one template of an item."""
    row = get_item(session, code)
    tpl = session.get(MaterialTemplate, template_id)
    if tpl is None or tpl.item_code != row.code:
        raise NotFound("模板", str(template_id))
    session.delete(tpl)
    _set_material_templates(session, row, item_value(row), tpl.material_key, user)
    session.commit()


def _set_material_templates(
    session: Session, row: Item, item: CatalogueItem, material_key: str, user: str
) -> None:
    session.flush()
    names = tuple(
        t.filename for t in templates_of(session, row.code) if t.material_key == material_key
    )
    materials = tuple(
        msgspec.structs.replace(m, templates=names) if m.key == material_key else m
        for m in item.materials
    )
    _store(row, msgspec.structs.replace(item, materials=materials), user)
