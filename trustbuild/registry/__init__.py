"""The OCI distribution client: ping, auth (basic, bearer with scopes), docker config.json
credentials, manifests and blobs (verified), uploads (monolithic, chunked, cross-repository
mount), tags, referrers (API and tag-schema fallback), retries with backoff.

Usage::

    from trustbuild.registry import RegistryStore
    from trustbuild.registry.options import StoreOptions

    from trustbuild.oci.manifest import parse_manifest

    src = RegistryStore("127.0.0.1:5000", "app", StoreOptions())
    raw, media_type = src.get_manifest("latest")       # verified when asked by digest
    manifest = parse_manifest(raw, media_type)
    dst = RegistryStore("127.0.0.1:5000", "copy", StoreOptions())
    for desc in (manifest.config, *manifest.layers):
        # HEAD, then a cross-repository mount (201) instead of an upload
        dst.put_blob(desc, lambda d=desc: src.open_blob(d), mount_from="app")
    dst.put_manifest(raw, media_type, tags=["latest"])  # manifest last
"""

from __future__ import annotations

from trustbuild.registry.challenge import Challenge, parse_challenge
from trustbuild.registry.credentials import Credentials, resolve_credentials
from trustbuild.registry.referrers import referrers_tag, update_referrers_tag
from trustbuild.registry.store import RegistryStore
from trustbuild.registry.transport import Transport

__all__ = ["RegistryStore", "Transport", "Credentials", "resolve_credentials", "Challenge",
           "parse_challenge", "referrers_tag", "update_referrers_tag"]
