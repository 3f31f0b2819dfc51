"""Source models: what a destination should hold, computed from a source.

``build_model(config)`` returns the Model a ``model:`` section describes: ``sql`` (a table or a
query) or ``features`` (the long→wide product pivot with many-to-one grouping, DESIGN.md §1).
"""

from __future__ import annotations

from trueup.config import FeaturesModelConfig, ModelConfig, SqlModelConfig
from trueup.models.base import Model
from trueup.models.features import FeaturesModel
from trueup.models.sql import SqlModel

__all__ = ["FeaturesModel", "Model", "SqlModel", "build_model"]


def build_model(config: ModelConfig) -> Model:
    """The Model for a validated ``model:`` config section."""
    if isinstance(config, SqlModelConfig):
        return SqlModel(config)
    if isinstance(config, FeaturesModelConfig):
        return FeaturesModel(config)
    raise TypeError(f"unknown model config {type(config).__name__}")  # pragma: no cover
