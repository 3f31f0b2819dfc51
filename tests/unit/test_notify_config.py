"""The ``notify:`` section: the webhook URL is a secret from the environment, never quoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from trueup.config import load_config
from trueup.errors import ConfigError

BASE = """\
source: {kind: sqlite, path: source.db}
model: {kind: sql, table: records}
key: id
destination: {kind: sql, url: "sqlite:///crm.db", table: things}
mapping: {id: Ext__c, name: Name}
"""
SECRET = "T0/B0/s3cr3t"


def write(tmp_path: Path, notify: str) -> Path:
    path = tmp_path / "trueup.yml"
    path.write_text(BASE + notify)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_the_webhook_comes_from_the_environment_and_stays_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUEUP_WEBHOOK_URL", f"https://hooks.example.com/services/{SECRET}")
    notify = load_config(
        write(tmp_path, "notify: {webhook_url: '${TRUEUP_WEBHOOK_URL}'}")
    ).config.notify

    assert notify.webhook_url is not None
    assert notify.webhook_url.get_secret_value().endswith(SECRET)
    assert (notify.format, notify.when, notify.check_after_apply) == ("slack", "always", False)
    assert SECRET not in repr(notify) and SECRET not in notify.model_dump_json()


def test_an_optional_webhook_left_unset_means_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRUEUP_WEBHOOK_URL", raising=False)
    path = write(tmp_path, "notify: {webhook_url: '${TRUEUP_WEBHOOK_URL:-}', when: problems}")

    notify = load_config(path).config.notify

    assert notify.webhook_url is None
    assert notify.when == "problems"


def test_the_notify_section_does_not_change_the_config_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUEUP_WEBHOOK_URL", "https://hooks.example.com/x")
    plain = load_config(write(tmp_path, "")).config.fingerprint()
    notified = write(tmp_path, "notify: {webhook_url: '${TRUEUP_WEBHOOK_URL}', format: markdown}")

    assert load_config(notified).config.fingerprint() == plain


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        (
            f"notify: {{webhook_url: 'https://hooks.example.com/services/{SECRET}'}}",
            "notify.webhook_url: must come from the environment, e.g. ${TRUEUP_WEBHOOK_URL}",
        ),
        ("notify: {on: problems}", "notify: write 'when:' (always | problems), not 'on:'"),
        ("notify: {when: sometimes}", "notify.when: must be 'always' or 'problems'"),
        ("notify: {format: teams}", "notify.format: must be 'slack' or 'markdown'"),
        ("notify: {timeout: 0}", "notify.timeout: must be between 1 and 120"),
    ],
)
def test_bad_notify_settings_are_config_errors(tmp_path: Path, notify: str, expected: str) -> None:
    message = error_of(write(tmp_path, notify))

    assert expected in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "url",
    [f"ftp://files.example.com/{SECRET}", f"https:///{SECRET}", f"https://h:port/{SECRET}"],
)
def test_a_webhook_that_is_not_an_http_url_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TRUEUP_WEBHOOK_URL", url)

    message = error_of(write(tmp_path, "notify: {webhook_url: '${TRUEUP_WEBHOOK_URL}'}"))

    assert "notify: webhook_url: must be an https:// (or http://) URL" in message
    assert SECRET not in message
