"""Building blocks shared by the config modules: the frozen section base and value checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def between(lo: float, hi: float) -> Callable[[Any], Any]:
    """A validator accepting values from ``lo`` to ``hi`` inclusive."""

    def check(value: Any) -> Any:
        if not lo <= value <= hi:
            lo_s, hi_s = (f"{x:g}" for x in (lo, hi))
            raise ValueError(f"must be between {lo_s} and {hi_s}")
        return value

    return check


def _identifier(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError("must be a plain identifier (letters, digits, underscore)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
BatchSize = Annotated[int, AfterValidator(between(1, 10000))]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
