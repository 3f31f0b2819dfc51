"""trueup.yml loading: every error names the file, the dotted field path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from trueup.config import load_config, redact_url
from trueup.errors import ConfigError

GOOD = """\
source: {kind: postgres, url: "postgresql://app:${PGPASS}@db:5432/prod"}
model: {kind: sql, table: records}
key: id
destination: {kind: sql, url: "sqlite:///crm.db", table: things, batch_size: 200}
mapping: {id: Ext__c, name: Name}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trueup.yml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_good_config_expands_env_and_hides_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASS", "s3cret")
    loaded = load_config(write(tmp_path, GOOD))
    url = loaded.config.source.url  # type: ignore[union-attr]
    assert url.get_secret_value() == "postgresql://app:s3cret@db:5432/prod"
    assert "s3cret" not in repr(loaded.config)
    assert "s3cret" not in loaded.config.model_dump_json()
    assert loaded.config.key_field == "Ext__c"
    assert loaded.resolve("crm.db") == tmp_path / "crm.db"


def test_fingerprint_changes_with_meaning_not_with_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASS", "one")
    first = load_config(write(tmp_path, GOOD)).config.fingerprint()
    monkeypatch.setenv("PGPASS", "two")
    assert load_config(write(tmp_path, GOOD)).config.fingerprint() == first
    changed = GOOD.replace("batch_size: 200", "batch_size: 100")
    assert load_config(write(tmp_path, changed)).config.fingerprint() != first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("batch_size: 200", "batch_size: 0"),
            "trueup.yml: destination.batch_size: must be between 1 and 10000 (got 0)",
        ),
        (GOOD + "colour: blue\n", "trueup.yml: colour: unknown key"),
        (
            GOOD.replace("table: things,", "table: things, tabel: x,"),
            "trueup.yml: destination.tabel: unknown key",
        ),
        (
            GOOD.replace("kind: sql, table: records", "kind: sql"),
            "trueup.yml: model: give exactly one of 'query' or 'table'",
        ),
        (GOOD.replace("key: id", "key: nope"), "trueup.yml: key: must be a mapped model column"),
        (
            GOOD.replace("kind: postgres", "kind: oracle"),
            "trueup.yml: source.kind: unknown kind 'oracle'",
        ),
        (GOOD.replace("mapping: {id: Ext__c, name: Name}\n", ""), "trueup.yml: mapping: required"),
        (
            GOOD + "guards: {max_error_rate: 2}\n",
            "trueup.yml: guards.max_error_rate: must be between 0 and 1 (got 2)",
        ),
        ("source: [unclosed\n", "trueup.yml: invalid YAML: line 2, column 1"),
        ("- a list\n", "trueup.yml: must be a YAML mapping"),
    ],
)
def test_errors_name_file_path_and_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.setenv("PGPASS", "x")
    message = error_of(write(tmp_path, text))
    assert message.endswith(expected) or expected in message
    assert "\n" not in message


def test_missing_env_var_names_variable_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASS", raising=False)
    message = error_of(write(tmp_path, GOOD))
    assert message.endswith("trueup.yml: source.url: environment variable PGPASS is not set")


def test_env_default_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASS", raising=False)
    loaded = load_config(write(tmp_path, GOOD.replace("${PGPASS}", "${PGPASS:-dflt}")))
    assert "dflt" in loaded.config.source.url.get_secret_value()  # type: ignore[union-attr]


def test_missing_file(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.yml")
    assert message.endswith("nope.yml: no such file (run 'trueup init' to write one)")


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://u:pw@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"
