"""An export destination: a directory of CSV batch files, batch-000001.csv, batch-000002.csv, ...

Each write adds one file, written to a hidden temporary file and then renamed, so a reader never
sees half a batch. The header is the batch's columns, key first. Cells: booleans ``true``/``false``,
dates ``YYYY-MM-DD``, datetimes ISO-8601 in UTC with ``Z``, null as an empty cell (so an empty text
cannot be told from null: ``empty_text_is_null``).

The snapshot replays every batch file in number order: later rows win per key, and a column a file
does not have leaves the earlier value. Its values are the strings as written (empty cell → null).

CSV has no schema. ``describe`` reports the key as TEXT (unique, external id), the config's
declared ``fields`` with their types, and every other known field (``fields=``, e.g. the mapping's
destination fields) as TEXT.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from trueup.config import CsvDestinationConfig
from trueup.csv_cells import csv_cell
from trueup.destinations.base import (
    BatchResult,
    Capabilities,
    Destination,
    Operation,
    OutcomeStatus,
    RecordOutcome,
    WriteBatch,
)
from trueup.errors import DestinationSchemaError, FatalDestinationError
from trueup.schema import DestinationSchema, FieldSpec, FieldType

_CAPABILITIES = Capabilities(
    max_batch_size=10_000,
    operations=frozenset({Operation.UPSERT}),
    trims_text=False,
    empty_text_is_null=True,
    reports_created=True,
)
_BATCH_FILE = re.compile(r"^batch-(\d{6,})\.csv$")


class CsvDestination(Destination):
    """A directory of CSV batch files; writing appends a file, the snapshot replays them all."""

    def __init__(
        self,
        config: CsvDestinationConfig,
        *,
        key_field: str,
        base_dir: Path,
        fields: Sequence[str] = (),
    ) -> None:
        folder = Path(config.directory).expanduser()
        self.directory = folder if folder.is_absolute() else (base_dir / folder).resolve()
        self._key = key_field
        specs = {name: FieldSpec(name, FieldType(kind)) for name, kind in config.fields.items()}
        for name in fields:
            specs.setdefault(name, FieldSpec(name, FieldType.TEXT))
        declared = specs.get(key_field, FieldSpec(key_field, FieldType.TEXT))
        specs[key_field] = FieldSpec(
            key_field, declared.type, nullable=False, unique=True, external_id=True
        )
        self._schema = DestinationSchema(object_name=config.directory, fields=specs)
        self._seen_files: list[str] = []
        self._seen_keys: set[str] = set()

    @property
    def capabilities(self) -> Capabilities:
        """Batches up to 10,000; upsert only; an empty cell reads back as null."""
        return _CAPABILITIES

    def describe(self) -> DestinationSchema:
        """The key, the declared field types, and every other known field as TEXT."""
        return self._schema

    def snapshot(self, fields: Sequence[str]) -> pa.Table:
        """The replayed state of every batch file: ``fields`` as strings, one row per key."""
        for name in fields:
            self._schema.field(name)
        state: dict[str, dict[str, str | None]] = {}
        for _, path in self._batch_files():
            for key, row in self._read(path):
                state.setdefault(key, {}).update(row)
        columns = [pa.array([row.get(f) for row in state.values()], pa.string()) for f in fields]
        return pa.Table.from_arrays(columns, names=list(fields))

    def write(self, batch: WriteBatch) -> BatchResult:
        """Write the batch as the next numbered file; CREATED for keys no earlier file held."""
        if batch.operation is not Operation.UPSERT:
            raise FatalDestinationError(
                f"a CSV export only appends upserts (got {batch.operation})"
            )
        records, key = batch.records, batch.key_field
        if key not in records.column_names:
            raise ValueError(f"batch {batch.number} has no key column {key!r}")
        for name in records.column_names:
            self._schema.field(name)
        if records.num_rows == 0:
            return BatchResult()
        seen = self._known_keys()
        columns = [key, *(c for c in records.column_names if c != key)]
        outcomes: list[RecordOutcome] = []

        def rows() -> Iterator[list[str]]:
            for row in _rows(records, columns):
                cells = [_cell(row[c]) for c in columns]
                if not cells[0]:
                    outcomes.append(_missing_key(key))
                    continue
                created = cells[0] not in seen
                seen.add(cells[0])
                status = OutcomeStatus.CREATED if created else OutcomeStatus.UPDATED
                outcomes.append(RecordOutcome(key=cells[0], status=status))
                yield cells

        path = self._write_file(columns, rows())
        if path is not None:
            self._seen_files.append(path.name)
        self._seen_keys = seen
        return BatchResult(tuple(outcomes))

    def close(self) -> None:
        """Nothing to release: every write closes its file."""

    # --- files -----------------------------------------------------------------------------------
    def _batch_files(self) -> list[tuple[int, Path]]:
        """Batch files with their numbers, in number order (999999 before 1000000)."""
        if not self.directory.is_dir():
            return []
        found = [
            (int(match.group(1)), self.directory / entry.name)
            for entry in os.scandir(self.directory)
            if entry.is_file() and (match := _BATCH_FILE.match(entry.name))
        ]
        return sorted(found)

    def _read(self, path: Path) -> Iterator[tuple[str, dict[str, str | None]]]:
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    key = row.get(self._key)
                    if key:  # a short row's missing cells (None) are absent, not null
                        cells = {c: v for c, v in row.items() if c is not None and v is not None}
                        yield key, {c: v or None for c, v in cells.items()}
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise FatalDestinationError(f"cannot read {path}: {exc}") from exc

    def _known_keys(self) -> set[str]:
        """Keys any batch file holds; only files added since the last call are read."""
        names = [path.name for _, path in self._batch_files()]
        if names[: len(self._seen_files)] != self._seen_files:
            self._seen_files, self._seen_keys = [], set()
        for name in names[len(self._seen_files) :]:
            self._seen_keys.update(key for key, _ in self._read(self.directory / name))
            self._seen_files.append(name)
        return set(self._seen_keys)

    def _write_file(self, header: list[str], rows: Iterable[list[str]]) -> Path | None:
        """Write the next batch file atomically; None when every row was refused."""
        files = self._batch_files()
        number = files[-1][0] + 1 if files else 1
        target = self.directory / f"batch-{number:06d}.csv"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".batch-", suffix=".csv.tmp")
        except OSError as exc:
            raise FatalDestinationError(f"cannot write to {self.directory}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(header)
                written = 0
                for cells in rows:
                    writer.writerow(cells)
                    written += 1
                handle.flush()
                os.fsync(handle.fileno())
            if written:
                os.replace(temp, target)
                return target
            os.unlink(temp)
            return None
        except BaseException as exc:
            Path(temp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise FatalDestinationError(f"cannot write {target}: {exc}") from exc
            raise


def _rows(records: pa.Table, columns: list[str]) -> Iterator[dict[str, object]]:
    for part in records.select(columns).to_batches():
        yield from part.to_pylist()


def _missing_key(key: str) -> RecordOutcome:
    return RecordOutcome(
        key="",
        status=OutcomeStatus.FAILED,
        error_code="MISSING_KEY",
        message=f"record has no {key}",
        fields=(key,),
    )


def _cell(value: object) -> str:
    """One CSV cell: ``true``/``false``, ISO dates, UTC datetimes with ``Z``, null as empty."""
    try:
        return csv_cell(value)
    except ValueError as exc:
        raise DestinationSchemaError(str(exc)) from None
