"""trueup keeps a CRM true to your source-of-truth database: plan, apply, check, roll back."""

from __future__ import annotations

__version__ = "0.1.0"
