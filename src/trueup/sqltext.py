"""Quoting for the SQL text trueup generates: identifiers and literals never enter SQL unescaped."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (PostgreSQL, DuckDB, SQLite all accept this form)."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_qualified(name: str) -> str:
    """A possibly schema-qualified name (``schema.table``), each part quoted."""
    return ".".join(quote_ident(part) for part in name.split("."))


def quote_literal(value: str) -> str:
    """A single-quoted SQL string literal."""
    if "\x00" in value:
        raise ValueError("literal contains a NUL byte")
    return "'" + value.replace("'", "''") + "'"
