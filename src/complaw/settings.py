"""The one validator of dicts that become dataclasses (stage configs, stage options, method
options): `check_fields` names unknown keys and values of the wrong plain type, listing the valid
fields; `Settings` is the dict round trip of a frozen dataclass of options built on it."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

from complaw.errors import ComplawError, ConfigError

T = TypeVar("T")
S = TypeVar("S", bound="Settings")
_PLAIN = (bool, int, float, str, type(None))


def _accepts(expected: Any, value: Any) -> bool:
    """Whether `value` fits the annotation `expected` (a bool is no number; an int is a float).
    Only plain types (and unions of them) are checked; other annotations accept anything."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        args = typing.get_args(expected)
        if not all(a in _PLAIN for a in args):
            return True
        return any(_accepts(arg, value) for arg in args)
    if expected not in _PLAIN:
        return True
    if expected is type(None):
        return value is None
    if expected in (int, float) and isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    if expected in _PLAIN:
        return "None" if expected is type(None) else expected.__name__
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(expected))
    return str(expected).replace("typing.", "").replace("collections.abc.", "")


def field_types(cls: type) -> dict[str, Any]:
    """The constructor fields of the dataclass `cls` and their (resolved) annotations."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.init}


def check_fields(cls: type[T], data: Mapping[str, Any], what: str, owner: str = "",
                 error: type[ComplawError] = ConfigError) -> T:
    """`cls(**data)` once every key of `data` is a field of `cls` and every value fits its plain
    type; otherwise `error` naming the kind of key (`what`, e.g. "option"), its `owner`, the bad
    key or value, and the valid fields with their types."""
    valid = field_types(cls)
    listing = ", ".join(f"{name} ({_type_name(t)})" for name, t in valid.items()) or "none"
    where = f" for {owner}" if owner else ""
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise error(f"unknown {what}(s) {', '.join(unknown)}{where}; valid {what}s: {listing}")
    for name, value in data.items():
        if not _accepts(valid[name], value):
            raise error(f"{what} {name}={value!r}{where} must be {_type_name(valid[name])}")
    return cls(**data)


class Settings:
    """Mixin for a frozen dataclass of settings; `what` names them in errors."""

    what: ClassVar[str] = "setting"

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any]) -> S:
        """Build from a dict (e.g. YAML); unknown keys and wrong types are errors."""
        return check_fields(cls, data, cls.what)

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field `name` (the CLI's option help)."""
        return next(f.metadata["help"] for f in fields(cls) if f.name == name)  # type: ignore[arg-type]
