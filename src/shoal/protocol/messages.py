"""Build kio messages of one API version by class, with misspelt fields caught.

kio generates one module per API version, and fields come and go between versions. A handler
describes a response once, with every field it knows, and `Messages.make` keeps the fields the
version's class has. Two mistakes used to pass silently and now raise `UnknownField`:
- a keyword that no version of the class has (a typo, or a field of another class), checked
  against the union of the class's fields over every version kio knows (cached), and
- a class of another API than the one being built.
Classes are named by symbol (imported from any version of kio's schema), never by string; the
class of the requested version is looked up by that symbol's name.

`keep_fields` is the unchecked form for callers that hold the exact version's class already
(the client, tests building requests of a version they pick).
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any, Final

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import schema_name_map
from kio.static.constants import EntityType
from kio.static.primitive import i32Timedelta

from shoal.protocol.apis import ApiKey

ZERO_THROTTLE: Final = i32Timedelta.parse(datetime.timedelta(0))
# Kafka's "authorized operations were not requested" (INT32_MIN), for every *_authorized_operations.
UNKNOWN_AUTHORIZED_OPERATIONS: Final = -(2**31)


class UnknownField(TypeError):
    """A field or class that no version of the message has: a bug in the caller."""


@dataclass(frozen=True, slots=True)
class Messages:
    """The request or response classes of one API version."""

    api_key: ApiKey
    version: int
    kind: EntityType
    module: ModuleType

    def make(self, cls: type[Any], /, **fields: Any) -> Any:
        """An instance of this version's `cls`, with the fields this version has."""
        own = self.cls(cls)
        names = fields_of(own)
        extra = fields.keys() - names
        # Only fields this version lacks are looked up in the other versions: the union imports
        # every version's schema module, which cost a cold agent ~0.3 s of CPU on its first
        # requests when every call computed it.
        if extra:
            unknown = extra - _fields_of_any_version(self.api_key, self.kind, cls.__name__)
            if unknown:
                raise UnknownField(
                    f"{cls.__name__} has no field {', '.join(sorted(unknown))} in any version"
                )
            fields = {k: v for k, v in fields.items() if k in names}
        return own(**fields)

    def cls(self, cls: type[Any]) -> type[Any]:
        """This version's class of the same name as `cls` (which may be of any version)."""
        prefix = f"kio.schema.{self.api_key.schema_name}.v"
        if not cls.__module__.startswith(prefix):
            raise UnknownField(f"{cls.__name__} is not a {self.api_key.api_name} message")
        own = getattr(self.module, cls.__name__, None)
        if own is None:
            raise UnknownField(f"{self.api_key.api_name} v{self.version} has no {cls.__name__}")
        assert isinstance(own, type)
        return own

    def has(self, cls: type[Any], field: str) -> bool:
        """Whether this version's `cls` has `field` (for answers that differ by version)."""
        return field in fields_of(self.cls(cls))


@cache
def responses(api_key: ApiKey, version: int) -> Messages:
    module = sys.modules[load_response_schema(api_key, version).__module__]
    return Messages(api_key, version, EntityType.response, module)


@cache
def requests(api_key: ApiKey, version: int) -> Messages:
    module = sys.modules[load_request_schema(api_key, version).__module__]
    return Messages(api_key, version, EntityType.request, module)


_FIELDS: dict[type[Any], frozenset[str]] = {}  # bounded by the number of kio classes


def fields_of(cls: type[Any]) -> frozenset[str]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def keep_fields(cls: type[Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The subset of `fields` that `cls` (one version's dataclass) has."""
    names = fields_of(cls)
    return {k: v for k, v in fields.items() if k in names}


def versions_of(api_key: ApiKey) -> range:
    """The versions of `api_key` that kio has schemas for."""
    known = sorted(schema_name_map[api_key.schema_name])
    return range(known[0], known[-1] + 1)


@cache
def _fields_of_any_version(api_key: ApiKey, kind: EntityType, class_name: str) -> frozenset[str]:
    load = load_response_schema if kind == EntityType.response else load_request_schema
    names: set[str] = set()
    for version in versions_of(api_key):
        own = getattr(sys.modules[load(api_key, version).__module__], class_name, None)
        if own is not None:
            names |= fields_of(own)
    return frozenset(names)


def error(code: int) -> ErrorCode:
    return ErrorCode(code)


def timedelta_ms(ms: int) -> i32Timedelta:
    return i32Timedelta.parse(datetime.timedelta(milliseconds=ms))
