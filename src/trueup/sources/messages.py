"""One-line error text from driver exceptions, so every SourceError reads as a single clear line."""

from __future__ import annotations


def one_line(exc: BaseException, *, secret: str | None = None) -> str:
    """The first non-empty line of a driver error, with ``secret`` (e.g. a password) masked."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the DBAPI error; its own text is noisier
    text = str(orig if isinstance(orig, BaseException) else exc)
    if secret:
        text = text.replace(secret, "***")
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
