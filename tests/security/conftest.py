"""The dashboard's form client, for the dashboard's import and export routes."""

from __future__ import annotations

from tests.web.conftest import forms

__all__ = ["forms"]
