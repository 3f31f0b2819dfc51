"""trueup.yml: pydantic models, ``${ENV}`` expansion and ``load_config(path)``.

Every error is a ConfigError whose message names the file, the dotted path of the field and what was
expected, e.g. ``trueup.yml: destination.batch_size: must be between 1 and 10000 (got 0)``.
Secrets (URLs that may carry passwords) are SecretStr: they never appear in reprs, dumps or logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trueup.config_fields import BatchSize, Identifier, Section, between
from trueup.config_salesforce import SalesforceDestinationConfig as SalesforceDestinationConfig
from trueup.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# --- sources -------------------------------------------------------------------------------------
class PostgresSourceConfig(Section):
    """A PostgreSQL database, by SQLAlchemy-style URL (postgresql://user@host:5432/db)."""

    kind: Literal["postgres"]
    url: SecretStr
    fetch_size: BatchSize = 5000


class DuckDBSourceConfig(Section):
    """A DuckDB database file, opened read-only."""

    kind: Literal["duckdb"]
    path: str


class SQLiteSourceConfig(Section):
    """A SQLite database file."""

    kind: Literal["sqlite"]
    path: str


class FilesSourceConfig(Section):
    """CSV and Parquet files, each exposed as a table: ``tables: {name: path-or-glob}``."""

    kind: Literal["files"]
    tables: dict[Identifier, str] = Field(min_length=1)


SourceConfig = Annotated[
    PostgresSourceConfig | DuckDBSourceConfig | SQLiteSourceConfig | FilesSourceConfig,
    Field(discriminator="kind"),
]


# --- models --------------------------------------------------------------------------------------
class SqlModelConfig(Section):
    """A model that is a query or a table of the source, one row per destination record."""

    kind: Literal["sql"]
    query: str | None = None
    table: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SqlModelConfig:
        if (self.query is None) == (self.table is None):
            raise ValueError("give exactly one of 'query' or 'table'")
        return self


class FeaturesModelConfig(Section):
    """The long→wide features pivot with many-to-one grouping (DESIGN.md §1).

    Output columns: key, member_id, member_name, group_id, is_multi_member, member_count and, per
    product code, ``{code}_enabled``, ``{code}_start_date``, ``{code}_updated_date``.
    """

    kind: Literal["features"]
    records_table: str = "properties"
    features_table: str = "property_features"
    record_id: Identifier = "id"
    group_by: Identifier = "sfdc_id"
    name: Identifier = "name"
    created_at: Identifier = "inserted_at"
    features_record_id: Identifier = "property_id"
    feature_code: Identifier = "feature_code"
    enabled: Identifier = "enabled"
    enabled_at: Identifier = "enabled_at"
    updated_at: Identifier = "updated_at"
    products: list[Identifier] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_products(self) -> FeaturesModelConfig:
        seen = {p for p in self.products if self.products.count(p) > 1}
        if seen:
            raise ValueError(f"products listed twice: {', '.join(sorted(seen))}")
        return self


ModelConfig = Annotated[SqlModelConfig | FeaturesModelConfig, Field(discriminator="kind")]


# --- destinations --------------------------------------------------------------------------------
class SqlDestinationConfig(Section):
    """A table in PostgreSQL (postgresql://), SQLite (sqlite:///file) or DuckDB (duckdb:///file)."""

    kind: Literal["sql"]
    url: SecretStr
    table: str
    db_schema: str | None = Field(default=None, alias="schema")
    batch_size: BatchSize = 500

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CsvDestinationConfig(Section):
    """A directory of CSV batch files; its snapshot replays them in order (export destination)."""

    kind: Literal["csv"]
    directory: str
    batch_size: BatchSize = 200
    fields: dict[str, Literal["text", "boolean", "date", "datetime", "integer", "number"]] = Field(
        default_factory=dict
    )


DestinationConfig = Annotated[
    SqlDestinationConfig | CsvDestinationConfig | SalesforceDestinationConfig,
    Field(discriminator="kind"),
]


# --- guards and store ----------------------------------------------------------------------------
Percent = Annotated[float, AfterValidator(between(0, 100))]


class FieldGuardsConfig(Section):
    """Per-field overrides of the flip and nulls guards (100 turns a guard off for the field)."""

    flip_pct: Percent | None = None
    nulls_pct: Percent | None = None


class GuardsConfig(Section):
    """Limits a plan or a run must stay within (the plan guards are described in guards.py)."""

    # Plan guards: a plan that passes one of these is blocked unless `--allow NAME`.
    flip_pct: Percent = 10.0  # flip: a checkbox flips one way on more of the existing records
    nulls_pct: Percent = 10.0  # nulls: a field's values would become null/default on more
    max_changes: Annotated[int, Field(ge=0)] | None = None  # max_changes: creates+updates+deletes
    max_change_pct: Percent = 50.0  # change_share: updated + deleted, of the destination's records
    source_drop_pct: Percent = 50.0  # source_drop: fewer source rows than the last run, or none
    min_records: Annotated[int, Field(ge=1)] = 20  # flip/nulls/change_share trip only from here
    fields: dict[str, FieldGuardsConfig] = Field(default_factory=dict)

    max_error_rate: Annotated[float, AfterValidator(between(0, 1))] = 0.05
    min_error_sample: Annotated[int, AfterValidator(between(1, 1_000_000))] = 20
    min_accuracy: Annotated[float, AfterValidator(between(0, 100))] = 100.0
    # Records missing in the destination already count against min_accuracy; these optional
    # limits (unset: no limit of their own) let a check tolerate stale values but not absent
    # records, e.g. min_accuracy 99 with max_missing 0.
    max_missing: Annotated[int, Field(ge=0)] | None = None
    max_missing_pct: Annotated[float, AfterValidator(between(0, 100))] | None = None


class StoreConfig(Section):
    """Where runs, outcomes and before-images are kept (sqlite:///file or postgresql://...)."""

    url: SecretStr = SecretStr("sqlite:///.trueup/state.db")


class NotifyConfig(Section):
    """Where the run report goes after every apply (docs/run-report.md).

    ``webhook_url`` is a credential (whoever has it can post): it must come from the environment
    (``${TRUEUP_WEBHOOK_URL}``, or ``${TRUEUP_WEBHOOK_URL:-}`` to make it optional; empty means
    no webhook) and is only ever shown as its scheme and host.
    """

    webhook_url: SecretStr | None = None
    format: Literal["slack", "markdown"] = "slack"  # slack: {"text": report}; markdown: as is
    when: Literal["always", "problems"] = "always"  # problems: not succeeded, failures, guards
    check_after_apply: bool = False  # run a check after apply (reads the destination again)
    timeout: Annotated[float, AfterValidator(between(1, 120))] = 10.0  # seconds, each attempt

    @model_validator(mode="before")
    @classmethod
    def _when_not_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        if isinstance(data, dict) and (True in data or "on" in data):
            raise ValueError("write 'when:' (always | problems), not 'on:'")
        return data

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _webhook_is_http(self) -> NotifyConfig:
        # Checked here, not on the field, so that no error message can quote the URL.
        if self.webhook_url is not None and not _http_url(self.webhook_url.get_secret_value()):
            raise ValueError("webhook_url: must be an https:// (or http://) URL")
        return self


def _http_url(url: str) -> bool:
    """Whether ``url`` is http(s) with a host (and a port that is a number, if any)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when it is not a number from 0 to 65535
        return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0
    except ValueError:
        return False


class Config(Section):
    """A whole trueup.yml."""

    version: Literal[1] = 1
    source: SourceConfig
    model: ModelConfig
    destination: DestinationConfig
    mapping: dict[str, str] = Field(min_length=1)
    key: str
    # What a sync may do: upsert (create and update), update (existing records only) or insert
    # (new records only); delete_missing also deletes destination records missing in the source.
    operation: Literal["upsert", "update", "insert"] = "upsert"
    delete_missing: bool = False
    guards: GuardsConfig = GuardsConfig()
    store: StoreConfig = StoreConfig()
    notify: NotifyConfig = NotifyConfig()

    @field_validator("mapping")
    @classmethod
    def _one_column_per_field(cls, mapping: dict[str, str]) -> dict[str, str]:
        targets = list(mapping.values())
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"two columns map to the same field: {', '.join(twice)}")
        return mapping

    @field_validator("key")
    @classmethod
    def _key_is_mapped(cls, key: str, info: ValidationInfo) -> str:
        mapping = info.data.get("mapping")
        if mapping is not None and key not in mapping:
            raise ValueError(f"must be a mapped model column (mapping has: {', '.join(mapping)})")
        return key

    @field_validator("guards")
    @classmethod
    def _guarded_fields_are_mapped(cls, guards: GuardsConfig, info: ValidationInfo) -> GuardsConfig:
        mapping = info.data.get("mapping") or {}
        unknown = sorted(set(guards.fields) - set(mapping.values()))
        if unknown:
            raise ValueError(
                f"fields: {', '.join(unknown)} not mapped (mapped fields: "
                f"{', '.join(mapping.values())})"
            )
        return guards

    @property
    def key_field(self) -> str:
        """The destination field that holds the key."""
        return self.mapping[self.key]

    def fingerprint(self) -> str:
        """A stable hash of what the config means; URLs enter without their passwords.

        ``notify`` is left out: where the report goes does not change what a plan does."""
        data = _reveal(self.model_dump(mode="python", by_alias=True, exclude={"notify"}))
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        # A URL means what it points at; a token or password means nothing to the sync.
        return redact_url(secret) if "://" in secret else "***"
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``: safe to print and store."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


# --- loading -------------------------------------------------------------------------------------
class LoadedConfig(BaseModel):
    """A validated Config with the file it came from (relative paths resolve against its folder)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: Config
    path: Path

    def resolve(self, path: str) -> Path:
        """A path from the config, made absolute relative to the config file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.path.parent / candidate).resolve()


def expand_env(value: Any, *, file: str, path: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; a missing variable is an error."""
    if isinstance(value, dict):
        return {k: expand_env(v, file=file, path=(*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, file=file, path=(*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None:
            return found
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set", file=file, path=_dotted(path))

    return _ENV_REF.sub(substitute, value)


def load_config(path: str | Path) -> LoadedConfig:
    """Read, expand and validate a trueup.yml; raise ConfigError with file and field path."""
    file = Path(path)
    name = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file (run 'trueup init' to write one)", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=name) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {where}{problem}", file=name) from None
    if not isinstance(raw, dict):
        raise ConfigError("must be a YAML mapping of sections (source, model, ...)", file=name)
    _webhook_from_env(raw, file=name)
    raw = expand_env(raw, file=name)
    return LoadedConfig(config=parse_config(raw, file=name), path=file.resolve())


def _webhook_from_env(raw: dict[str, Any], *, file: str) -> None:
    """notify.webhook_url must be a ``${VAR}`` reference: the URL is a credential."""
    notify = raw.get("notify")
    url = notify.get("webhook_url") if isinstance(notify, dict) else None
    if isinstance(url, str) and url and not _ENV_REF.search(url):
        raise ConfigError(
            "must come from the environment, e.g. ${TRUEUP_WEBHOOK_URL} (the URL is a secret)",
            file=file,
            path="notify.webhook_url",
        )


def parse_config(raw: dict[str, Any], *, file: str) -> Config:
    """Validate an already-expanded mapping; the first problem becomes a ConfigError."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = tuple(error["loc"])
        if error["type"] == "union_tag_invalid":
            loc = (*loc, "kind")
        raise ConfigError(_describe(error), file=file, path=_error_path(raw, loc)) from None


def _error_path(raw: Any, loc: tuple[str | int, ...]) -> str:
    """The dotted path of an error, without the union tags pydantic inserts (e.g. ``sql``)."""
    kept: list[str | int] = []
    node = raw
    tagged: Any = None  # the node whose union tag was skipped (a field may share the tag's name)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        is_tag = isinstance(node, dict) and part not in node and part == node.get("kind")
        if is_tag and tagged is not node:
            tagged = node
            continue  # a union tag pydantic inserts, not a key the user wrote
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            kept.append(part)
            node = node[part]
        elif last or not isinstance(node, dict):
            kept.append(part)
    return _dotted(tuple(kept))


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: Any) -> str:
    kind, msg, given = error["type"], error["msg"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown kind {ctx.get('tag')!r} (expected one of {ctx.get('expected_tags')})"
    if kind == "union_tag_not_found":
        return "needs a 'kind'"
    if kind == "literal_error":
        return f"must be {error.get('ctx', {}).get('expected', '')} (got {given!r})"
    msg = str(msg).removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:] if msg else msg
    if isinstance(given, bool | int | float):
        return f"{msg} (got {given})"
    if isinstance(given, str) and len(given) <= 60:
        return f"{msg} (got {given!r})"
    return msg
