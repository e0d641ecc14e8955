# SPDX-License-Identifier: GPL-3.0-or-later
"""The pattern every document model follows, and the converters its ``from_dict`` composes.

A model is a dataclass with a class attribute ``SCHEMA`` (``"dataset_forge.<name>/<version>"``,
or the integer ``schema_version`` a document already carried), a ``from_dict(d, where)``
classmethod that checks types and raises :class:`DocumentError` naming ``where`` (the file and the
key path) and a ``to_dict()`` that gives exactly the JSON written. ``read_json`` / ``write_json``
are the file ends: a document that cannot be decoded is a :class:`DocumentError` with the path,
never a traceback.

Converters take ``(value, where)`` and return the typed value or raise. Compose them with
:func:`list_of`, :func:`dict_of` and :func:`optional`::

    frames = list_of(Frame.from_dict)(d.get("frames"), f"{where}.frames")
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ...errors import DatasetForgeError

T = TypeVar("T")
Conv = Callable[[Any, str], T]


class DocumentError(DatasetForgeError, ValueError):
    """A document that is missing, undecodable or not of its schema. The message names the file
    (and key) and what is wrong."""


def fail(where: str, what: str) -> DocumentError:
    return DocumentError(f"{where}: {what}")


# -- scalars ---------------------------------------------------------------------------------------
def as_str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise fail(where, f"expected a string, found {type(v).__name__}")
    return v


def as_bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise fail(where, f"expected true or false, found {type(v).__name__}")
    return v


def as_int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise fail(where, f"expected an integer, found {type(v).__name__}")
    return v


def as_float(v: Any, where: str) -> float:
    """A finite number (an integer is accepted)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise fail(where, f"expected a number, found {type(v).__name__}")
    if not math.isfinite(v):
        raise fail(where, f"expected a finite number, found {v}")
    return float(v)


def as_any(v: Any, where: str) -> Any:
    return v


def as_dict(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise fail(where, f"expected an object, found {type(v).__name__}")
    return v


# -- composition -----------------------------------------------------------------------------------
def optional(conv: Conv[T]) -> Conv[T | None]:
    """``None`` stays ``None``; anything else goes through ``conv``."""
    def f(v: Any, where: str) -> T | None:
        return None if v is None else conv(v, where)
    return f


def list_of(conv: Conv[T]) -> Conv[list[T]]:
    def f(v: Any, where: str) -> list[T]:
        if not isinstance(v, list):
            raise fail(where, f"expected a list, found {type(v).__name__}")
        return [conv(x, f"{where}[{i}]") for i, x in enumerate(v)]
    return f


def dict_of(conv: Conv[T]) -> Conv[dict[str, T]]:
    def f(v: Any, where: str) -> dict[str, T]:
        return {str(k): conv(x, f"{where}.{k}") for k, x in as_dict(v, where).items()}
    return f


def matrix(rows: int, cols: int) -> Conv[list[list[float]]]:
    """A ``rows x cols`` nested list of finite numbers."""
    def f(v: Any, where: str) -> list[list[float]]:
        m = list_of(list_of(as_float))(v, where)
        if len(m) != rows or any(len(r) != cols for r in m):
            raise fail(where, f"expected a {rows}x{cols} matrix")
        return m
    return f


def field(d: dict[str, Any], key: str, conv: Conv[T], where: str, default: Any = ...) -> T:
    """``conv(d[key])``; a missing key is an error unless ``default`` is given."""
    if key not in d:
        if default is ...:
            raise fail(where, f"missing key '{key}'")
        return default
    return conv(d[key], f"{where}.{key}")


def check_schema(d: dict[str, Any], key: str, accepted: tuple[Any, ...], where: str) -> Any:
    """The document's schema marker ``d[key]``, which must be one of ``accepted``."""
    v = d.get(key)
    if v not in accepted:
        raise fail(where, f"{key} {v!r} is not one this version reads ({', '.join(map(repr, accepted))})")
    return v


# -- files -----------------------------------------------------------------------------------------
def read_json(path: str | os.PathLike) -> Any:
    """The decoded JSON of ``path`` (NaN/Infinity refused); a :class:`DocumentError` naming the
    path when it cannot be read or decoded."""
    path = Path(path)

    def no_constants(c: str) -> Any:
        raise ValueError(f"non-JSON number {c}")

    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DocumentError(f"{path}: cannot be read as JSON ({exc})") from None


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomic, fsynced JSON (the one writer of every document)."""
    from ..transforms import write_json_atomic

    write_json_atomic(path, data)
