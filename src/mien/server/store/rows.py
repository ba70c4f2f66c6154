"""Turning result rows into the frozen dataclasses the rest of the server works with."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sqlalchemy import Row

T = TypeVar("T")


_NAMES: dict[Any, tuple[str, ...]] = {}  # once per class: a batch loads thousands of rows


def load(cls: type[T], row: Row[Any]) -> T:
    """An instance of dataclass ``cls`` from the row's columns of the same names."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    mapping = row._mapping
    return cls(**{name: mapping[name] for name in names})


def load_all(cls: type[T], rows: Any) -> list[T]:
    return [load(cls, row) for row in rows]
