"""``python -m trustbuild``."""

from __future__ import annotations

import sys

from trustbuild.cli.main import main

sys.exit(main())
