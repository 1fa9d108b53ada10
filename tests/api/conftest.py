"""Fixtures of the API tests that talk to a real server rather than the app in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY, auth


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of the app served by uvicorn (``api_url``): streams arrive as they are sent."""
    async with httpx.AsyncClient(base_url=api_url, headers=auth(ADMIN_KEY), timeout=30) as http:
        yield http
