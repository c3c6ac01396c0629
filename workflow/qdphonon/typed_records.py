"""Typed JSON records: dataclasses whose fields carry a description, a unit and which writers write them.

A record class is a dataclass deriving from :class:`TypedRecord` whose every field is declared
with :func:`described`. The field names are the JSON keys (the only spelling of the contract).
Reading refuses a key the class does not declare and a missing key that is not optional, naming
the file and the key; values are checked against the field's type (outer JSON type only). A
field left :data:`ABSENT` is not written, so an optional key stays out of the file as before.

Records whose keys depend on who wrote them (``linewidth.json``: the MD or the harmonic route;
``run.json``: the cp2k or the mock engine) name the field that says so (``ROUTE_FIELD``); a field
declared with ``routes`` is required for those values only and refused in a file of another.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, ClassVar, Mapping


class _Absent:
    """The value of a field that is not written (its key stays out of the JSON)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()


def described(description: str, unit: str | None = None, *, optional: bool = False,
              routes: tuple[str, ...] | None = None, summary: Any = None) -> Any:
    """A record field: what it is (``description``), its ``unit`` (None: a count, text or flag),
    whether a file may lack it (``optional``), the ``routes`` that write it (None: all) and how it
    becomes summary columns (``summary``, read by the record's owner; None: no column)."""
    meta = {"description": description, "unit": unit, "optional": optional, "routes": routes, "summary": summary}
    return dataclasses.field(default=ABSENT, metadata=meta)


def _json_types(annotation) -> tuple[type, ...] | None:
    """The Python types of JSON values an annotation admits; None: anything."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        out: tuple[type, ...] = ()
        for arg in typing.get_args(annotation):
            allowed = _json_types(arg)
            if allowed is None:
                return None
            out += allowed
        return out
    base = origin or annotation
    if base is type(None):
        return (type(None),)
    if base is float:
        return (int, float)
    if base in (list, tuple):
        return (list, tuple)
    return (base,)


class TypedRecord:
    """Mixin of a dataclass record: validation on construction, strict reading, writing, descriptions."""

    RECORD_NAME: ClassVar[str] = "record"
    """How errors call the file (``linewidth.json``)."""
    ROUTE_FIELD: ClassVar[str | None] = None

    @classmethod
    @functools.cache
    def _types(cls) -> dict[str, tuple[type, ...] | None]:
        hints = typing.get_type_hints(cls)
        return {f.name: _json_types(hints[f.name]) for f in dataclasses.fields(cls)}

    @classmethod
    def field_info(cls) -> dict[str, Mapping[str, Any]]:
        """Field name -> its metadata (description, unit, optional, routes, summary), in declaration order."""
        return {f.name: f.metadata for f in dataclasses.fields(cls)}

    def _route(self) -> str | None:
        return getattr(self, self.ROUTE_FIELD) if self.ROUTE_FIELD else None

    def __post_init__(self) -> None:
        route = self._route()
        types_ = self._types()
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            routes = meta["routes"]
            if value is ABSENT:
                if not meta["optional"] and (routes is None or route in routes):
                    raise ValueError(f"{self.RECORD_NAME} key {f.name} missing")
                continue
            if routes is not None and route not in routes:
                raise ValueError(f"{self.RECORD_NAME} key {f.name} belongs to route(s) {', '.join(routes)}, "
                                 f"not to route {route!r}")  # fmt: skip
            allowed = types_[f.name]
            if allowed is not None and (not isinstance(value, allowed)
                                        or (isinstance(value, bool) and bool not in allowed)):  # fmt: skip
                raise ValueError(f"{self.RECORD_NAME} key {f.name}: {value!r} is not of type {f.type}")

    @classmethod
    def from_json(cls, data: Any, source: str):
        """The record of a parsed JSON object; ValueError naming ``source`` and the first unknown,
        missing or mistyped key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: not a {cls.RECORD_NAME} (a JSON {type(data).__name__}, not an object)")
        known = cls.field_info()
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ValueError(f"{source}: unknown {cls.RECORD_NAME} key {unknown[0]!r}"
                             + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))  # fmt: skip
        try:
            return cls(**data)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object: every field that is not :data:`ABSENT`, in declaration order."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not ABSENT}
