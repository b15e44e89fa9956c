"""`Settings`: the dict round trip shared by the frozen settings dataclasses (zero-shot, speed,
recovery): `to_dict` for records and YAML (tuples as lists), `from_dict` naming unknown keys."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

from complaw.errors import check_known

S = TypeVar("S", bound="Settings")


class Settings:
    """Mixin for a frozen dataclass of settings; `what` names them in errors."""

    what: ClassVar[str] = "setting(s)"

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any]) -> S:
        """Build from a dict (e.g. YAML); unknown keys are an error that lists the valid ones."""
        check_known(data, (f.name for f in fields(cls)), cls.what)  # type: ignore[arg-type]
        return cls(**data)
