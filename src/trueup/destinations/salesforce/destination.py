"""A Salesforce object as a destination: described live, read with SOQL, upserted by External ID.

- ``describe`` reads the object's describe once and runs the pre-flight on the mapped fields (and
  on the types of the model columns feeding them, once ``expect_model_columns`` has named them),
  so every problem with the mapping is reported at once, before anything is read or written.
- ``snapshot`` reads ``SELECT Id, <fields> FROM <object>`` in chunks of ``snapshot_chunk_size``
  records by Id (``WHERE Id > '<last Id>' ORDER BY Id LIMIT n``, snapshot.py), so no query cursor
  lives long; names are checked against describe, never taken from anywhere else. It follows
  every page and returns canonical Arrow types: dates as date32, dateTimes as timestamp[us, UTC],
  checkboxes as bool. A record without a key value cannot be matched to the source: it is left
  out and counted in ``unkeyed``.
- ``write`` turns the batch into JSON values (dates ``YYYY-MM-DD``, dateTimes ``...T...sssZ``, null
  clears a field) and hands them to the write path's writer; a key that appears twice in a batch
  goes in a later request (or Bulk job), so the second write updates what the first created.
- The write path: REST sObject Collections (``collections``) or Bulk API 2.0 (``bulk``).
  ``write_path: auto`` starts on REST and switches to Bulk when ``prepare_run`` (called by apply
  before the first write) announces more than ``bulk_threshold`` records. On Bulk a write is one
  job of up to 10,000 records, so each job's outcomes are stored before the next job starts;
  records the job failed with a lock or a whole-chunk automation error are then sent through
  REST, which retries locks and bisects chunks (Bulk's 200-record trigger chunks cannot shrink).
- The daily API allocation (allowance.py): ``prepare_run`` reads ``/limits`` and refuses a run
  that would eat into ``api_reserve``; every ``write``, and every REST request within it, first
  checks the usage Salesforce reported on the last call and stops once the reserve is reached
  (before a write: nothing of it sent; within one: ``mid_write``, part of it may be saved).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from trueup.config_salesforce import SalesforceDestinationConfig, WritePath
from trueup.destinations.base import (
    BatchResult,
    Capabilities,
    Destination,
    Operation,
    OutcomeStatus,
    RecordOutcome,
    WriteBatch,
)
from trueup.destinations.salesforce.allowance import (
    Allowance,
    estimate_calls,
    refuse_run,
    stop_at_reserve,
)
from trueup.destinations.salesforce.bulk import JOB_RECORDS, BulkWriter
from trueup.destinations.salesforce.client import SalesforceClient
from trueup.destinations.salesforce.collections import (
    AUTOMATION_CODES,
    GOVERNOR_LIMIT_MARKERS,
    LOCK_ERROR,
    CollectionsWriter,
)
from trueup.destinations.salesforce.schema import (
    SObjectDescription,
    describe_to_schema,
    preflight,
)
from trueup.destinations.salesforce.snapshot import read_snapshot
from trueup.destinations.salesforce.soql import in_lists, is_record_id
from trueup.errors import ApiAllowanceExhausted, DestinationSchemaError, FatalDestinationError
from trueup.schema import ARROW_TYPES, DestinationSchema, FieldType

NOT_IN_DESTINATION = "NOT_IN_DESTINATION"  # update or delete of a key Salesforce does not hold


class SalesforceDestination(Destination):
    """One Salesforce object, upserted by an External ID field (REST Collections or Bulk 2.0)."""

    def __init__(
        self,
        config: SalesforceDestinationConfig,
        *,
        key_field: str,
        fields: Sequence[str],
        base_dir: Path,
        config_file: str | None = None,
        client: SalesforceClient | None = None,
        operation: Operation = Operation.UPSERT,
    ) -> None:
        self._config = config
        self._operation = operation  # the sync's: the pre-flight checks fields against it
        self._key_field = key_field
        self._fields = tuple(fields)
        self._config_file = config_file
        self.client = client or SalesforceClient(config, base_dir=base_dir)
        self._writer = CollectionsWriter(
            self.client,
            config.object,
            key_field,
            batch_size=config.batch_size,
            concurrency=config.concurrency,
            before_request=partial(self._keep_reserve, mid_write=True),
        )
        self._bulk = BulkWriter(self.client, config.object, key_field)
        # AUTO starts on REST: a destination used without ``prepare_run`` sends small batches.
        self._path = WritePath.BULK if config.write_path is WritePath.BULK else WritePath.REST
        self._description: SObjectDescription | None = None
        self._columns: dict[str, pa.Field] = {}  # the model column feeding each field, when told
        self._checked = False  # the pre-flight passed for the description and columns held
        self.unkeyed = 0  # records of the last snapshot without a key value (not returned)

    @property
    def write_path(self) -> WritePath:
        """The path writes take now: REST or BULK (AUTO is decided by ``prepare_run``)."""
        return self._path

    def prepare_run(self, total_writes: int) -> None:
        """Pick the write path for a run of ``total_writes`` records (``write_path: auto``), then
        refuse the run (ApiAllowanceExhausted) if it would eat into ``api_reserve``."""
        if self._config.write_path is WritePath.AUTO:
            bulk = total_writes > self._config.bulk_threshold
            self._path = WritePath.BULK if bulk else WritePath.REST
        if total_writes <= 0:
            return
        limits = self.client.limits()
        # /limits answered, so its Sforce-Limit-Info header is the fallback.
        allowance = Allowance.from_limits(limits) or Allowance.from_usage(self.client.api_usage)
        if allowance is None:
            raise FatalDestinationError(
                "Salesforce reported no daily API allocation (DailyApiRequests in /limits, or a "
                "Sforce-Limit-Info header), so destination.api_reserve cannot be kept"
            )
        estimate = estimate_calls(
            total_writes,
            path=self._path,
            batch_size=self._config.batch_size,
            by_id=self._operation is Operation.UPDATE,
        )
        refuse_run(
            allowance,
            estimate=estimate,
            reserve=self._config.api_reserve,
            records=total_writes,
            path=self._path,
        )

    @property
    def capabilities(self) -> Capabilities:
        """Every operation; Salesforce trims text and stores '' as null; created is its answer."""
        if self._path is WritePath.BULK:
            per_write = JOB_RECORDS
        else:
            per_write = self._config.batch_size * self._config.concurrency
        return Capabilities(
            max_batch_size=per_write,
            operations=frozenset(Operation),
            trims_text=True,
            empty_text_is_null=True,
            reports_created=True,
            write_size=per_write,
        )

    def expect_model_columns(self, columns: Mapping[str, pa.Field]) -> None:
        """The model column feeding each mapped field: the next ``describe`` checks their types in
        its pre-flight, with the rest of the mapping (compat.ChecksModelColumns)."""
        self._columns = dict(columns)
        self._checked = False

    def describe(self) -> DestinationSchema:
        """The object's fields from Salesforce's describe (read once), after the pre-flight."""
        if self._description is None:
            try:
                raw = self.client.describe(self._config.object)
            except FatalDestinationError as exc:
                if "NOT_FOUND" not in str(exc) and "INVALID_TYPE" not in str(exc):
                    raise
                raise DestinationSchemaError(
                    f"Salesforce has no object {self._config.object} (or this user cannot see it)"
                ) from exc
            self._description = describe_to_schema(raw)
        if not self._checked:
            preflight(
                self._description,
                self._fields,
                self._key_field,
                operation=self._operation,
                columns=self._columns,
                file=self._config_file,
            )
            self._checked = True
        return self._description.schema

    def snapshot(self, fields: Sequence[str]) -> pa.Table:
        """Every record of the object that has a key value: ``fields``, in canonical types."""
        schema = self.describe()
        specs = [schema.field(name) for name in fields]  # DestinationSchemaError for unknown
        key = schema.field(self._key_field)
        # Names below come from describe, not from the caller: nothing unvalidated enters SOQL.
        selected = list(dict.fromkeys([key.name, *(s.name for s in specs)]))
        read = read_snapshot(
            self.client,
            schema.object_name,
            key.name,
            selected,
            chunk_size=self._config.snapshot_chunk_size,
        )
        self.unkeyed = read.unkeyed
        arrays = [_arrow(read.columns[s.name], s.type) for s in specs]
        return pa.Table.from_arrays(arrays, names=[s.name for s in specs])

    def write(self, batch: WriteBatch) -> BatchResult:
        """Write the batch by its key field; one outcome per record, in order.

        Update and delete find each record's Id by its key first (one query per 200 keys); a
        key Salesforce does not hold fails with NOT_IN_DESTINATION, unsent. Deletes always go
        through REST collections.
        """
        schema = self.describe()
        key = batch.key_field
        for name in batch.records.column_names:
            schema.field(name)
        self._keep_reserve(mid_write=False)
        records = [_json_record(row) for row in batch.records.to_pylist()]
        outcomes: list[RecordOutcome | None] = [None] * len(records)
        keyed: list[int] = []
        for index, record in enumerate(records):
            value = record.get(key)
            if value is None or value == "":
                outcomes[index] = RecordOutcome(
                    "", OutcomeStatus.FAILED, "MISSING_KEY", f"record has no {key}", (key,)
                )
            else:
                keyed.append(index)
        if batch.operation in (Operation.UPDATE, Operation.DELETE):
            keyed = self._with_ids(records, keyed, outcomes, schema.object_name, key)
        write = self._writer_for(batch.operation)
        places: list[int] = []
        try:
            for places in _rounds(records, keyed, key):
                answers = write([records[i] for i in places])
                for place, answer in zip(places, answers, strict=True):
                    outcomes[place] = answer
        except ApiAllowanceExhausted as exc:
            raise _with_partial(exc, outcomes, places) from exc
        return BatchResult(tuple(o for o in outcomes if o is not None))

    def _writer_for(
        self, operation: Operation
    ) -> Callable[[list[dict[str, Any]]], list[RecordOutcome]]:
        if self._path is WritePath.BULK and operation is not Operation.DELETE:
            return partial(self._bulk_write, operation=operation)
        return partial(self._writer.write, operation=operation)

    def _with_ids(
        self,
        records: list[dict[str, Any]],
        keyed: list[int],
        outcomes: list[RecordOutcome | None],
        sobject: str,
        key: str,
    ) -> list[int]:
        """Put each record's ``Id`` in it, found by its key; fail the keys Salesforce lacks."""
        ids = self._ids_by_key([str(records[i][key]) for i in keyed], sobject, key)
        found = []
        for index in keyed:
            value = str(records[index][key])
            record_id = ids.get(value.casefold())
            if record_id is None:
                outcomes[index] = RecordOutcome(
                    value,
                    OutcomeStatus.FAILED,
                    NOT_IN_DESTINATION,
                    f"no {sobject} with {key} = {value!r}",
                    (key,),
                )
                continue
            records[index]["Id"] = record_id
            found.append(index)
        return found

    def _ids_by_key(self, keys: Sequence[str], sobject: str, key: str) -> dict[str, str]:
        """Record Id by casefolded key value (external IDs match without regard to case)."""
        ids: dict[str, str] = {}
        for values in in_lists(sorted(set(keys))):
            self._keep_reserve(mid_write=False)
            # sobject and key are names from describe; the values are escaped literals
            soql = f"SELECT Id, {key} FROM {sobject} WHERE {key} IN {values}"
            for record in self.client.query(soql):
                record_id, value = record.get("Id"), record.get(key)
                if isinstance(record_id, str) and is_record_id(record_id) and value is not None:
                    ids[str(value).casefold()] = record_id
        return ids

    def _keep_reserve(self, *, mid_write: bool) -> None:
        """Stop once the usage reported by the last answered call reaches ``api_reserve``."""
        allowance = Allowance.from_usage(self.client.api_usage)
        stop_at_reserve(allowance, reserve=self._config.api_reserve, mid_write=mid_write)

    def _bulk_write(
        self, records: list[dict[str, Any]], *, operation: Operation
    ) -> list[RecordOutcome]:
        """One Bulk job; then the records that failed for a passing reason go through REST.

        Bulk runs triggers in chunks of 200 it chooses itself, so a flow or trigger that hits a
        governor limit fails every record of a chunk however often the job is resent; a locked
        row may be free a moment later. The REST writer retries locks and bisects failing
        chunks, so those records land unless they fail alone. No saved record is sent again.
        """
        outcomes = self._bulk.write(records, operation)
        again = [i for i, outcome in enumerate(outcomes) if _passing_failure(outcome)]
        if again:
            try:
                answers = self._writer.write([records[i] for i in again], operation)
            except ApiAllowanceExhausted as exc:
                known: list[RecordOutcome | None] = list(outcomes)
                for place in again:
                    known[place] = None
                for place, answer in zip(again, exc.partial or (), strict=False):
                    known[place] = answer
                raise ApiAllowanceExhausted(str(exc), mid_write=True, partial=known) from exc
            for place, answer in zip(again, answers, strict=True):
                outcomes[place] = answer
        return outcomes

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()


def _rounds(records: list[dict[str, Any]], keyed: list[int], key: str) -> list[list[int]]:
    """``keyed`` positions in requests where no key appears twice: Salesforce refuses one key
    twice in a request (DUPLICATE_VALUE), so later repeats wait for a later request, in order.
    External IDs match without regard to case."""
    rounds: list[list[int]] = []
    seen: Counter[str] = Counter()
    for index in keyed:
        folded = str(records[index][key]).casefold()
        if seen[folded] == len(rounds):
            rounds.append([])
        rounds[seen[folded]].append(index)
        seen[folded] += 1
    return rounds


def _with_partial(
    exc: ApiAllowanceExhausted, outcomes: list[RecordOutcome | None], places: list[int]
) -> ApiAllowanceExhausted:
    """The reserve stop of one request round, with every outcome known for the whole batch."""
    known = list(outcomes)
    for place, answer in zip(places, exc.partial or (), strict=False):
        known[place] = answer
    saved = any(o is not None and o.status is not OutcomeStatus.FAILED for o in outcomes)
    return ApiAllowanceExhausted(str(exc), mid_write=exc.mid_write or saved, partial=known)


def _passing_failure(outcome: RecordOutcome) -> bool:
    """Failed for a reason of the moment or of the chunk it was in, not of the record itself."""
    if outcome.status is not OutcomeStatus.FAILED:
        return False
    if outcome.error_code in AUTOMATION_CODES or outcome.error_code == LOCK_ERROR:
        return True
    return any(marker in (outcome.message or "") for marker in GOVERNOR_LIMIT_MARKERS)


# -- values --------------------------------------------------------------------------------------


def _datetime(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value))
    aware = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC)


_FROM_JSON: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.TEXT: str,
    FieldType.BOOLEAN: bool,
    FieldType.DATE: lambda v: dt.date.fromisoformat(str(v)[:10]),
    FieldType.DATETIME: _datetime,
    FieldType.INTEGER: lambda v: int(float(v)) if isinstance(v, str) else int(v),
    FieldType.NUMBER: float,
}


def _arrow(values: list[Any], field_type: FieldType) -> pa.Array:
    """A column of JSON values from a query as its canonical Arrow type."""
    convert = _FROM_JSON[field_type]
    return pa.array(
        [None if v is None else convert(v) for v in values], type=ARROW_TYPES[field_type]
    )


def _json_value(value: Any) -> Any:
    """A canonical value as Salesforce's REST API takes it (wire spec §3.4)."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        utc = aware.astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_record(row: dict[str, Any]) -> dict[str, Any]:
    return {name: _json_value(value) for name, value in row.items()}
