"""The OCI distribution client: ping, auth (basic, bearer with scopes), docker config.json
credentials, manifests and blobs (verified), uploads (monolithic, chunked, cross-repository
mount), tags, referrers (API and tag-schema fallback), retries with backoff.

Usage::

    from trustbuild.registry import RegistryStore
    from trustbuild.store.base import StoreOptions

    store = RegistryStore("127.0.0.1:5000", "app", StoreOptions())
    raw, media_type = store.get_manifest("latest")          # verified if asked by digest
    dest_store = RegistryStore("127.0.0.1:5000", "copy", StoreOptions())
    dest_store.put_blob(desc, opener, mount_from="app")     # 201 mount instead of upload
    dest_store.put_manifest(raw, media_type, tags=["latest"])
"""

from __future__ import annotations

from trustbuild.registry.challenge import Challenge, parse_challenge
from trustbuild.registry.credentials import Credentials, resolve_credentials
from trustbuild.registry.referrers import referrers_tag, update_referrers_tag
from trustbuild.registry.store import RegistryStore
from trustbuild.registry.transport import Transport

__all__ = ["RegistryStore", "Transport", "Credentials", "resolve_credentials", "Challenge",
           "parse_challenge", "referrers_tag", "update_referrers_tag"]
