"""Redaction of secret-looking values before they reach provenance or logs (public re-export).

The implementation lives in ``trustbuild._internal.secrets`` so the builder shares it without
importing this package.
"""

from __future__ import annotations

from trustbuild._internal.secrets import (
    REDACTED,
    SECRET_WORDS,
    is_secret_name,
    redact_env_list,
    redact_mapping,
    redact_text,
)

__all__ = ["SECRET_WORDS", "REDACTED", "is_secret_name", "redact_mapping", "redact_env_list",
           "redact_text"]
