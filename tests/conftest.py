"""Shared pytest set-up: every module in tests/fixtures/ is loaded as a plugin.

Fixture modules (one per area) live in tests/fixtures/: registry.py (real docker-registry on
loopback, TLS/htpasswd/token variants), images.py (base images built offline), and so on.
"""

from __future__ import annotations

import sys
from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(Path(__file__).parent))
pytest_plugins = sorted(
    f"fixtures.{p.stem}" for p in _FIXTURES.glob("*.py") if not p.name.startswith("_")
)
