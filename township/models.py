"""The township node's own SQL tables (beside the case read model it shares with the district):
the node's writer identity and counters. The visit calendar joins them with the dispatch."""

from __future__ import annotations

from sqlalchemy import Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sync.readmodel import NAMING

__all__ = ["TownshipBase", "metadata", "Writer"]


class TownshipBase(DeclarativeBase):
    """Declarative base of the node's own tables."""

    metadata = MetaData(naming_convention=NAMING)


metadata = TownshipBase.metadata


class Writer(TownshipBase):
    """This node as an origin of case documents: its instance id, the last counter it used and
    its hybrid logical clock (one row per unit the node writes for)."""

    __tablename__ = "writers"
    unit: Mapped[str] = mapped_column(String(12), primary_key=True)
    instance: Mapped[str] = mapped_column(String(16))
    counter: Mapped[int] = mapped_column(Integer)
    hlc: Mapped[str] = mapped_column(String(80))
    """The last stamp issued, encoded (empty before the first)."""
