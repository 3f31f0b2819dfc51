"""Bad input ends in one clear line on stderr and the exit code the README documents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from e2e_cli import Demo, Trueup

PASSWORD = "s3cr3t-Pa55word"
UNREACHABLE_PG = f"postgresql://trueup:{PASSWORD}@127.0.0.1:1/product"


@dataclass(frozen=True)
class BadConfig:
    """A way to break the demo's config, the exit code it must give and what the line names."""

    change: Callable[[dict[str, Any]], None]
    code: int
    needles: tuple[str, ...]


def _unknown_key(c: dict[str, Any]) -> None:
    c["destination"]["bogus_setting"] = 1


def _missing_env(c: dict[str, Any]) -> None:
    c["destination"]["url"] = "${TRUEUP_E2E_NOT_SET}"


def _unreachable_source(c: dict[str, Any]) -> None:
    c["source"] = {"kind": "postgres", "url": UNREACHABLE_PG}


def _unproduced_column(c: dict[str, Any]) -> None:
    del c["mapping"]["member_name"]
    c["mapping"]["member_nickname"] = "Name"


def _unknown_field(c: dict[str, Any]) -> None:
    c["mapping"]["member_name"] = "No_Such_Field__c"


def _missing_table(c: dict[str, Any]) -> None:
    c["destination"]["table"] = "No_Such_Object__c"


BAD_CONFIGS = {
    "unknown key": BadConfig(_unknown_key, 2, ("destination.bogus_setting", "unknown key")),
    "missing env var": BadConfig(_missing_env, 2, ("TRUEUP_E2E_NOT_SET", "destination.url")),
    "unreachable source": BadConfig(_unreachable_source, 3, ("cannot connect", "127.0.0.1")),
    "unproduced column": BadConfig(_unproduced_column, 5, ("member_nickname",)),
    "unknown field": BadConfig(_unknown_field, 4, ("No_Such_Field__c",)),
    "missing table": BadConfig(_missing_table, 4, ("No_Such_Object__c",)),
}


def test_missing_config_file(trueup: Trueup) -> None:
    ran = trueup("plan", "-c", "nowhere.yml")

    line = ran.error_line(2)
    assert "nowhere.yml" in line
    assert "no such file" in line


def test_invalid_yaml(demo: Demo, trueup: Trueup) -> None:
    demo.files.config.write_text("source:\n  kind: [sqlite\nmodel: {}\n")

    line = trueup("plan").error_line(2)

    assert "trueup.yml" in line
    assert "invalid YAML" in line


@pytest.mark.parametrize("case", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_is_one_line_with_its_exit_code(
    demo: Demo, trueup: Trueup, case: BadConfig
) -> None:
    before = demo.crm_dump()
    demo.edit_config(case.change)

    ran = trueup("plan")

    line = ran.error_line(case.code)
    for needle in case.needles:
        assert needle in line
    assert ran.out == ""
    assert PASSWORD not in ran.err
    assert demo.crm_dump() == before


def test_apply_with_an_unreachable_run_store_writes_nothing(demo: Demo, trueup: Trueup) -> None:
    before = demo.crm_dump()
    demo.edit_config(lambda c: c["store"].update(url=UNREACHABLE_PG))

    line = trueup("apply", "--yes").error_line(9)

    assert "run store" in line
    assert PASSWORD not in line
    assert demo.crm_dump() == before


def test_debug_shows_the_traceback_without_the_password(demo: Demo, trueup: Trueup) -> None:
    demo.edit_config(_unreachable_source)

    ran = trueup("--debug", "plan")

    assert ran.code == 3
    assert "Traceback (most recent call last)" in ran.err
    assert "SourceError" in ran.err
    assert ran.err.strip().splitlines()[-1].startswith("error: cannot connect")
    assert PASSWORD not in ran.err


def test_square_brackets_in_a_message_are_printed_as_they_are(demo: Demo, trueup: Trueup) -> None:
    # Rich would read "[day]" as markup and drop it; the message must reach the user intact.
    def misspell(config: dict[str, Any]) -> None:
        config["mapping"]["name"] = "Name[day]"

    demo.edit_config(misspell)

    line = trueup("plan").error_line(4)

    assert "Name[day]" in line
