"""What the org asks before saving: the hook scripted faults use to fail records like automation.

Salesforce runs triggers, flows and validation rules per chunk of up to 200 records of one object in
one DML call; a rule can fail single records (validation) or the whole chunk (a governor limit hit
inside a flow). The org calls ``before_save`` once per such chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from trueup.sandbox.errors import RecordError

TRIGGER_CHUNK = 200


class RecordRules(Protocol):
    """Decides, per trigger chunk, which records fail and why."""

    def before_save(
        self, sobject: str, operation: str, chunk: Sequence[Mapping[str, Any]]
    ) -> Sequence[RecordError | None]:
        """One entry per record of ``chunk`` (values as they would be stored, ``Id`` included for
        updates): None lets it save, a RecordError fails it. ``operation`` is insert, update,
        upsert or delete."""


class NoRules:
    """An org with no automation: every record may save."""

    def before_save(
        self, sobject: str, operation: str, chunk: Sequence[Mapping[str, Any]]
    ) -> Sequence[RecordError | None]:
        """Nothing fails."""
        return [None] * len(chunk)
