"""Bulk API 2.0 CSV on the server side: reading an upload strictly, writing the result files.

Parsing follows wire spec §8.6: the job's delimiter and line ending, values not trimmed, a quote
only as the first character of a quoted value (so a space or a byte-order mark before one is an
error), and the per-field, per-record and per-header limits. A rejected upload raises
``CsvRejected`` carrying the job ``errorMessage`` Salesforce would show (§8.4).

Result files (§8.5) quote the ``sf__`` header names and cells always and the original cells only
as needed, in the job's delimiter and line ending.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

DELIMITERS = {
    "COMMA": ",",
    "BACKQUOTE": "`",
    "CARET": "^",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}

MAX_FIELD_CHARS = 32_000
MAX_RECORD_CHARS = 400_000
MAX_FIELDS = 5_000

_PARSE = "InvalidBatch : Failed to parse CSV."
UNESCAPED_QUOTE = f"{_PARSE} Found unescaped quote. A value with quote should be within a quote"
_QUOTED = re.compile(r'"[^"]*(?:""[^"]*)*"')


class CsvRejected(Exception):
    """The upload cannot be read; ``message`` is the job's errorMessage."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse(data: bytes, *, delimiter: str, line_ending: str) -> tuple[list[str], list[list[str]]]:
    """The header and the records of an upload (blank lines skipped), or CsvRejected."""
    _check_line_ending(data, line_ending)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvRejected(f"{_PARSE} Invalid UTF-8 at byte {exc.start}") from exc
    sep = DELIMITERS[delimiter]
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True))
    except csv.Error as exc:
        raise CsvRejected(_reason(str(exc))) from exc
    if '"' in text:
        _check_quotes(text, sep)
    table = [row for row in table if row]
    if not table:
        raise CsvRejected("InvalidBatch : Records not found")
    header, rows = table[0], table[1:]
    if len(header) > MAX_FIELDS:
        raise CsvRejected(f"{_PARSE} {len(header)} fields in the header; at most {MAX_FIELDS:,}")
    width = len(header)
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            raise CsvRejected(
                f"{_PARSE} Row {number} has {len(row)} columns; the header has {width}"
            )
        if max(map(len, row)) > MAX_FIELD_CHARS:
            raise CsvRejected(
                f"{_PARSE} Row {number} has a value over {MAX_FIELD_CHARS:,} characters"
            )
        if sum(map(len, row)) > MAX_RECORD_CHARS:
            raise CsvRejected(f"{_PARSE} Row {number} is over {MAX_RECORD_CHARS:,} characters")
    return header, rows


def _check_line_ending(data: bytes, line_ending: str) -> None:
    # Salesforce compares the bytes with the job's setting; quoted newlines must match it too.
    crlf = data.count(b"\r\n")
    if crlf if line_ending == "LF" else crlf != data.count(b"\n"):
        raise CsvRejected(
            "ClientInputError : LineEnding is invalid on user data. "
            f"Current LineEnding setting is {line_ending}"
        )


def _reason(detail: str) -> str:
    if "expected after" in detail:
        return UNESCAPED_QUOTE
    if "unexpected end of data" in detail:
        return f"{_PARSE} Found a quoted value that is never closed"
    if "field larger than field limit" in detail:
        return f"{_PARSE} Found a value over {MAX_FIELD_CHARS:,} characters"
    return f"{_PARSE} {detail}"


def _check_quotes(text: str, sep: str) -> None:
    """Reject a quote that does not open a value (the csv module reads it as a literal)."""
    starts = (sep, "\n", "\r")
    for match in _QUOTED.finditer(text):
        at = match.start()
        if at and text[at - 1] not in starts:
            raise CsvRejected(UNESCAPED_QUOTE)


def render(
    marked: Sequence[str],
    header: Sequence[str],
    rows: Iterable[tuple[Sequence[str], Sequence[str]]],
    *,
    delimiter: str,
    line_ending: str,
) -> str:
    """A result file: ``marked`` columns always quoted, then ``header``; rows pair the two."""
    sep, end = DELIMITERS[delimiter], LINE_ENDINGS[line_ending]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator=end, quoting=csv.QUOTE_MINIMAL)

    def quoted(cells: Sequence[str]) -> str:
        return "".join('"' + cell.replace('"', '""') + '"' + sep for cell in cells)

    out.write(quoted(marked))
    writer.writerow(header)
    for marks, cells in rows:
        out.write(quoted(marks))
        writer.writerow(cells)
    return out.getvalue()
