"""The example config `trueup init` writes loads, and its mapping is the flagship mapping."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from trueup.config import FeaturesModelConfig, PostgresSourceConfig, load_config
from trueup.demo_data import demo_config
from trueup.errors import ConfigError
from trueup.products import PRODUCT_FIELDS, PRODUCTS

EXAMPLE = resources.files("trueup") / "examples" / "product_features.yml"


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    path = tmp_path / "trueup.yml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_example_loads_with_the_urls_from_the_environment(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUEUP_SOURCE_URL", "postgresql://reader:s3cret@db:5432/product")
    monkeypatch.setenv("TRUEUP_DESTINATION_URL", "duckdb:///crm.duckdb")

    config = load_config(example).config

    assert isinstance(config.source, PostgresSourceConfig)
    assert config.source.url.get_secret_value() == "postgresql://reader:s3cret@db:5432/product"
    assert "s3cret" not in repr(config)
    assert isinstance(config.model, FeaturesModelConfig)
    assert config.model.products == [p.code for p in PRODUCTS]
    assert config.key_field == "Reverse_ETL_ID__c"


def test_example_names_the_missing_variable(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUEUP_SOURCE_URL", raising=False)
    monkeypatch.setenv("TRUEUP_DESTINATION_URL", "duckdb:///crm.duckdb")

    with pytest.raises(ConfigError, match="TRUEUP_SOURCE_URL"):
        load_config(example)


def test_example_mapping_is_the_product_mapping() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))

    assert raw["mapping"] == dict(PRODUCT_FIELDS)
    assert list(raw["mapping"]) == list(PRODUCT_FIELDS)


def test_demo_config_uses_the_same_mapping_and_products() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    demo = demo_config()

    assert demo["mapping"] == raw["mapping"]
    assert demo["model"]["products"] == raw["model"]["products"]
    assert demo["key"] == raw["key"]
