"""The Model interface: how the rows a destination should hold are computed from a source."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator

import pyarrow as pa

from trueup.errors import SourceError
from trueup.sources.base import Source


class Model(ABC):
    """Computes the model's rows, one per destination record, from a source."""

    @abstractmethod
    def read(self, source: Source) -> pa.RecordBatchReader:
        """Stream the model's rows with a schema that is fixed before the first batch."""

    def sql(self) -> str | None:
        """The model as one SQL query over the source's tables, when it is one (else None)."""
        return None


def as_reader(batches: Iterator[pa.RecordBatch], *, what: str) -> pa.RecordBatchReader:
    """``batches`` as a RecordBatchReader; a reader passes through, an iterator is peeked."""
    if isinstance(batches, pa.RecordBatchReader):
        return batches
    first = next(batches, None)
    if first is None:
        raise SourceError(f"{what} returned no batches, so its columns are unknown")
    return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
