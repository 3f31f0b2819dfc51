"""End-to-end fixtures: the installed ``trueup`` command and a small generated demo per test."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest
from e2e_cli import Demo, Trueup

from trueup.demo_data import DemoFiles, generate_demo


@pytest.fixture()
def trueup(tmp_path: Path) -> Trueup:
    """The installed ``trueup`` command, run in the test's folder."""
    return Trueup(tmp_path)


@pytest.fixture(scope="session")
def generated_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    """600 generated properties (588 records), made once; tests get their own copy."""
    folder = tmp_path_factory.mktemp("generated-demo")
    return generate_demo(folder, properties=600, today=date(2025, 6, 1))


@pytest.fixture()
def demo(tmp_path: Path, generated_demo: DemoFiles) -> Demo:
    """A drifted SQLite CRM, its SQLite source and trueup.yml, in the test's folder."""
    copies = {}
    for name in ("source", "destination", "config"):
        original: Path = getattr(generated_demo, name)
        copies[name] = tmp_path / original.name
        shutil.copyfile(original, copies[name])
    return Demo(dataclasses.replace(generated_demo, directory=tmp_path, **copies))
