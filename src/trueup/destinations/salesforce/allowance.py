"""The org's daily API allocation: what a run will cost, and the reserve trueup leaves unused.

Salesforce counts every data API call against a rolling 24-hour allocation shared by all of an
org's integrations, and refuses calls once it is spent (403 ``REQUEST_LIMIT_EXCEEDED``, wire spec
§9.3). ``destination.api_reserve`` calls are left for the others:

- before the first write, ``refuse_run`` compares what ``/limits`` says is left with
  ``estimate_calls`` for the run and refuses it when the run would eat into the reserve;
- before every later write and every REST request, ``stop_at_reserve`` reads the latest
  ``Sforce-Limit-Info`` usage and stops the run once what is left is at or below the reserve.

Estimates, by write path: REST sends ``ceil(records / batch_size)`` collections requests; a Bulk
job of up to 10,000 records costs ``JOB_CALLS`` calls plus ``JOB_POLLS`` status polls. Both get
``RETRY_MARGIN`` on top for resent requests. Bisected chunks or slow jobs can cost more than
estimated: the check between writes catches that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trueup.config_salesforce import WritePath
from trueup.destinations.salesforce.bulk import JOB_RECORDS
from trueup.errors import ApiAllowanceExhausted

LIMIT_NAME = "DailyApiRequests"
JOB_CALLS = 6  # create, upload, close, successful and failed results, unprocessed or a REST resend
JOB_POLLS = 10  # job info reads while it runs (backing off to the poll interval)
RETRY_MARGIN = 0.1  # share of calls added for transient failures that are resent


@dataclass(frozen=True)
class Allowance:
    """Daily API requests: the org's allocation and what is left of it now."""

    maximum: int
    remaining: int

    @classmethod
    def from_limits(cls, limits: Mapping[str, Any]) -> Allowance | None:
        """``DailyApiRequests`` from a ``/limits`` answer, or None when it is not there."""
        entry = limits.get(LIMIT_NAME)
        if not isinstance(entry, Mapping):
            return None
        try:  # the first published example had strings (§9.3)
            return cls(int(entry["Max"]), int(entry["Remaining"]))
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def from_usage(cls, usage: tuple[int, int] | None) -> Allowance | None:
        """From ``Sforce-Limit-Info: api-usage=USED/MAX`` as (used, max), when a call had one."""
        if usage is None:
            return None
        used, maximum = usage
        return cls(maximum, max(maximum - used, 0))


ID_LOOKUP_KEYS = 200  # keys per Id lookup query (soql.MAX_IN_VALUES)


def estimate_calls(records: int, *, path: WritePath, batch_size: int, by_id: bool = False) -> int:
    """API calls writing ``records`` through ``path`` is expected to take, resends included;
    ``by_id``: each record's Id is looked up by its key first (update, delete: one query per
    200 keys)."""
    if records <= 0:
        return 0
    if path is WritePath.BULK:
        calls = math.ceil(records / JOB_RECORDS) * (JOB_CALLS + JOB_POLLS)
    else:
        calls = math.ceil(records / batch_size)
    if by_id:
        calls += math.ceil(records / ID_LOOKUP_KEYS)
    return calls + math.ceil(calls * RETRY_MARGIN)


def refuse_run(
    allowance: Allowance, *, estimate: int, reserve: int, records: int, path: WritePath
) -> None:
    """Raise ApiAllowanceExhausted when the run's ``estimate`` would reach into ``reserve``."""
    if allowance.remaining - estimate >= reserve:
        return
    raise ApiAllowanceExhausted(
        f"not starting: Salesforce's daily API allocation has {allowance.remaining:,} of "
        f"{allowance.maximum:,} requests left, this run needs about {estimate:,} "
        f"({records:,} records through {path.value.upper()}) and destination.api_reserve keeps "
        f"{reserve:,} unused; nothing was written. Run it when the allocation has recovered "
        "(it is a rolling 24 hours), with fewer changes, or with a lower api_reserve"
    )


def stop_at_reserve(allowance: Allowance | None, *, reserve: int, mid_write: bool = False) -> None:
    """Raise ApiAllowanceExhausted once what is left is at or below ``reserve``."""
    if allowance is None or allowance.remaining > reserve:
        return
    raise ApiAllowanceExhausted(
        f"Salesforce's daily API allocation is down to {allowance.remaining:,} of "
        f"{allowance.maximum:,} requests, at destination.api_reserve ({reserve:,})",
        mid_write=mid_write,
    )
