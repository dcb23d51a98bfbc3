"""Build kio response objects without per-version branches.

kio generates one module per API version; fields come and go between versions. Handlers describe
the response once, with every field they know, and `build` keeps the fields that the version's
dataclass has. Nested classes are looked up by name in the same version's module.
"""

from __future__ import annotations

import dataclasses
import datetime
from functools import cache
from types import ModuleType
from typing import Any

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta

ZERO_THROTTLE = i32Timedelta.parse(datetime.timedelta(0))


@cache
def response_module(api_key: int, version: int) -> ModuleType:
    import sys

    cls = load_response_schema(api_key, version)
    return sys.modules[cls.__module__]


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def has_field(module: ModuleType, class_name: str, name: str) -> bool:
    return name in _field_names(getattr(module, class_name))


def build(module: ModuleType, class_name: str, **kwargs: Any) -> Any:
    """Instantiate `module.class_name`, dropping keyword arguments the version lacks."""
    cls = getattr(module, class_name)
    names = _field_names(cls)
    return cls(**{k: v for k, v in kwargs.items() if k in names})


def error(code: int) -> ErrorCode:
    return ErrorCode(code)


def timedelta_ms(ms: int) -> i32Timedelta:
    return i32Timedelta.parse(datetime.timedelta(milliseconds=ms))
