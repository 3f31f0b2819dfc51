"""Fault plans: loading and validation, deterministic HTTP faults, and record rules per chunk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trueup.sandbox.errors import RecordError
from trueup.sandbox.faults import LOCK_MESSAGE, FaultPlan, HttpFault

PP = "Product_Property__c"
COMPOSITE = "/services/data/v59.0/composite/sobjects/Product_Property__c/Reverse_ETL_ID__c"
QUERY = "/services/data/v59.0/query/"

EXAMPLE_YAML = """\
seed: 7
http:
  - {match: "POST|PATCH /services/data/*/composite/*", status: 503, rate: 0.1}
  - {match: "*", status: 429, retry_after: 2, nth: [5, 9]}
  - {match: "GET /services/data/*/query*", delay: 1.5, rate: 0.2}
  - {match: "*", drop: true, nth: [12]}
tokens: {expire_after_calls: 50}
records:
  - {type: lock, object: Product_Property__c,
     keys: {field: Reverse_ETL_ID__c, values: [a, b]}, times: 1}
  - {type: lock, object: Product_Property__c, rate: 0.02}
  - {type: flow_chunk_limit, object: Product_Property__c, max_records: 50}
  - {type: validation, object: Product_Property__c,
     when: {field: Name, equals: "Bad Name"}, message: "Name is not allowed"}
"""


def _plan(**data: Any) -> FaultPlan:
    return FaultPlan.from_dict(data)


def _decisions(plan: FaultPlan, calls: int = 1000) -> list[HttpFault | None]:
    paths = [("PATCH", COMPOSITE), ("GET", QUERY), ("POST", "/services/data/v59.0/jobs/ingest")]
    return [plan.on_request(*paths[i % 3]) for i in range(calls)]


def _rows(n: int, **values: Any) -> list[dict[str, Any]]:
    return [{"Reverse_ETL_ID__c": f"r{i}", "Name": f"Row {i}", **values} for i in range(n)]


# -- loading and validation -------------------------------------------------------------------


def test_yaml_and_json_load_the_same_plan(tmp_path: Path) -> None:
    import yaml

    yml = tmp_path / "plan.yml"
    yml.write_text(EXAMPLE_YAML)
    js = tmp_path / "plan.json"
    js.write_text(json.dumps(yaml.safe_load(EXAMPLE_YAML)))
    from_yaml, from_json = FaultPlan.load(yml), FaultPlan.load(js)
    assert from_yaml.spec == from_json.spec
    assert from_yaml.seed == 7
    assert len(from_yaml.describe()) == 9  # 4 http + tokens + 4 records
    assert _decisions(from_yaml) == _decisions(from_json)


def test_describe_reads_one_line_per_rule(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(EXAMPLE_YAML)
    lines = FaultPlan.load(path).describe()
    assert lines[0] == "http: POST|PATCH /services/data/*/composite/* -> 503 at rate 0.1"
    assert lines[1] == "http: * -> 429, Retry-After 2 on matching call(s) 5, 9"
    assert lines[4] == "tokens: all sessions expire every 50 API calls"
    assert "first 1 attempt(s) per record" in lines[5]
    assert all("\n" not in line for line in lines)
    assert FaultPlan.none().describe() == []


def test_empty_file_is_no_faults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("")
    assert FaultPlan.load(path).describe() == []


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"sed": 1}, "plan: unknown key 'sed'"),
        ({"seed": "x"}, "seed: expected an integer"),
        ({"http": {"match": "*"}}, "http: expected a list"),
        ({"http": [{"status": 503}]}, "http[0]: missing key 'match'"),
        ({"http": [{"match": "*", "status": 503, "rte": 0.1}]}, "http[0]: unknown key 'rte'"),
        ({"http": [{"match": "*", "status": "503"}]}, "http[0].status: expected an integer"),
        ({"http": [{"match": "*", "status": 999}]}, "http[0].status: expected an HTTP status"),
        ({"http": [{"match": "*", "status": 503, "rate": 2}]}, "http[0].rate: expected a number"),
        ({"http": [{"match": "*", "status": 503, "nth": [0]}]}, "http[0].nth: expected an integer"),
        ({"http": [{"match": "*", "status": 503, "nth": 1, "rate": 0.5}]}, "rate or nth"),
        ({"http": [{"match": "FETCH /x", "status": 503}]}, "unknown HTTP method 'FETCH'"),
        ({"http": [{"match": "GET services", "status": 503}]}, "http[0].match: expected"),
        ({"http": [{"match": "*"}]}, "http[0]: needs an effect"),
        ({"http": [{"match": "*", "retry_after": 2, "delay": 1}]}, "retry_after: needs a status"),
        ({"http": [{"match": "*", "drop": "yes"}]}, "http[0].drop: expected true or false"),
        ({"tokens": {"expire_after": 5}}, "tokens: unknown key 'expire_after'"),
        ({"tokens": {"expire_after_calls": 0}}, "tokens.expire_after_calls: expected an integer"),
        ({"records": [{"type": "lok", "object": PP}]}, "records[0].type: expected one of"),
        ({"records": [{"type": "lock"}]}, "records[0]: missing key 'object'"),
        ({"records": [{"type": "lock", "object": PP}]}, "needs keys or a rate"),
        (
            {"records": [{"type": "lock", "object": PP, "rate": 0.1, "times": 1}]},
            "times: needs keys",
        ),
        ({"records": [{"type": "lock", "object": PP, "nth": [1]}]}, "unknown key 'nth'"),
        ({"records": [{"type": "flow_chunk_limit", "object": PP}]}, "missing key 'max_records'"),
        (
            {
                "records": [
                    {"type": "flow_chunk_limit", "object": PP, "max_records": 5, "limit": "x"}
                ]
            },
            "records[0].limit: expected soql or cpu",
        ),
        (
            {
                "records": [
                    {"type": "validation", "object": PP, "message": "m", "when": {"field": "N"}}
                ]
            },
            "needs exactly one of equals, matches, is_null",
        ),
        (
            {
                "records": [
                    {
                        "type": "validation",
                        "object": PP,
                        "message": "m",
                        "when": {"field": "N", "matches": "("},
                    }
                ]
            },
            "records[0].when.matches: invalid regex",
        ),
        (
            {"records": [{"type": "lock", "object": PP, "rate": 0.1, "operations": ["merge"]}]},
            "records[0].operations: unknown operation 'merge'",
        ),
    ],
)
def test_bad_plans_fail_with_one_line_naming_the_key(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        FaultPlan.from_dict(data)
    message = str(caught.value)
    assert message.startswith("fault plan: ")
    assert fragment in message
    assert "\n" not in message


def test_bad_files_fail_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("http:\n  - {match: '*', status: 503\n")
    cases = {
        broken: "invalid YAML at line",
        tmp_path / "missing.yml": "cannot read it",
        tmp_path / "plan.toml": "expected a .yml, .yaml or .json file",
        tmp_path / "bad.json": "invalid JSON at line 1",
        tmp_path / "wrong.json": "http[0].status: expected an integer",
    }
    (tmp_path / "plan.toml").write_text("seed = 1")
    (tmp_path / "bad.json").write_text("{seed: 1}")
    (tmp_path / "wrong.json").write_text('{"http": [{"match": "*", "status": true}]}')
    for path, fragment in cases.items():
        with pytest.raises(ValueError) as caught:
            FaultPlan.load(path)
        message = str(caught.value)
        assert message.startswith(f"fault plan {path}: "), message
        assert fragment in message and "\n" not in message, message


# -- HTTP faults ------------------------------------------------------------------------------


def _rate_plan(seed: int) -> FaultPlan:
    return _plan(seed=seed, http=[{"match": "*", "status": 503, "rate": 0.1}])


def test_same_seed_same_decisions_over_1000_calls() -> None:
    assert _decisions(_rate_plan(7)) == _decisions(_rate_plan(7))


def test_different_seed_different_decisions() -> None:
    assert _decisions(_rate_plan(7)) != _decisions(_rate_plan(8))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_rate_is_close_to_configured(rate: float) -> None:
    plan = _plan(seed=3, http=[{"match": "*", "status": 503, "rate": rate}])
    hits = sum(fault is not None for fault in _decisions(plan, 5000))
    assert abs(hits / 5000 - rate) < 0.03


def test_nth_fires_exactly_on_those_matching_calls() -> None:
    plan = _plan(http=[{"match": "GET /services/data/*/query*", "status": 429, "nth": [2, 4]}])
    faults = [plan.on_request("GET", QUERY) for _ in range(6)]
    assert [f is not None for f in faults] == [False, True, False, True, False, False]
    # non-matching calls do not advance the rule's count
    plan = _plan(http=[{"match": "GET /services/data/*/query*", "status": 429, "nth": [2]}])
    assert plan.on_request("GET", QUERY) is None
    assert plan.on_request("PATCH", COMPOSITE) is None
    assert plan.on_request("GET", QUERY) is not None


def test_status_faults_carry_salesforce_bodies_and_retry_after() -> None:
    plan = _plan(
        http=[
            {"match": "*", "status": 503, "nth": [1]},
            {"match": "*", "status": 429, "retry_after": 2, "nth": [2]},
            {"match": "*", "status": 500, "body": None, "nth": [3]},
            {"match": "*", "status": 400, "body": [{"message": "m", "errorCode": "X"}], "nth": [4]},
        ]
    )
    first, second, third, fourth = (plan.on_request("GET", QUERY) for _ in range(4))
    assert first == HttpFault(
        status=503,
        body=[
            {
                "message": "The server is temporarily unavailable. Please try again later.",
                "errorCode": "SERVER_UNAVAILABLE",
            }
        ],
    )
    assert second is not None and second.status == 429 and second.retry_after == 2
    assert second.body[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert third == HttpFault(status=500, body=None)
    assert fourth is not None and fourth.body == [{"message": "m", "errorCode": "X"}]


def test_method_and_path_matching() -> None:
    plan = _plan(http=[{"match": "POST|PATCH /services/data/*/composite/*", "delay": 0.5}])
    assert plan.on_request("patch", COMPOSITE) == HttpFault(delay=0.5)
    assert plan.on_request("POST", "/services/data/v59.0/composite/sobjects") is not None
    assert plan.on_request("GET", COMPOSITE) is None
    assert plan.on_request("POST", "/services/data/v59.0/jobs/ingest") is None


def test_drop_and_first_firing_rule_wins() -> None:
    plan = _plan(
        http=[
            {"match": "*", "drop": True, "nth": [1]},
            {"match": "*", "status": 503},
        ]
    )
    assert plan.on_request("GET", QUERY) == HttpFault(drop=True)
    fault = plan.on_request("GET", QUERY)
    assert fault is not None and fault.status == 503


def test_token_endpoint_only_when_a_rule_names_it() -> None:
    plan = _plan(http=[{"match": "*", "status": 503}], tokens={"expire_after_calls": 1})
    assert not plan.targets_token_endpoint
    assert plan.on_request("POST", "/services/oauth2/token") is None
    named = _plan(http=[{"match": "POST /services/oauth2/token", "status": 503, "nth": [1]}])
    assert named.targets_token_endpoint
    assert named.on_request("POST", "/services/oauth2/token") is not None


def test_sandbox_control_routes_are_never_faulted() -> None:
    plan = _plan(http=[{"match": "*", "status": 503}], tokens={"expire_after_calls": 1})
    assert plan.on_request("GET", "/__sandbox/requests") is None


def test_sessions_expire_every_n_api_calls() -> None:
    plan = _plan(tokens={"expire_after_calls": 3})
    faults = [plan.on_request("GET", QUERY) for _ in range(7)]
    assert [f is not None and f.expire_session for f in faults] == [
        False,
        False,
        True,
        False,
        False,
        True,
        False,
    ]
    plan.on_request("POST", "/services/oauth2/token")  # the refresh is not an API call
    assert plan.on_request("GET", QUERY) is None
    assert plan.on_request("GET", QUERY) == HttpFault(expire_session=True)


def test_session_expiry_combines_with_another_fault() -> None:
    plan = _plan(http=[{"match": "*", "status": 503}], tokens={"expire_after_calls": 1})
    fault = plan.on_request("GET", QUERY)
    assert fault is not None and fault.status == 503 and fault.expire_session


# -- record rules -----------------------------------------------------------------------------


def test_flow_chunk_limit_fails_a_big_chunk_wholly_and_passes_small_ones() -> None:
    plan = _plan(
        records=[{"type": "flow_chunk_limit", "object": PP, "max_records": 50, "flow": "PP Sync"}]
    )
    results = plan.before_save(PP, "upsert", _rows(200))
    assert len(results) == 200
    assert all(isinstance(r, RecordError) for r in results)
    first = results[0]
    assert first is not None and first.status_code == "CANNOT_EXECUTE_FLOW_TRIGGER"
    assert first.message.startswith(
        "We can't save this record because the “PP Sync” process failed. "
        "Give your Salesforce admin these details. "
        "System.LimitException: Too many SOQL queries: 101 Error ID: "
    )
    assert all(r is not None for r in plan.before_save(PP, "upsert", _rows(200)))  # no retry luck
    for _ in range(4):
        assert plan.before_save(PP, "upsert", _rows(50)) == [None] * 50
    assert plan.before_save("Property__c", "upsert", _rows(200)) == [None] * 200


def test_flow_chunk_limit_cpu_wording() -> None:
    plan = _plan(
        records=[{"type": "flow_chunk_limit", "object": PP, "max_records": 1, "limit": "cpu"}]
    )
    error = plan.before_save(PP, "insert", _rows(2))[0]
    assert (
        error is not None and "System.LimitException: Apex CPU time limit exceeded" in error.message
    )


def test_lock_with_times_is_transient() -> None:
    plan = _plan(
        records=[
            {
                "type": "lock",
                "object": PP,
                "keys": {"field": "Reverse_ETL_ID__c", "values": ["r1", "r3"]},
                "times": 2,
            }
        ]
    )
    lock = RecordError("UNABLE_TO_LOCK_ROW", LOCK_MESSAGE)
    assert LOCK_MESSAGE == "unable to obtain exclusive access to this record or 200 records"
    for _ in range(2):
        assert plan.before_save(PP, "upsert", _rows(4)) == [None, lock, None, lock]
    assert plan.before_save(PP, "upsert", _rows(4)) == [None] * 4


def test_lock_at_a_rate_is_deterministic() -> None:
    def run(seed: int) -> list[bool]:
        plan = _plan(seed=seed, records=[{"type": "lock", "object": PP, "rate": 0.1}])
        return [
            r is not None for _ in range(10) for r in plan.before_save(PP, "update", _rows(200))
        ]

    first = run(5)
    assert first == run(5)
    assert first != run(6)
    assert abs(sum(first) / len(first) - 0.1) < 0.03


@pytest.mark.parametrize(
    ("when", "failing"),
    [
        ({"field": "Name", "equals": "Bad Name"}, [1]),
        ({"field": "name", "matches": "Bad.*"}, [1, 2]),
        ({"field": "Notes__c", "is_null": True}, [0, 1]),
        ({"field": "Notes__c", "is_null": False}, [2]),
        ({"field": "Score__c", "equals": 3}, [2]),
    ],
)
def test_validation_rule_matching(when: dict[str, Any], failing: list[int]) -> None:
    plan = _plan(
        records=[
            {"type": "validation", "object": PP, "when": when, "message": "Name is not allowed"}
        ]
    )
    chunk = [
        {"Name": "Good", "Notes__c": None},
        {"Name": "Bad Name"},
        {"Name": "Bad Other", "Notes__c": "x", "Score__c": 3},
    ]
    results = plan.before_save(PP, "insert", chunk)
    assert [i for i, r in enumerate(results) if r is not None] == failing
    for index in failing:
        assert results[index] == RecordError(
            "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Name is not allowed", (when["field"],)
        )


def test_validation_fields_and_operations() -> None:
    rule = {
        "type": "validation",
        "object": PP,
        "when": {"field": "Name", "equals": "X"},
        "message": "No X",
        "fields": [],
    }
    plan = _plan(records=[rule])
    error = plan.before_save(PP, "update", [{"Name": "X"}])[0]
    assert error is not None and error.fields == ()
    assert plan.before_save(PP, "delete", [{"Name": "X"}]) == [None]  # not run on delete


def test_first_failing_rule_wins_per_record() -> None:
    plan = _plan(
        records=[
            {
                "type": "validation",
                "object": PP,
                "when": {"field": "Name", "equals": "Row 0"},
                "message": "no",
            },
            {"type": "lock", "object": PP, "keys": {"field": "Name", "values": ["Row 0", "Row 1"]}},
        ]
    )
    results = plan.before_save(PP, "upsert", _rows(3))
    assert [r.status_code if r else None for r in results] == [
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "UNABLE_TO_LOCK_ROW",
        None,
    ]


def test_no_plan_fails_nothing() -> None:
    plan = FaultPlan.none()
    assert plan.on_request("GET", QUERY) is None
    assert plan.before_save(PP, "upsert", _rows(200)) == [None] * 200
