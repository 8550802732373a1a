"""Fixtures for the authentication tests: the dashboard's form client, and reading tokens."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import FormClient


@pytest.fixture
def forms(client: TestClient) -> FormClient:
    return FormClient(client)
