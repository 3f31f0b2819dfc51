"""Bulk API 2.0 ingest jobs in the sandbox: lifecycle, processing, result files (wire spec §8)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from trueup.sandbox.bulk2 import IngestJobs, error_text
from trueup.sandbox.bulkcsv import UNESCAPED_QUOTE
from trueup.sandbox.errors import ApiError, RecordError
from trueup.sandbox.org import Org

OBJECT = "Product_Property__c"
KEY = "Reverse_ETL_ID__c"
START = "Fraud_Detection_Start_Date__c"
ENABLED = "Fraud_Detection_Enabled__c"
UPSERT = {"object": OBJECT, "operation": "upsert", "externalIdFieldName": KEY}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def org() -> Org:
    return Org()


@pytest.fixture()
def jobs(org: Org) -> IngestJobs:
    return IngestJobs(org)


def open_job(jobs: IngestJobs, **body: Any) -> str:
    job = jobs.create(body or UPSERT, api_version="59.0", user_id="005000000000001AAA")
    return str(job["id"])


def run(jobs: IngestJobs, data: str | bytes, **body: Any) -> str:
    job_id = open_job(jobs, **body)
    jobs.upload(job_id, data.encode() if isinstance(data, str) else data)
    jobs.set_state(job_id, "UploadComplete")
    return job_id


def table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def api_error(call: Any, *args: Any, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


# -- creating jobs ------------------------------------------------------------------------------


def test_create_returns_an_open_job_shaped_like_salesforce(jobs: IngestJobs) -> None:
    job = jobs.create(UPSERT, api_version="59.0", user_id="005000000000001AAA")
    assert job["id"].startswith("750") and len(job["id"]) == 18
    assert job["state"] == "Open"
    assert job["object"] == OBJECT and job["operation"] == "upsert"
    assert job["externalIdFieldName"] == KEY
    assert job["apiVersion"] == 59.0 and isinstance(job["apiVersion"], float)
    assert job["contentUrl"] == f"services/data/v59.0/jobs/ingest/{job['id']}/batches"
    assert (job["contentType"], job["lineEnding"], job["columnDelimiter"]) == ("CSV", "LF", "COMMA")
    assert job["createdById"] == "005000000000001AAA"
    dt.datetime.strptime(job["createdDate"], "%Y-%m-%dT%H:%M:%S.%f%z")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"object": "Nope__c", "operation": "insert"},
            "INVALIDJOB",
            "Unable to find object: Nope__c",
        ),
        (
            {"object": OBJECT, "operation": "hardDelete"},
            "FEATURENOTENABLED",
            "hardDelete operation",
        ),
        ({"object": OBJECT, "operation": "Insert"}, "API_ERROR", "'Insert' supplied for property"),
        ({"object": OBJECT}, "API_ERROR", "Invalid value: '' supplied for property: 'operation'"),
        ({"object": OBJECT, "operation": "upsert"}, "INVALIDJOB", "External ID was blank"),
        (
            {"object": OBJECT, "operation": "upsert", "externalIdFieldName": "Name"},
            "INVALIDJOB",
            "Field name provided, Name does not match an External ID for Product_Property__c",
        ),
        (
            {"object": OBJECT, "operation": "upsert", "externalIdFieldName": "Nope__c"},
            "INVALIDJOB",
            "does not match an External ID",
        ),
        ({**UPSERT, "contentType": "JSON"}, "API_ERROR", "'JSON' supplied for property: 'content"),
        ({**UPSERT, "columnDelimiter": "COLON"}, "API_ERROR", "property: 'columnDelimiter'"),
        ({**UPSERT, "lineEnding": "CR"}, "API_ERROR", "property: 'lineEnding'"),
        ({**UPSERT, "externalIdField": KEY}, "JSON_PARSER_ERROR", "externalIdField"),
    ],
)
def test_create_rejects_bad_requests(
    jobs: IngestJobs, body: dict[str, Any], code: str, message: str
) -> None:
    error = api_error(jobs.create, body, api_version="59.0", user_id="005000000000001AAA")
    assert (error.status, error.error_code) == (400, code)
    assert message in error.message
    assert jobs.list()["records"] == []


def test_upsert_accepts_any_external_id_field_in_any_case(jobs: IngestJobs) -> None:
    job_id = open_job(jobs, **{**UPSERT, "externalIdFieldName": "snappt_property_id__c"})
    assert jobs.info(job_id)["externalIdFieldName"] == "Snappt_Property_ID__c"


# -- lifecycle ----------------------------------------------------------------------------------


def test_instant_job_completes_when_closed(jobs: IngestJobs) -> None:
    job_id = open_job(jobs)
    jobs.upload(job_id, f"{KEY},Name\nk1,One\nk2,Two\n".encode())
    assert jobs.info(job_id)["state"] == "Open"
    assert jobs.set_state(job_id, "UploadComplete")["state"] == "UploadComplete"
    info = jobs.info(job_id)
    assert info["state"] == "JobComplete"
    assert info["jobType"] == "V2Ingest"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"], info["retries"]) == (
        2,
        0,
        0,
    )
    for name in ("totalProcessingTime", "apiActiveProcessingTime", "apexProcessingTime"):
        assert isinstance(info[name], int)
    assert "errorMessage" not in info


def test_invalid_transitions_are_refused(jobs: IngestJobs) -> None:
    job_id = open_job(jobs)
    error = api_error(jobs.delete, job_id)
    assert (error.status, error.error_code) == (400, "INVALIDJOBSTATE")
    jobs.upload(job_id, f"{KEY}\nk1\n".encode())
    error = api_error(jobs.upload, job_id, f"{KEY}\nk2\n".encode())  # one upload per job
    assert (error.status, error.error_code) == (400, "BULK_API_ERROR")
    assert api_error(jobs.set_state, job_id, "JobComplete").error_code == "INVALIDJOBSTATE"
    error = api_error(jobs.set_state, job_id, "Closed")
    assert (error.error_code, error.message) == (
        "API_ERROR",
        "Invalid value: 'Closed' supplied for property: 'state'",
    )
    jobs.set_state(job_id, "UploadComplete")
    error = api_error(jobs.set_state, job_id, "UploadComplete")
    assert (error.error_code, error.message) == (
        "INVALIDJOBSTATE",
        "Closing already Completed Job not allowed",
    )
    error = api_error(jobs.set_state, job_id, "Aborted")
    assert error.message == "Aborting already Completed Job not allowed"
    assert api_error(jobs.upload, job_id, b"x\n").error_code == "INVALIDJOBSTATE"
    jobs.delete(job_id)
    error = api_error(jobs.info, job_id)
    assert (error.status, error.error_code) == (404, "NOT_FOUND")


def test_unknown_job_is_not_found(jobs: IngestJobs) -> None:
    for call in (jobs.info, jobs.delete, jobs.successful_results, jobs.unprocessed_records):
        error = api_error(call, "750000000000000AAA")
        assert (error.status, error.error_code) == (404, "NOT_FOUND")


def test_list_shows_every_job(jobs: IngestJobs) -> None:
    first, second = open_job(jobs), open_job(jobs, object=OBJECT, operation="insert")
    listed = jobs.list()
    assert listed["done"] is True and listed["nextRecordsUrl"] is None
    assert [j["id"] for j in listed["records"]] == [first, second]
    assert listed["records"][0]["jobType"] == "V2Ingest"


def test_a_job_is_found_by_its_15_character_id(jobs: IngestJobs) -> None:
    job_id = open_job(jobs)
    assert jobs.info(job_id[:15])["id"] == job_id


# -- processing and result files --------------------------------------------------------------


def test_upsert_accounts_for_every_row_in_three_files(org: Org, jobs: IngestJobs) -> None:
    [old] = org.insert(OBJECT, [{KEY: "k1", "Name": "Old"}])
    data = (
        f"{KEY},Name,{START}\n"
        "k1,Updated,2026-01-31\n"  # matches an existing record: updated
        'k2,"Comma, quoted",\n'  # new: created
        "k3,Bad date,31/01/2026\n"  # a value of the wrong type: failed
        ",No key,\n"  # no external ID: failed
        "k4,Four,2026-02-01\n"
    )
    job_id = run(jobs, data)
    info = jobs.info(job_id)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete",
        5,
        2,
    )

    success = jobs.successful_results(job_id)
    assert success.splitlines()[0] == f'"sf__Id","sf__Created",{KEY},Name,{START}'
    rows = table(success)[1:]
    assert [(r[1], r[2]) for r in rows] == [("false", "k1"), ("true", "k2"), ("true", "k4")]
    assert rows[0][0] == old.id
    assert rows[1][3] == "Comma, quoted" and '"Comma, quoted"' in success
    assert all(len(r[0]) == 18 for r in rows)
    assert success.splitlines()[1].startswith(f'"{old.id}","false",k1,')

    failed = jobs.failed_results(job_id)
    assert failed.splitlines()[0] == f'"sf__Id","sf__Error",{KEY},Name,{START}'
    rows = table(failed)[1:]
    assert [r[2:] for r in rows] == [["k3", "Bad date", "31/01/2026"], ["", "No key", ""]]
    assert rows[0][1].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    assert rows[0][1].endswith(f":{START} --")
    assert rows[1][1].startswith("MISSING_ARGUMENT:")
    assert [r[0] for r in rows] == ["", ""]

    assert jobs.unprocessed_records(job_id) == f"{KEY},Name,{START}\n"
    assert org.find(OBJECT, KEY, "k1")[0]["Name"] == "Updated"
    assert org.count(OBJECT) == 3


def test_empty_cell_leaves_a_field_unchanged_and_na_clears_it(org: Org, jobs: IngestJobs) -> None:
    org.insert(OBJECT, [{KEY: "k1", "Name": "Keep", START: "2026-01-01", ENABLED: True}])
    job_id = run(jobs, f"{KEY},Name,{START},{ENABLED}\nk1,,#N/A,\n")
    assert jobs.info(job_id)["numberRecordsFailed"] == 0
    [record] = org.find(OBJECT, KEY, "k1")
    assert record["Name"] == "Keep"
    assert record[ENABLED] is True
    assert record[START] is None


def test_insert_update_and_delete(org: Org, jobs: IngestJobs) -> None:
    inserted = run(jobs, "Name\nA\nB\n", object=OBJECT, operation="insert")
    ids = [r[0] for r in table(jobs.successful_results(inserted))[1:]]
    assert [r[1] for r in table(jobs.successful_results(inserted))[1:]] == ["true", "true"]

    missing = "a0X8c0000009zzzAAA"
    data = f"Id,Name\n{ids[0]},A2\n{missing},Ghost\n"
    updated = run(jobs, data, object=OBJECT, operation="update")
    assert table(jobs.successful_results(updated))[1:] == [[ids[0], "false", ids[0], "A2"]]
    [failure] = table(jobs.failed_results(updated))[1:]
    assert failure[0] == missing  # the row's own Id, from API 53.0 (§8.5)
    assert failure[1].startswith("INVALID_CROSS_REFERENCE_KEY:")

    deleted = run(jobs, f"Id\n{ids[1]}\n", object=OBJECT, operation="delete")
    assert table(jobs.successful_results(deleted))[1:] == [[ids[1], "false", ids[1]]]
    assert org.get(OBJECT, ids[1]) is None and org.get(OBJECT, ids[0]) is not None


def test_crlf_jobs_read_crlf_and_answer_in_crlf(jobs: IngestJobs) -> None:
    job_id = run(
        jobs, f'{KEY},Name\r\nk1,One\r\nk2,"Two\r\nlines"\r\n', **UPSERT, lineEnding="CRLF"
    )
    assert jobs.info(job_id)["numberRecordsProcessed"] == 2
    success = jobs.successful_results(job_id)
    assert success.startswith(f'"sf__Id","sf__Created",{KEY},Name\r\n')
    assert table(success)[2][3] == "Two\r\nlines"


@pytest.mark.parametrize(("setting", "data"), [("LF", "a,b\r\n1,2\r\n"), ("CRLF", "a,b\n1,2\n")])
def test_a_line_ending_other_than_the_jobs_fails_it(
    jobs: IngestJobs, setting: str, data: str
) -> None:
    job_id = run(jobs, data, **UPSERT, lineEnding=setting)
    info = jobs.info(job_id)
    assert info["state"] == "Failed"
    assert info["errorMessage"] == (
        f"ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is "
        f"{setting}"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (f'{KEY},Name\nk1,"ab"c\n', UNESCAPED_QUOTE),
        (f'{KEY},Name\nk1, "ab"\n', UNESCAPED_QUOTE),  # a space before a quote (§8.6)
        (f'\ufeff"{KEY}",Name\nk1,ab\n', UNESCAPED_QUOTE),  # a byte-order mark
        (f'{KEY},Name\nk1,"never closed\n', "InvalidBatch : Failed to parse CSV."),
        (f"{KEY},Name\nk1,a,extra\n", "Row 2 has 3 columns; the header has 2"),
        (f"{KEY},Foo__c\nk1,a\n", "InvalidBatch : Field name not found : Foo__c"),
        (f"{KEY},name,Name\nk1,a,b\n", "InvalidBatch : Duplicate field name : Name"),
    ],
)
def test_an_unreadable_upload_fails_the_job_with_every_row_unprocessed(
    org: Org, jobs: IngestJobs, data: str, message: str
) -> None:
    job_id = run(jobs, data)
    info = jobs.info(job_id)
    assert info["state"] == "Failed"
    assert message in info["errorMessage"]
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (0, 0)
    assert len(table(jobs.unprocessed_records(job_id))) == 2  # header and the one row
    assert table(jobs.successful_results(job_id))[1:] == []
    assert org.count(OBJECT) == 0


def test_closing_a_job_without_data_fails_it(jobs: IngestJobs) -> None:
    job_id = open_job(jobs)
    jobs.set_state(job_id, "UploadComplete")
    assert jobs.info(job_id)["state"] == "Failed"
    assert jobs.unprocessed_records(job_id) == ""


@pytest.mark.parametrize(("name", "sep"), [("PIPE", "|"), ("TAB", "\t"), ("SEMICOLON", ";")])
def test_other_column_delimiters(jobs: IngestJobs, name: str, sep: str) -> None:
    job_id = run(jobs, f"{KEY}{sep}Name\nk1{sep}a,b\n", **UPSERT, columnDelimiter=name)
    success = jobs.successful_results(job_id)
    assert success.splitlines()[0] == f'"sf__Id"{sep}"sf__Created"{sep}{KEY}{sep}Name'
    assert success.splitlines()[1].endswith(f'{sep}"true"{sep}k1{sep}a,b')


def test_relationship_columns_set_lookups(org: Org, jobs: IngestJobs) -> None:
    [parent] = org.insert("Property__c", [{"Name": "P"}])
    data = f"{KEY},Property__r.Id\nk1,{parent.id}\n"
    job_id = run(jobs, data)
    assert jobs.info(job_id)["numberRecordsFailed"] == 0
    assert org.find(OBJECT, KEY, "k1")[0]["Property__c"] == parent.id
    bad = run(jobs, f"{KEY},Property__r.Name\nk2,P\n")
    assert jobs.info(bad)["errorMessage"] == (
        "InvalidBatch : Field name not found : Property__r.Name"
    )


# -- abort and realistic timing -----------------------------------------------------------------


def rows_csv(count: int, start: int = 0) -> bytes:
    lines = [f"{KEY},Name"] + [f"k{i},Name {i}" for i in range(start, start + count)]
    return ("\n".join(lines) + "\n").encode()


def test_aborting_an_open_job_leaves_every_row_unprocessed(org: Org, jobs: IngestJobs) -> None:
    job_id = open_job(jobs)
    jobs.upload(job_id, rows_csv(3))
    assert jobs.set_state(job_id, "Aborted")["state"] == "Aborted"
    assert jobs.info(job_id)["state"] == "Aborted"
    assert table(jobs.unprocessed_records(job_id)) == [[KEY, "Name"]] + [
        [f"k{i}", f"Name {i}"] for i in range(3)
    ]
    assert jobs.successful_results(job_id) == f'"sf__Id","sf__Created",{KEY},Name\n'
    assert org.count(OBJECT) == 0
    jobs.delete(job_id)


def test_realistic_job_advances_only_with_the_clock(org: Org) -> None:
    clock = FakeClock()
    jobs = IngestJobs(org, realistic=True, seconds_per_batch=2.0, clock=clock)
    job_id = run(jobs, rows_csv(25_000))
    for _ in range(3):  # polling alone moves nothing
        assert jobs.info(job_id)["state"] == "UploadComplete"
    clock.now += 2.0
    info = jobs.info(job_id)
    assert (info["state"], info["numberRecordsProcessed"]) == ("InProgress", 0)
    clock.now += 2.0
    assert jobs.info(job_id)["numberRecordsProcessed"] == 10_000
    assert api_error(jobs.delete, job_id).error_code == "INVALIDJOBSTATE"
    assert len(table(jobs.unprocessed_records(job_id))) == 15_001
    clock.now += 3.9
    assert jobs.info(job_id)["numberRecordsProcessed"] == 20_000
    clock.now += 0.1
    info = jobs.info(job_id)
    assert (info["state"], info["numberRecordsProcessed"]) == ("JobComplete", 25_000)
    assert org.count(OBJECT) == 25_000


def test_aborting_a_running_job_leaves_the_rest_unprocessed(org: Org) -> None:
    clock = FakeClock()
    jobs = IngestJobs(org, realistic=True, seconds_per_batch=1.0, clock=clock)
    job_id = run(jobs, rows_csv(25_000))
    clock.now += 2.5  # queued for one second, then one batch
    assert jobs.set_state(job_id, "Aborted")["state"] == "Aborted"
    clock.now += 100
    info = jobs.info(job_id)
    assert (info["state"], info["numberRecordsProcessed"]) == ("Aborted", 10_000)
    assert len(table(jobs.successful_results(job_id))) == 10_001
    unprocessed = table(jobs.unprocessed_records(job_id))
    assert unprocessed[0] == [KEY, "Name"]
    assert unprocessed[1] == ["k10000", "Name 10000"] and len(unprocessed) == 15_001
    assert org.count(OBJECT) == 10_000


def test_hundred_thousand_row_upsert_accounts_for_every_row(org: Org, jobs: IngestJobs) -> None:
    org.insert(OBJECT, [{KEY: f"k{i}", "Name": "old"} for i in range(0, 100_000, 1000)])
    job_id = run(jobs, rows_csv(100_000))
    info = jobs.info(job_id)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete",
        100_000,
        0,
    )
    rows = table(jobs.successful_results(job_id))[1:]
    assert [r[2] for r in rows] == [f"k{i}" for i in range(100_000)]
    assert sum(r[1] == "false" for r in rows) == 100
    assert jobs.failed_results(job_id) == f'"sf__Id","sf__Error",{KEY},Name\n'
    assert jobs.unprocessed_records(job_id) == f"{KEY},Name\n"
    assert org.count(OBJECT) == 100_000


# -- sf__Error ----------------------------------------------------------------------------------


def test_error_text_follows_the_bulk_format() -> None:
    missing = RecordError(
        "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ("Name",)
    )
    assert error_text([missing]) == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    )
    lock = RecordError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
    assert (
        error_text([lock])
        == "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"
    )
    assert error_text([missing, lock]) == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name -- "
        "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"
    )
