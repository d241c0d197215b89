"""Fixtures of the signing unit tests."""

from __future__ import annotations

import pytest
from sign_memstore import MemoryStore


@pytest.fixture
def memstore() -> MemoryStore:
    return MemoryStore()
