"""Export: a plan's records as Data Loader-compatible CSV batch files, plus ``manifest.json``.

For teams that must load by hand. The files hold exactly what apply would send (creates and
updates as upserts on the key field, with every mapped field), in key order, one file per batch,
named with the operation and the record range: ``upsert-00001-00050.csv``, ... A plan with a
``delete`` action (none yet) gets separate ``delete-…`` files holding only the key. Invalid and
missing-in-source records are not exported; the manifest counts them.

Format (docs/export.md): UTF-8 without a byte-order mark, RFC 4180 (CRLF line ends, a cell quoted
when it holds a comma, a quote or a line break), a header of API field names with the key first,
booleans ``true``/``false``, dates ``YYYY-MM-DD``, datetimes ``YYYY-MM-DDTHH:MM:SS.sssZ``, null as
an empty cell. Data Loader clears a field from an empty cell only with its "Insert null values"
setting on; the manifest counts the updates that need it.

Every file is written to a hidden temporary file and renamed; the manifest is written last, so a
directory with a manifest holds a complete export. The export writes only into an empty directory,
or with ``force`` replaces a previous export, removing only the files it owns (its CSV names, the
manifest and its temporary files).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from trueup.csv_cells import CellStyle, csv_cell
from trueup.diff import BEFORE, Action
from trueup.errors import PlanError
from trueup.plan import Plan
from trueup.progress import ProgressCallback, ProgressEvent, no_progress

FORMAT = "trueup.export/1"
MANIFEST = "manifest.json"
MAX_BATCH_SIZE = 10_000
NULLS_NOTE = (
    "An empty cell is a null. Data Loader skips empty cells unless its 'Insert null values' "
    "setting is on: turn it on, or the updates that clear a field leave the old value."
)
_TEMP_PREFIX = ".trueup-export-"
_OWNED = re.compile(
    rf"^(?:(?:upsert|delete)-\d{{5,}}-\d{{5,}}\.csv|{re.escape(MANIFEST)}"
    rf"|{re.escape(_TEMP_PREFIX)}.*\.tmp)$"
)


class ExportOperation(StrEnum):
    """The Data Loader operation a file is loaded with."""

    UPSERT = "upsert"  # creates and updates, matched on the key field (an External ID)
    DELETE = "delete"  # the key only


@dataclass(frozen=True)
class ExportFile:
    """One written CSV file: its record range (1-based, per operation) and checksum."""

    name: str
    operation: ExportOperation
    first_record: int
    last_record: int
    rows: int
    first_key: str
    last_key: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """The file's entry in the manifest."""
        return {
            "name": self.name,
            "operation": self.operation.value,
            "first_record": self.first_record,
            "last_record": self.last_record,
            "rows": self.rows,
            "first_key": self.first_key,
            "last_key": self.last_key,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class ExportManifest:
    """What an export wrote and from which plan; saved as ``manifest.json``."""

    directory: Path
    created_at: dt.datetime
    plan_fingerprint: str
    config_fingerprint: str
    destination: str
    destination_fingerprint: str
    key_field: str
    columns: tuple[str, ...]
    batch_size: int
    counts: Mapping[Action, int]
    clearing_updates: int
    files: tuple[ExportFile, ...]

    @property
    def records(self) -> int:
        """Records written, over every file."""
        return sum(f.rows for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (format ``trueup.export/1``)."""
        return {
            "format": FORMAT,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "plan_fingerprint": self.plan_fingerprint,
            "config_fingerprint": self.config_fingerprint,
            "destination": self.destination,
            "destination_fingerprint": self.destination_fingerprint,
            "key_field": self.key_field,
            "operation": ExportOperation.UPSERT.value,
            "columns": list(self.columns),
            "encoding": "UTF-8",
            "batch_size": self.batch_size,
            "counts": {a.value: n for a, n in self.counts.items()},
            "records": self.records,
            "invalid_not_exported": self.counts.get(Action.INVALID, 0),
            "updates_clearing_fields": self.clearing_updates,
            "nulls": NULLS_NOTE,
            "files": [f.to_json() for f in self.files],
        }


def export_plan(
    plan: Plan,
    directory: Path,
    *,
    batch_size: int,
    force: bool = False,
    progress: ProgressCallback = no_progress,
) -> ExportManifest:
    """Write the plan's records into ``directory`` as CSV batch files and a manifest.

    PlanError when the directory holds anything and ``force`` is not set, or cannot be written.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE} (got {batch_size})")
    _prepare(directory, force=force)
    parts = [(ExportOperation.UPSERT, plan.writes())]
    deletes = tuple(a for a in Action if a.value == ExportOperation.DELETE.value)
    if deletes:
        doomed = plan.rows(*deletes).select(["key"])
        parts.append((ExportOperation.DELETE, doomed.rename_columns([plan.key_field])))
    total = sum(table.num_rows for _, table in parts)
    progress(ProgressEvent("export", 0, total))
    files: list[ExportFile] = []
    done = 0
    for operation, table in parts:
        ordered = table.take(pc.sort_indices(table, sort_keys=[(plan.key_field, "ascending")]))
        width = max(5, len(str(ordered.num_rows)))
        for start in range(0, ordered.num_rows, batch_size):
            chunk = ordered.slice(start, batch_size)
            files.append(_write_file(directory, operation, chunk, start + 1, width))
            done += chunk.num_rows
            progress(ProgressEvent("export", done, total))
    manifest = ExportManifest(
        directory=directory,
        created_at=dt.datetime.now(dt.UTC),
        plan_fingerprint=plan.fingerprint,
        config_fingerprint=plan.config_fingerprint,
        destination=plan.destination,
        destination_fingerprint=plan.destination_fingerprint,
        key_field=plan.key_field,
        columns=(plan.key_field, *plan.fields),
        batch_size=batch_size,
        counts=dict(plan.counts),
        clearing_updates=_clearing_updates(plan),
        files=tuple(files),
    )
    text = json.dumps(manifest.to_json(), indent=1) + "\n"
    _write_atomic(directory / MANIFEST, text.encode("utf-8"))
    return manifest


def _write_file(
    directory: Path, operation: ExportOperation, chunk: pa.Table, first: int, width: int
) -> ExportFile:
    """Write one batch file (``first`` is its first record's 1-based position)."""
    last = first + chunk.num_rows - 1
    name = f"{operation.value}-{first:0{width}d}-{last:0{width}d}.csv"
    body = _csv_bytes(chunk, name)
    _write_atomic(directory / name, body)
    keys = chunk.column(0)
    return ExportFile(
        name=name,
        operation=operation,
        first_record=first,
        last_record=last,
        rows=chunk.num_rows,
        first_key=str(keys[0].as_py()),
        last_key=str(keys[-1].as_py()),
        sha256=hashlib.sha256(body).hexdigest(),
    )


def owns(name: str) -> bool:
    """Whether a file name is one an export writes (and ``force`` may remove)."""
    return _OWNED.match(name) is not None


def _prepare(directory: Path, *, force: bool) -> None:
    """Make sure ``directory`` exists and is empty, or (``force``) holds no file of ours."""
    try:
        if not directory.exists():
            directory.mkdir(parents=True)
            return
        if not directory.is_dir():
            raise PlanError(f"{directory}: exists and is not a directory")
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        if entries and not force:
            raise PlanError(
                f"{directory} is not empty ({len(entries)} entries); choose an empty directory, "
                "or pass --force to replace the export in it (only its own files are removed)"
            )
        # the manifest first: a directory without one never passes for a complete export
        owned = [e for e in entries if owns(e.name) and not e.is_dir(follow_symlinks=False)]
        for entry in sorted(owned, key=lambda e: e.name != MANIFEST):
            os.unlink(entry.path)
    except OSError as exc:
        raise PlanError(f"{directory}: cannot prepare the export: {exc.strerror}") from exc


def _csv_bytes(records: pa.Table, name: str) -> bytes:
    """The file's content: header, then one RFC 4180 line (CRLF) per record, UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(records.column_names)
    columns = [column.to_pylist() for column in records.columns]
    try:
        for values in zip(*columns, strict=True):
            writer.writerow([csv_cell(v, CellStyle.DATA_LOADER) for v in values])
    except ValueError as exc:
        raise PlanError(f"{name}: {exc}") from None
    return buffer.getvalue().encode("utf-8")


def _write_atomic(path: Path, body: bytes) -> None:
    """Write ``body`` to a hidden temporary file beside ``path``, then rename it into place."""
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX, suffix=".tmp")
    except OSError as exc:
        raise PlanError(f"{path.parent}: cannot write the export: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise PlanError(f"{path}: cannot write: {exc.strerror}") from exc
        raise


def _clearing_updates(plan: Plan) -> int:
    """Updates that set some field from a value to null (Data Loader's 'Insert null values')."""
    rows = plan.rows(Action.UPDATE)
    if rows.num_rows == 0 or not plan.fields:
        return 0
    clears = [pc.and_(pc.is_null(rows[f]), pc.is_valid(rows[BEFORE + f])) for f in plan.fields]
    mask = clears[0]
    for more in clears[1:]:
        mask = pc.or_(mask, more)
    return int(rows.filter(mask).num_rows)
