"""Destinations trueup keeps true, and ``open_destination`` to build the one a config names."""

from __future__ import annotations

from typing import assert_never

from trueup.config import (
    CsvDestinationConfig,
    LoadedConfig,
    SalesforceDestinationConfig,
    SqlDestinationConfig,
)
from trueup.destinations.base import Destination, Operation

__all__ = ["open_destination"]


def open_destination(loaded: LoadedConfig) -> Destination:
    """The destination of ``loaded``; relative paths resolve against the config file's folder."""
    config = loaded.config
    destination = config.destination
    base_dir = loaded.path.parent
    # Imported on use: SQLAlchemy and DuckDB stay unloaded for commands that never open one.
    if isinstance(destination, SqlDestinationConfig):
        from trueup.destinations.sql import SqlDestination

        return SqlDestination(destination, key_field=config.key_field, base_dir=base_dir)
    if isinstance(destination, CsvDestinationConfig):
        from trueup.destinations.csv import CsvDestination

        return CsvDestination(
            destination,
            key_field=config.key_field,
            base_dir=base_dir,
            fields=list(config.mapping.values()),
        )
    if isinstance(destination, SalesforceDestinationConfig):
        from trueup.destinations.salesforce.destination import SalesforceDestination

        return SalesforceDestination(
            destination,
            key_field=config.key_field,
            fields=list(config.mapping.values()),
            base_dir=base_dir,
            config_file=str(loaded.path),
            operation=Operation(config.operation),
        )
    assert_never(destination)
