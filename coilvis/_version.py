"""The coilvis version: one place for the package metadata, saved records and built pages."""

from __future__ import annotations

__version__ = "0.1.0"
