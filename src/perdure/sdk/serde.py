"""Serializers between handler values and the bytes that travel in the journal.

The default is JSON with the standard library's ``json.dumps`` defaults, which is what the
official Python SDK produces; equal code therefore journals byte-identical payloads, and a
journal written by one SDK replays under the other. ``None`` is the empty payload.
Pydantic models and msgspec structs are used when those optional libraries are installed
and a type hint names such a class; dataclasses are rebuilt from their fields.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import typing
from typing import Any, Generic, TypeVar

__all__ = [
    "DEFAULT_SERDE",
    "BytesSerde",
    "DefaultSerde",
    "JsonSerde",
    "MsgspecJsonSerde",
    "PydanticJsonSerde",
    "Serde",
    "is_pydantic",
    "serde_for_type",
]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the official SDK's type variable names
O = TypeVar("O")  # noqa: E741


def _pydantic_base() -> type | None:
    try:
        from pydantic import BaseModel  # type: ignore[import-not-found]
    except ImportError:
        return None
    return BaseModel


def _msgspec_struct() -> type | None:
    try:
        from msgspec import Struct  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Struct


_PYDANTIC_BASE = _pydantic_base()
_MSGSPEC_STRUCT = _msgspec_struct()


def is_pydantic(annotation: Any) -> bool:
    """True if ``annotation`` is a pydantic model class (False without pydantic)."""
    if _PYDANTIC_BASE is None:
        return False
    try:
        return issubclass(annotation, _PYDANTIC_BASE)
    except TypeError:
        return False


def is_msgspec_struct(annotation: Any) -> bool:
    if _MSGSPEC_STRUCT is None:
        return False
    try:
        return issubclass(annotation, _MSGSPEC_STRUCT)
    except TypeError:
        return False


class Serde(Generic[T], abc.ABC):
    """Turns values into bytes and back."""

    @abc.abstractmethod
    def deserialize(self, buf: bytes) -> T | None: ...

    @abc.abstractmethod
    def serialize(self, obj: T | None) -> bytes: ...


class BytesSerde(Serde[bytes]):
    """Passes bytes through unchanged; ``None`` is the empty payload."""

    def deserialize(self, buf: bytes) -> bytes | None:
        return buf

    def serialize(self, obj: bytes | None) -> bytes:
        return b"" if obj is None else bytes(obj)


class JsonSerde(Serde[I]):
    """Plain ``json`` without type hints."""

    def deserialize(self, buf: bytes) -> I | None:
        if not buf:
            return None
        return json.loads(buf)

    def serialize(self, obj: I | None) -> bytes:
        if obj is None:
            return b""
        return json.dumps(obj).encode()


# Values and hints that are plain JSON whatever else is installed: no pydantic, msgspec or
# dataclass handling applies to them.
_JSON_TYPES = frozenset({int, float, str, bool, list, dict})


class DefaultSerde(Serde[I]):
    """JSON, specialised by an optional type hint (pydantic, msgspec, dataclass)."""

    __slots__ = ("type_hint",)

    def __init__(self, type_hint: type[I] | None = None) -> None:
        self.type_hint = type_hint

    def with_maybe_type(self, type_hint: Any = None) -> DefaultSerde[I]:
        """A new DefaultSerde for ``type_hint`` (this one is left unchanged)."""
        return DefaultSerde(type_hint)

    def deserialize(self, buf: bytes) -> I | None:
        if not buf:
            return None
        hint = self.type_hint
        if hint is None or hint in _JSON_TYPES:
            return json.loads(buf)
        if is_msgspec_struct(hint):
            import msgspec  # type: ignore[import-not-found]

            return msgspec.json.decode(buf, type=hint)
        if is_pydantic(hint):
            return hint.model_validate_json(buf)  # type: ignore[attr-defined]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return _dataclass_from_json(hint, json.loads(buf))
        return json.loads(buf)

    def serialize(self, obj: I | None) -> bytes:
        if obj is None:
            return b""
        hint = self.type_hint
        if type(obj) in _JSON_TYPES and (hint is None or hint in _JSON_TYPES):
            return json.dumps(obj).encode()  # what the checks below come to for these
        if hint is None:
            if is_pydantic(type(obj)):
                return obj.model_dump_json().encode()  # type: ignore[attr-defined]
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                return json.dumps(dataclasses.asdict(obj)).encode()
            return json.dumps(obj).encode()
        if is_msgspec_struct(hint):
            import msgspec  # type: ignore[import-not-found]

            return msgspec.json.encode(obj)
        if is_pydantic(hint):
            return obj.model_dump_json().encode()  # type: ignore[attr-defined]
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return json.dumps(dataclasses.asdict(obj)).encode()
        return json.dumps(obj).encode()


# The default serde of every parameter that takes one (stateless, so sharing it is safe).
DEFAULT_SERDE: DefaultSerde[Any] = DefaultSerde()


def _dataclass_from_json(cls: type, data: Any) -> Any:
    """Rebuild a (possibly nested) dataclass from decoded JSON, following field types."""
    if not isinstance(data, dict):
        return data
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        ftype = hints.get(field.name)
        if isinstance(ftype, type) and dataclasses.is_dataclass(ftype):
            value = _dataclass_from_json(ftype, value)
        kwargs[field.name] = value
    return cls(**kwargs)


class PydanticJsonSerde(Serde[I]):
    """JSON for one pydantic model class."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def deserialize(self, buf: bytes) -> I | None:
        if not buf:
            return None
        return self.model.model_validate_json(buf)

    def serialize(self, obj: I | None) -> bytes:
        if obj is None:
            return b""
        return obj.model_dump_json().encode()  # type: ignore[attr-defined]


class MsgspecJsonSerde(Serde[I]):
    """JSON for one msgspec struct class."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def deserialize(self, buf: bytes) -> I | None:
        if not buf:
            return None
        import msgspec  # type: ignore[import-not-found]

        return msgspec.json.decode(buf, type=self.model)

    def serialize(self, obj: I | None) -> bytes:
        if obj is None:
            return b""
        import msgspec  # type: ignore[import-not-found]

        return msgspec.json.encode(obj)


def serde_for_type(annotation: Any) -> Serde[Any] | None:
    """The specialised serde a handler signature implies, or None for the default."""
    if is_msgspec_struct(annotation):
        return MsgspecJsonSerde(annotation)
    if is_pydantic(annotation):
        return PydanticJsonSerde(annotation)
    return None
