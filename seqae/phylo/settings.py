"""Settings dataclasses of the tree stage built from config mappings, with one rule for unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

SettingsT = TypeVar("SettingsT")


def settings_from_mapping(cls: type[SettingsT], values: Mapping[str, Any] | None, where: str) -> SettingsT:
    """An instance of the dataclass ``cls`` from a config mapping (``None``: every default).

    Raises:
        ValueError: a key that is not a field of ``cls``, as ``"<where>: unknown key 'k' (known: ...)"``.
    """
    values = dict(values or {})
    known = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    return cls(**values)
