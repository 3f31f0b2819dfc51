"""The daily API allocation arithmetic: what a run costs, what is left, when to refuse or stop."""

from __future__ import annotations

from typing import Any

import pytest

from trueup.config_salesforce import WritePath
from trueup.destinations.salesforce.allowance import (
    Allowance,
    estimate_calls,
    refuse_run,
    stop_at_reserve,
)
from trueup.errors import ApiAllowanceExhausted


@pytest.mark.parametrize(
    ("records", "path", "batch_size", "expected"),
    [
        (0, WritePath.REST, 200, 0),
        (1, WritePath.REST, 200, 2),  # one request, and one more for a resend
        (2000, WritePath.REST, 200, 11),  # 10 requests + 10%
        (2001, WritePath.REST, 200, 13),  # 11 requests + 2
        (500, WritePath.REST, 50, 11),
        (1, WritePath.BULK, 200, 18),  # one job: 6 calls + 10 polls, + 2
        (10_000, WritePath.BULK, 200, 18),
        (10_001, WritePath.BULK, 200, 36),  # two jobs
    ],
)
def test_estimate_by_write_path(
    records: int, path: WritePath, batch_size: int, expected: int
) -> None:
    assert estimate_calls(records, path=path, batch_size=batch_size) == expected


def test_an_update_by_id_counts_its_lookup_queries() -> None:
    # 2,000 records: 10 requests + 10 Id lookups (200 keys each), + 10%
    assert estimate_calls(2000, path=WritePath.REST, batch_size=200, by_id=True) == 22


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"DailyApiRequests": {"Max": 100000, "Remaining": 98211}}, Allowance(100000, 98211)),
        ({"DailyApiRequests": {"Max": "15000", "Remaining": "14998"}}, Allowance(15000, 14998)),
        ({"DataStorageMB": {"Max": 1024, "Remaining": 990}}, None),
        ({"DailyApiRequests": {"Max": 15000}}, None),
    ],
)
def test_allowance_from_limits(limits: dict[str, Any], expected: Allowance | None) -> None:
    assert Allowance.from_limits(limits) == expected


def test_allowance_from_the_usage_header() -> None:
    assert Allowance.from_usage((58, 60)) == Allowance(60, 2)
    assert Allowance.from_usage((61, 60)) == Allowance(60, 0)
    assert Allowance.from_usage(None) is None


def test_a_run_may_use_everything_above_the_reserve_and_no_more() -> None:
    refuse_run(Allowance(60, 50), estimate=30, reserve=20, records=10, path=WritePath.REST)
    with pytest.raises(ApiAllowanceExhausted, match="49 of 60 requests left") as caught:
        refuse_run(Allowance(60, 49), estimate=30, reserve=20, records=10, path=WritePath.BULK)
    assert "needs about 30 (10 records through BULK)" in str(caught.value)
    assert not caught.value.mid_write


def test_a_run_stops_at_the_reserve() -> None:
    stop_at_reserve(None, reserve=20)  # no usage reported yet: nothing to go on
    stop_at_reserve(Allowance(60, 21), reserve=20)
    with pytest.raises(ApiAllowanceExhausted, match="down to 20 of 60 requests"):
        stop_at_reserve(Allowance(60, 20), reserve=20)
    with pytest.raises(ApiAllowanceExhausted):
        stop_at_reserve(Allowance(60, 0), reserve=0)
