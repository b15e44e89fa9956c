"""Method options as dataclasses: names and types checked once, with errors that list the valid
ones. A method (or a PruneNet policy) declares its options as a dataclass whose fields have
plain types (int, float, bool, str, or a union of them with None) and may check ranges in
`__post_init__`; `parse_options` builds it from the keyword options a caller passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from complaw.errors import CompressionError
from complaw.settings import check_fields, field_types

T = TypeVar("T")


def parse_options(cls: type[T], options: Mapping[str, Any], owner: str) -> T:
    """Build the options dataclass `cls` from `options`, naming `owner` in every error.

    Unknown names and values of the wrong type raise a CompressionError that lists the valid
    options with their types (complaw.settings.check_fields); int values given for float
    options become floats.
    """
    types = field_types(cls)
    values = {name: float(value) if types.get(name) is float and isinstance(value, int)
              and not isinstance(value, bool) else value for name, value in options.items()}
    return check_fields(cls, values, "option", owner, CompressionError)


def option_values(options: object) -> dict[str, Any]:
    """The option fields (those set by the constructor) of an options dataclass, as a dict."""
    return {f.name: getattr(options, f.name) for f in fields(options) if f.init}


def resolve(cls: type, options: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """`options` checked against the dataclass `cls`, with every default filled in."""
    return option_values(parse_options(cls, options, owner))
