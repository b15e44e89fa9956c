"""Method options as dataclasses: names and types checked once, with errors that list the valid
ones. A method (or a PruneNet policy) declares its options as a dataclass whose fields have
plain types (int, float, bool, str, or a union of them with None) and may check ranges in
`__post_init__`; `parse_options` builds it from the keyword options a caller passed.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from complaw.errors import CompressionError

T = TypeVar("T")


def _accepts(expected: Any, value: Any) -> bool:
    """Whether `value` fits the annotation `expected` (a bool is no number; an int is a float)."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected in (int, float) and isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    args = typing.get_args(expected) or (expected,)
    return " or ".join("None" if a is type(None) else a.__name__ for a in args)


def parse_options(cls: type[T], options: Mapping[str, Any], owner: str) -> T:
    """Build the options dataclass `cls` from `options`, naming `owner` in every error.

    Unknown names and values of the wrong type raise a CompressionError that lists the valid
    options with their types; int values given for float options become floats.
    """
    hints = typing.get_type_hints(cls)
    valid = {f.name: hints[f.name] for f in fields(cls) if f.init}
    listing = ", ".join(f"{name} ({_type_name(t)})" for name, t in valid.items()) or "none"
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise CompressionError(
            f"unknown option(s) {', '.join(unknown)} for {owner}; valid options: {listing}"
        )
    values = {}
    for name, value in options.items():
        expected = valid[name]
        if not _accepts(expected, value):
            raise CompressionError(
                f"option {name}={value!r} for {owner} must be {_type_name(expected)}"
            )
        values[name] = float(value) if expected is float else value
    return cls(**values)


def option_values(options: object) -> dict[str, Any]:
    """The option fields (those set by the constructor) of an options dataclass, as a dict."""
    return {f.name: getattr(options, f.name) for f in fields(options) if f.init}


def resolve(cls: type, options: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """`options` checked against the dataclass `cls`, with every default filled in."""
    return option_values(parse_options(cls, options, owner))
