"""Keeping the district's hierarchy: list, add, rename and import units."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from central.db.models import Unit
from central.services.directory import publish_unit
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.hierarchy import Level, level_of, parent_of
from core.hierarchy import Unit as UnitValue

__all__ = ["list_units", "get_unit", "add_unit", "rename_unit", "import_units_csv", "mark_demo"]

CSV_HEADERS = {
    "code": "code",
    "区划代码": "code",
    "name": "name",
    "名称": "name",
    "parent": "parent",
    "上级代码": "parent",
}


def list_units(
    session: Session, q: str = "", level: str = "", parent: str = "", limit: int = 500
) -> Sequence[Unit]:
    """Units matching a search text (code or name), a level and a parent, in code order."""
    stmt = select(Unit).order_by(Unit.code).limit(limit)
    if q.strip():
        like = f"%{q.strip()}%"
        stmt = stmt.where(or_(Unit.code.like(like), Unit.name.like(like)))
    if level:
        stmt = stmt.where(Unit.level == level)
    if parent:
        stmt = stmt.where(Unit.parent_code == parent)
    return session.scalars(stmt).all()


def get_unit(session: Session, code: str) -> Unit:
    """The unit with ``code`` or NotFound."""
    unit = session.get(Unit, code.strip())
    if unit is None:
        raise NotFound("单位", code)
    return unit


def _check_new(session: Session, value: UnitValue, field: str = "code") -> None:
    if session.get(Unit, value.code) is not None:
        raise Conflict(f"区划代码 {value.code} 已存在", field)
    if value.parent is not None and session.get(Unit, value.parent) is None:
        raise InvalidInput(
            FieldError("parent", f"上级单位 {value.parent} 不存在", "parent does not exist")
        )


def add_unit(session: Session, code: str, name: str, demo: bool = False) -> Unit:
    """Add a unit below its parent (derived from the code); the parent must exist."""
    value = _value(code, name, demo)
    _check_new(session, value)
    unit = _store(session, value)
    session.commit()
    return unit


def rename_unit(session: Session, code: str, name: str) -> Unit:
    """Change a unit's name (its code never changes)."""
    unit = get_unit(session, code)
    value = _value(unit.code, name, unit.demo)
    unit.name = value.name
    unit.updated_at = datetime.now(UTC)
    publish_unit(session, unit)
    session.commit()
    return unit


def import_units_csv(session: Session, data: bytes) -> list[Unit]:
    """Add every unit of a CSV file (columns code, name, parent) or none of them.

    Rows are checked in full first; any bad row raises InvalidInput naming its line, and
    nothing is written. A row identical to an existing unit is skipped, so a file can be
    imported twice.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(
            FieldError("file", "文件不是UTF-8编码的CSV", "file is not UTF-8 CSV")
        ) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    columns = [
        CSV_HEADERS.get(h.strip().lower(), CSV_HEADERS.get(h.strip(), "")) for h in header or []
    ]
    if {"code", "name", "parent"} - set(columns):
        raise InvalidInput(
            FieldError(
                "file",
                "第1行应为表头: code,name,parent (或 区划代码,名称,上级代码)",
                "header must be code,name,parent",
            )
        )
    errors: list[FieldError] = []
    values: list[UnitValue] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            errors.append(
                FieldError(
                    f"line {line}",
                    f"第{line}行: 应有{len(columns)}列, 实有{len(row)}列",
                    "wrong column count",
                )
            )
            continue
        cells = dict(zip(columns, (c.strip() for c in row), strict=True))
        try:
            value = _value(cells["code"], cells["name"])
            if cells["parent"] and cells["parent"] != value.parent:
                raise InvalidInput(
                    FieldError(
                        "parent", f"上级代码应为 {value.parent}", "parent does not fit the code"
                    )
                )
        except InvalidInput as exc:
            errors.extend(
                FieldError(f"line {line}", f"第{line}行: {e.message}", e.message_en)
                for e in exc.errors
            )
            continue
        existing = session.get(Unit, value.code)
        if value.code in seen or (existing is not None and existing.name != value.name):
            errors.append(
                FieldError(
                    f"line {line}", f"第{line}行: 区划代码 {value.code} 重复", "duplicate code"
                )
            )
            continue
        seen.add(value.code)
        if existing is not None:
            continue
        if value.parent and value.parent not in seen and session.get(Unit, value.parent) is None:
            errors.append(
                FieldError(
                    f"line {line}", f"第{line}行: 上级单位 {value.parent} 不存在", "unknown parent"
                )
            )
            continue
        values.append(value)
    if errors:
        raise InvalidInput(errors)
    units = [_store(session, v) for v in sorted(values, key=lambda v: _DEPTH[v.level])]
    session.commit()
    return units


_DEPTH = {Level.DISTRICT: 0, Level.TOWNSHIP: 1, Level.VILLAGE: 2}


def _value(code: str, name: str, demo: bool = False) -> UnitValue:
    code = code.strip()
    level = level_of(code)
    name = name.strip()
    if len(name) > 100:
        raise InvalidInput(FieldError("name", "名称不能超过100个字", "name too long"))
    return UnitValue(code=code, name=name, level=level, parent=parent_of(code), demo=demo)


def _store(session: Session, value: UnitValue) -> Unit:
    unit = Unit(
        code=value.code,
        name=value.name,
        level=value.level.value,
        parent_code=value.parent,
        demo=value.demo,
        updated_at=datetime.now(UTC),
    )
    session.add(unit)
    session.flush()
    publish_unit(session, unit)
    return unit


def mark_demo(session: Session, codes: Sequence[str]) -> list[Unit]:
    """Flag units as demo data and re-publish them; units already flagged are left alone."""
    changed: list[Unit] = []
    for code in codes:
        unit = get_unit(session, code)
        if unit.demo:
            continue
        unit.demo = True
        unit.updated_at = datetime.now(UTC)
        publish_unit(session, unit)
        changed.append(unit)
    session.commit()
    return changed
