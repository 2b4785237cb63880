"""What the district's supervisors should look at now (issue 8, item 6): calendar years whose
due dates are still provisional, kiosks gone silent, replications failing (kiosks whose last
sync failed, township nodes with failing jobs or out of reach), cases overdue (red) today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.services.district_settings import provisional_years_in_use
from central.services.fleet import FleetFilter, fleet
from central.services.node_health import troubled_nodes
from core.sla import Colour
from sync.readmodel import CaseRow, colour_where

__all__ = ["Alert", "alerts"]

EVER = "2000-01-01"
"""The start of a period that takes in every case (the red cases' list is by period)."""


@dataclass(frozen=True)
class Alert:
    """One thing to look at, in Chinese, with where to look."""

    kind: str
    message: str
    link: str


def alerts(session: Session, today: date, now: datetime, silent_hours: float) -> list[Alert]:
    """The district's alerts for ``today`` (none when all is well)."""
    found: list[Alert] = []
    years = provisional_years_in_use(session, today)
    if years:
        shown = "、".join(str(y) for y in years)
        found.append(Alert(
            "provisional",
            f"{shown} 年的节假日安排尚未录入: 落在这些年份的办结期限是暂定的, 请在设置中录入",
            "/settings",
        ))  # fmt: skip
    silent = fleet(session, FleetFilter(state="silent", silent_hours=silent_hours), now)
    if silent:
        found.append(Alert(
            "silent",
            f"{len(silent)} 台村终端超过 {silent_hours:g} 小时没有同步",
            "/fleet?state=silent",
        ))  # fmt: skip
    failing = fleet(session, FleetFilter(state="failing"), now)
    if failing:
        found.append(Alert(
            "failing",
            f"{len(failing)} 台村终端最近一次同步失败",
            "/fleet?state=failing",
        ))  # fmt: skip
    nodes = troubled_nodes(session)
    if nodes:
        found.append(Alert(
            "nodes",
            f"{len(nodes)} 个镇街节点复制失败或无法连接",
            "/fleet#nodes",
        ))  # fmt: skip
    red = session.scalar(
        select(func.count())
        .select_from(CaseRow)
        .where(colour_where(Colour.RED, today), CaseRow.status != "transferred")
    )
    if red:
        found.append(Alert(
            "red",
            f"{red} 件办件已超过承诺时限 (红灯)",
            f"/dashboard/cases?figure=red&from={EVER}&to={today.isoformat()}",
        ))  # fmt: skip
    return found
