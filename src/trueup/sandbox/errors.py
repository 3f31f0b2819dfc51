"""Salesforce's two error shapes, as the sandbox raises and serialises them.

- ``ApiError``: the request failed as a whole. Rendered as a JSON array
  ``[{"message": ..., "errorCode": ..., "fields": [...]}]`` with an HTTP status.
- ``RecordError``: one record of a DML call failed. Rendered inside save results as
  ``{"statusCode": ..., "message": ..., "fields": [...]}`` (the key is statusCode, not errorCode).

The sandbox shares no code with trueup's Salesforce destination (DESIGN.md §2): these types exist
only on the server side of the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """A request-level failure: HTTP status plus Salesforce's error array."""

    def __init__(
        self, status: int, error_code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        """The JSON body Salesforce sends for this error."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields:
            item["fields"] = list(self.fields)
        return [item]


def not_found(message: str = "The requested resource does not exist") -> ApiError:
    """404 NOT_FOUND with Salesforce's usual wording."""
    return ApiError(404, "NOT_FOUND", message)


@dataclass(frozen=True)
class RecordError:
    """Why one record of a DML call failed."""

    status_code: str
    message: str
    fields: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The ``errors[]`` entry of a save result."""
        return {
            "statusCode": self.status_code,
            "message": self.message,
            "fields": list(self.fields),
        }
